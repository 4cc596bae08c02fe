import { deepFreeze } from './deep-freeze.js';
import { FrozenMap } from './frozen-map.js';
import { checkNotExpired, type LoadDocumentOptions } from './load-document-options.js';
import { assertCanonicalUnaltered } from './parse-document.js';
import { canonicalMembersSliced } from '../internal/jcs.js';
import { NEVER_PAUSE, type SlicePoint, timeSlicer } from '../internal/yield.js';
import { signingInputFromMembers } from './document-signing-input.js';
import { parsePolicyBundleSliced } from './parse-policy-bundle.js';
import type { PolicyApi, PolicyBundle } from './policy-bundle-schema.js';
import { createRevocationCheck, type RevocationQuery } from './revocation-index.js';
import { createRouteTableBuilder, type RouteEntry, type RouteTable } from './route-table.js';
import { verifyDocumentOver } from './verify-document.js';

/** Routes past which a bundle is loaded in steps (see {@link loadPolicyBundle}). */
const LARGE_BUNDLE_ROUTES = 200;

/** Whether untrusted bundle JSON holds more than {@link LARGE_BUNDLE_ROUTES} routes (a guess; the schema decides). */
function isLarge(json: unknown): boolean {
  if (typeof json !== 'object' || json === null) return false;
  const groups = (json as { route_groups?: unknown }).route_groups;
  if (!Array.isArray(groups)) return false;
  let routes = 0;
  for (const group of groups) {
    const list =
      typeof group === 'object' && group !== null ? (group as { routes?: unknown }).routes : undefined;
    if (Array.isArray(list)) routes += list.length;
    if (routes > LARGE_BUNDLE_ROUTES) return true;
  }
  return false;
}

/**
 * The longest a large bundle's load holds the event loop between two yields (ms), give or take one
 * route's work: the adapter keeps serving while it reloads.
 */
const SLICE_BUDGET_MS = 2;

/** `{members}` as one canonical JSON text. */
function joinMembers(members: readonly (readonly [string, string])[]): string {
  let out = '';
  for (const [, text] of members) out += out === '' ? text : `,${text}`;
  return `{${out}}`;
}

/** The canonical JSON of untrusted input computed in slices, or undefined when it is not plain JSON. */
async function canonicalSliced(input: unknown, pause: SlicePoint): Promise<string | undefined> {
  try {
    return joinMembers(await canonicalMembersSliced(input as Record<string, unknown>, pause));
  } catch {
    return undefined;
  }
}

/** A verified policy bundle with its lookup tables. */
export interface LoadedPolicy {
  /** The document (deep-frozen). */
  readonly document: PolicyBundle;
  /** False only for an unsigned document accepted with `allowUnsigned`. */
  readonly signed: boolean;
  /** The kid of the key that verified the document signature. */
  readonly signerKid?: string;
  readonly trustDomain: string;
  readonly policyVersion?: string;
  readonly issuedAt?: number;
  readonly expiresAt?: number;
  /** APIs by `api_id`. */
  readonly apisById: ReadonlyMap<string, PolicyApi>;
  /** Method + path resolution. */
  readonly routeTable: RouteTable;
  /** Routes by `route_id` (the same entries the table resolves to). */
  readonly routesById: ReadonlyMap<string, RouteEntry>;
  /**
   * True when the bundle revokes the passport: its `jti`, its `sub`, or a key (`kind: "key"`
   * matches the header `kid` or `cnf.kid`). An entry with `issuer` applies to that issuer only.
   */
  isRevoked(query: RevocationQuery): boolean;
}

/**
 * Load a policy bundle: schema check (route ids unique, api references, no ambiguous routes),
 * signature check, then the route table and revocation index are built once. Freshness is checked
 * per request with `checkFreshness`.
 *
 * @param json the parsed document (untrusted)
 * @param options signer keys, the dev flag, and an optional `now` to refuse an expired bundle
 * @returns the loaded policy (frozen)
 * @throws TrustplaneError `invalid_bundle`, `unsigned_bundle_rejected`, `bundle_signature_invalid`,
 *   `stale_bundle_fail_closed` (expired, when `now` is given)
 * @example
 * const policy = await loadPolicyBundle(JSON.parse(text), { signers: [{ kid: 'ops-1', key }] })
 * const match = policy.routeTable.resolve('GET', '/v1/orders/42')
 */
export async function loadPolicyBundle(json: unknown, options: LoadDocumentOptions): Promise<LoadedPolicy> {
  // A large bundle takes tens of milliseconds to load; an adapter reloading it keeps serving, so
  // the work is done in slices of about SLICE_BUDGET_MS with the event loop let run between them.
  const pause = isLarge(json) ? timeSlicer(SLICE_BUDGET_MS) : NEVER_PAUSE;
  const document = await parsePolicyBundleSliced(json, pause);
  // The signature is checked over the parsed document, which must then be the very document that
  // was signed: the schema may not have rewritten anything (trimmed, normalized, added defaults).
  const canonicalInput = await canonicalSliced(json, pause);
  const members = canonicalInput === undefined ? [] : await canonicalMembersSliced(document, pause);
  assertCanonicalUnaltered(canonicalInput, joinMembers(members), 'policy bundle');
  const verified = await verifyDocumentOver(
    document,
    { keys: options.signers, allowUnsigned: options.allowUnsigned === true },
    () => signingInputFromMembers(members),
  );
  checkNotExpired(document.expires_at, options.now, 'policy bundle');
  deepFreeze(document);
  const apisById = new FrozenMap(document.apis.map((a) => [a.api_id, a] as const));
  const builder = createRouteTableBuilder();
  for (const group of document.route_groups) {
    // The schema guarantees the api exists.
    const api = apisById.get(group.api_id)!;
    for (const route of group.routes) {
      const paused = pause();
      if (paused) await paused;
      builder.add(Object.freeze({ route, api, routeGroupId: group.route_group_id }));
    }
  }
  const routeTable = builder.finish();
  const isRevoked = createRevocationCheck(document.revocations ?? []);
  const loaded: LoadedPolicy = {
    document,
    signed: verified.signed,
    ...(verified.kid !== undefined ? { signerKid: verified.kid } : {}),
    trustDomain: document.trust_domain,
    ...(document.policy_version !== undefined ? { policyVersion: document.policy_version } : {}),
    ...(document.issued_at !== undefined ? { issuedAt: document.issued_at } : {}),
    ...(document.expires_at !== undefined ? { expiresAt: document.expires_at } : {}),
    apisById,
    routeTable,
    routesById: routeTable.routesById,
    isRevoked,
  };
  return Object.freeze(loaded);
}
