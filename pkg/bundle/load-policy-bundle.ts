import { deepFreeze } from './deep-freeze.js';
import { FrozenMap } from './frozen-map.js';
import { checkNotExpired, type LoadDocumentOptions } from './load-document-options.js';
import { parsePolicyBundle } from './parse-policy-bundle.js';
import { assertParsedUnaltered } from './parse-document.js';
import type { PolicyApi, PolicyBundle } from './policy-bundle-schema.js';
import { createRevocationCheck, type RevocationQuery } from './revocation-index.js';
import { buildRouteTable, type RouteEntry, type RouteTable } from './route-table.js';
import { verifyDocument } from './verify-document.js';

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
  const document = parsePolicyBundle(json);
  assertParsedUnaltered(json, document, 'policy bundle');
  const verified = await verifyDocument(document, {
    keys: options.signers,
    allowUnsigned: options.allowUnsigned === true,
  });
  checkNotExpired(document.expires_at, options.now, 'policy bundle');
  deepFreeze(document);
  const apisById = new FrozenMap(document.apis.map((a) => [a.api_id, a] as const));
  const entries: RouteEntry[] = [];
  for (const group of document.route_groups) {
    // The schema guarantees the api exists.
    const api = apisById.get(group.api_id)!;
    for (const route of group.routes) {
      entries.push(Object.freeze({ route, api, routeGroupId: group.route_group_id }));
    }
  }
  const routeTable = buildRouteTable(entries);
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
