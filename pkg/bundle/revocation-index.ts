import type { Revocation } from './policy-bundle-schema.js';

/** What a revocation check looks at. */
export interface RevocationQuery {
  /** Passport `iss`. */
  readonly iss: string;
  /** Passport `sub`. */
  readonly sub: string;
  /** Passport `jti`. */
  readonly jti: string;
  /** Passport header `kid` (the issuer key). */
  readonly kid?: string;
  /** Passport `cnf.kid` (the caller's request key). */
  readonly cnfKid?: string;
}

interface RevocationIndex {
  readonly any: Set<string>;
  readonly byIssuer: Map<string, Set<string>>;
}

function indexRevocations(revocations: readonly Revocation[]): Record<Revocation['kind'], RevocationIndex> {
  const index = {
    jti: { any: new Set<string>(), byIssuer: new Map<string, Set<string>>() },
    subject: { any: new Set<string>(), byIssuer: new Map<string, Set<string>>() },
    key: { any: new Set<string>(), byIssuer: new Map<string, Set<string>>() },
  };
  for (const r of revocations) {
    const slot = index[r.kind];
    if (r.issuer === undefined) {
      slot.any.add(r.value);
    } else {
      let set = slot.byIssuer.get(r.issuer);
      if (!set) {
        set = new Set();
        slot.byIssuer.set(r.issuer, set);
      }
      set.add(r.value);
    }
  }
  return index;
}

function listed(index: RevocationIndex, iss: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  return index.any.has(value) || index.byIssuer.get(iss)?.has(value) === true;
}

/**
 * The revocation check of a policy bundle, its index built once: true when the bundle revokes the
 * passport's `jti`, its `sub`, or a key (`kind: "key"` matches the header `kid` or `cnf.kid`). An
 * entry with `issuer` applies to that issuer only.
 */
export function createRevocationCheck(
  revocations: readonly Revocation[],
): (query: RevocationQuery) => boolean {
  const index = indexRevocations(revocations);
  return (q: RevocationQuery) =>
    listed(index.jti, q.iss, q.jti) ||
    listed(index.subject, q.iss, q.sub) ||
    listed(index.key, q.iss, q.kid) ||
    listed(index.key, q.iss, q.cnfKid);
}
