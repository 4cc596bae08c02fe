import { deepFreeze } from './deep-freeze.js';
import { FrozenMap } from './frozen-map.js';
import { checkNotExpired, type LoadDocumentOptions } from './load-document-options.js';
import { parsePolicyBundle } from './parse-policy-bundle.js';
import { assertCanonicalUnaltered, canonicalOrUndefined } from './parse-document.js';
import { yieldToEventLoop } from '../internal/yield.js';
import type { PolicyApi, PolicyBundle } from './policy-bundle-schema.js';
import { createRevocationCheck, type RevocationQuery } from './revocation-index.js';
import { buildRouteTable, type RouteEntry, type RouteTable } from './route-table.js';
import { verifyDocument } from './verify-document.js';

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

const noPause = (): Promise<void> => Promise.resolve();

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
  // the work is split into steps of a few milliseconds with the event loop let run between them.
  const pause = isLarge(json) ? yieldToEventLoop : noPause;
  await pause();
  const document = parsePolicyBundle(json);
  await pause();
  const canonicalInput = canonicalOrUndefined(json);
  await pause();
  assertCanonicalUnaltered(canonicalInput, document, 'policy bundle');
  await pause();
  const verified = await verifyDocument(document, {
    keys: options.signers,
    allowUnsigned: options.allowUnsigned === true,
  });
  await pause();
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
