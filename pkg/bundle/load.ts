import { TrustplaneError } from '../authcore/errors.js';
import type { IssuerRegistry, TrustedIssuer, TrustedKey } from '../authcore/issuer-registry.js';
import { importRawPublicKey, type VerifyKey } from '../authcore/verify-key.js';
import type { KeyBinding } from '../authcore/signer-taxonomy.js';
import { decodeBase64Url } from '../internal/base64url.js';
import { deepFreeze, FrozenMap } from './frozen-map.js';
import { buildRouteTable, type RouteEntry, type RouteTable } from './route-table.js';
import { parsePolicyBundle, parseTrustMaterial } from './parse.js';
import type {
  PolicyApi,
  PolicyBundle,
  Revocation,
  SpiffeBundle,
  TrustMaterial,
  TrustMaterialIssuer,
} from './schemas.js';
import { type DocumentSigner, verifyDocument } from './verify-document.js';

/** Options for {@link loadPolicyBundle} and {@link loadTrustMaterial}. */
export interface LoadDocumentOptions {
  /** Keys allowed to sign the document. Empty only together with `allowUnsigned`. */
  readonly signers: readonly DocumentSigner[];
  /**
   * Development only: accept an unsigned document. The result has `signed: false`; the caller
   * must log that loudly. A document that carries a signature must still verify.
   */
  readonly allowUnsigned?: boolean;
  /** Current time, epoch seconds: when given, a document whose `expires_at` has passed is refused. */
  readonly now?: number;
}

/** A receipt-signing key, imported. */
export interface LoadedReceiptKey {
  readonly kid: string;
  readonly key: VerifyKey;
  readonly adapter?: string;
  /** Epoch seconds from which the key may sign receipts (checked against the receipt `iat`). */
  readonly nbf?: number;
  /** Epoch seconds from which the key may no longer sign receipts (checked against the receipt `iat`). */
  readonly exp?: number;
}

/** Verified trust material, keys imported once. Implements `IssuerRegistry` for `verifyPassport`. */
export interface LoadedTrustMaterial extends IssuerRegistry {
  /** The document (deep-frozen). */
  readonly document: TrustMaterial;
  /** False only for an unsigned document accepted with `allowUnsigned`. */
  readonly signed: boolean;
  /** The kid of the key that verified the document signature. */
  readonly signerKid?: string;
  readonly issuedAt?: number;
  readonly expiresAt?: number;
  /** Issuers by `issuer`. */
  readonly issuers: ReadonlyMap<string, TrustedIssuer>;
  /** SPIFFE trust bundles by trust domain (certificates are parsed by their consumer). */
  readonly spiffeBundles: ReadonlyMap<string, SpiffeBundle>;
  /** Receipt-signing keys by kid. */
  readonly receiptKeys: ReadonlyMap<string, LoadedReceiptKey>;
}

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

function checkNotExpired(expiresAt: number | undefined, now: number | undefined, label: string): void {
  if (now === undefined) return;
  if (!Number.isFinite(now)) throw new TypeError('now must be epoch seconds');
  if (expiresAt !== undefined && now >= expiresAt) {
    throw new TrustplaneError('stale_bundle_fail_closed', `${label} has expired`);
  }
}

/**
 * The highest key binding an issuer may vouch for when its entry does not say. Fail closed:
 * `attested_workload` only for `spiffe_spire` issuers (a broker that verified an SVID), `software`
 * for every other source type, since a JWKS or OIDC issuer can show a key but not where it lives.
 * Set `max_key_binding` explicitly to trust an issuer for more.
 */
export function defaultMaxKeyBinding(sourceType: string): KeyBinding {
  return sourceType === 'spiffe_spire' ? 'attested_workload' : 'software';
}

async function importKey(x: string, path: string): Promise<VerifyKey> {
  const raw = decodeBase64Url(x);
  if (raw) {
    try {
      return await importRawPublicKey(raw);
    } catch {
      // reported below, as for a key that does not decode
    }
  }
  throw new TrustplaneError(
    'invalid_bundle',
    `invalid trust material at ${path}: not an Ed25519 public key`,
    {
      path,
    },
  );
}

async function loadIssuer(issuer: TrustMaterialIssuer, index: number): Promise<TrustedIssuer> {
  const keys = await Promise.all(
    issuer.keys.map(async (k, j): Promise<[string, TrustedKey]> => {
      const key = await importKey(k.x, `issuers[${index}].keys[${j}].x`);
      const trusted: TrustedKey = {
        kid: k.kid,
        key,
        ...(k.nbf !== undefined ? { nbf: k.nbf } : {}),
        ...(k.exp !== undefined ? { exp: k.exp } : {}),
      };
      return [k.kid, Object.freeze(trusted)];
    }),
  );
  return Object.freeze({
    issuer: issuer.issuer,
    trustDomain: issuer.trust_domain,
    sourceType: issuer.source_type,
    maxKeyBinding: issuer.max_key_binding ?? defaultMaxKeyBinding(issuer.source_type),
    keys: new FrozenMap(keys),
  });
}

/**
 * Load trust material: schema check, signature check, then every issuer and receipt key imported
 * once. The result is frozen and serves `verifyPassport` as its `issuers` registry.
 *
 * @param json the parsed document (untrusted)
 * @param options signer keys, the dev flag, and an optional `now` to refuse expired material
 * @returns the loaded trust material
 * @throws TrustplaneError `invalid_bundle` (schema or key import; the message names the path),
 *   `unsigned_bundle_rejected`, `bundle_signature_invalid`, `stale_bundle_fail_closed` (expired)
 * @example
 * const trust = await loadTrustMaterial(JSON.parse(text), { signers: [{ kid: 'ops-1', key }] })
 * await verifyPassport(token, { issuers: trust, audience: 'orders-api', now })
 */
export async function loadTrustMaterial(
  json: unknown,
  options: LoadDocumentOptions,
): Promise<LoadedTrustMaterial> {
  const document = parseTrustMaterial(json);
  const verified = await verifyDocument(document, {
    keys: options.signers,
    allowUnsigned: options.allowUnsigned === true,
  });
  checkNotExpired(document.expires_at, options.now, 'trust material');
  const issuers = await Promise.all(document.issuers.map((issuer, i) => loadIssuer(issuer, i)));
  const receiptKeys = await Promise.all(
    (document.receipt_keys ?? []).map(async (k, i): Promise<[string, LoadedReceiptKey]> => {
      const key = await importKey(k.x, `receipt_keys[${i}].x`);
      const loaded: LoadedReceiptKey = {
        kid: k.kid,
        key,
        ...(k.adapter !== undefined ? { adapter: k.adapter } : {}),
        ...(k.nbf !== undefined ? { nbf: k.nbf } : {}),
        ...(k.exp !== undefined ? { exp: k.exp } : {}),
      };
      return [k.kid, Object.freeze(loaded)];
    }),
  );
  deepFreeze(document);
  const issuerMap = new FrozenMap(issuers.map((i) => [i.issuer, i] as const));
  const loaded: LoadedTrustMaterial = {
    document,
    signed: verified.signed,
    ...(verified.kid !== undefined ? { signerKid: verified.kid } : {}),
    ...(document.issued_at !== undefined ? { issuedAt: document.issued_at } : {}),
    ...(document.expires_at !== undefined ? { expiresAt: document.expires_at } : {}),
    issuers: issuerMap,
    spiffeBundles: new FrozenMap((document.spiffe_bundles ?? []).map((b) => [b.trust_domain, b] as const)),
    receiptKeys: new FrozenMap(receiptKeys),
    getIssuer: (iss: string) => issuerMap.get(iss),
  };
  return Object.freeze(loaded);
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
  const revocations = indexRevocations(document.revocations ?? []);
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
    isRevoked: (q: RevocationQuery) =>
      listed(revocations.jti, q.iss, q.jti) ||
      listed(revocations.subject, q.iss, q.sub) ||
      listed(revocations.key, q.iss, q.kid) ||
      listed(revocations.key, q.iss, q.cnfKid),
  };
  return Object.freeze(loaded);
}
