import { TrustplaneError } from '../authcore/errors.js';
import type { IssuerRegistry, TrustedIssuer, TrustedKey } from '../authcore/issuer-registry.js';
import type { KeyBinding } from '../authcore/signer-taxonomy.js';
import { importRawPublicKey, type VerifyKey } from '../authcore/verify-key.js';
import { decodeBase64Url } from '../internal/base64url.js';
import { deepFreeze } from './deep-freeze.js';
import { FrozenMap } from './frozen-map.js';
import { checkNotExpired, type LoadDocumentOptions } from './load-document-options.js';
import { parseTrustMaterial } from './parse-trust-material.js';
import { assertParsedUnaltered } from './parse-document.js';
import type { SpiffeBundle, TrustMaterial, TrustMaterialIssuer } from './trust-material-schema.js';
import { verifyDocument } from './verify-document.js';

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
    `invalid trust material at ${path}: not an acceptable Ed25519 public key (malformed, non-canonical or of small order)`,
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
 * @throws TrustplaneError `invalid_bundle` (schema or key import, including a small-order or
 *   non-canonical Ed25519 key; the message names the path, never the key),
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
  assertParsedUnaltered(json, document, 'trust material');
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
