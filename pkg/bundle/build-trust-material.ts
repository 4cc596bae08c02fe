import { z } from 'zod';
import { checkNow, lifetime } from './document-lifetime.js';
import { parseWith } from './parse-document.js';
import { parseTrustMaterial } from './parse-trust-material.js';
import { type TrustMaterial, trustMaterialSchema, TRUST_MATERIAL_VERSION } from './trust-material-schema.js';

const trust = trustMaterialSchema.shape;

/** Input of {@link buildTrustMaterial}. */
export const trustMaterialConfigSchema = z.strictObject({
  trust_domain: trust.trust_domain,
  issuers: trust.issuers,
  spiffe_bundles: trust.spiffe_bundles,
  receipt_keys: trust.receipt_keys,
  /** When set, `expires_at = now + expires_in_seconds`. */
  expires_in_seconds: lifetime.optional(),
});

/** Input of {@link buildTrustMaterial}. */
export type TrustMaterialConfig = z.input<typeof trustMaterialConfigSchema>;

/**
 * Build unsigned trustplane-trust-material-v1 from a config: sets `version`, `kind`,
 * `issued_at = now` and, with `expires_in_seconds`, `expires_at`.
 *
 * @param config issuers (with their Ed25519 JWKs), SPIFFE bundles, receipt keys (validated strictly)
 * @param now current time, integer epoch seconds
 * @returns the validated document (no `signed_by`/`signature`)
 * @throws TrustplaneError `invalid_bundle`; RangeError for a bad `now`
 * @example
 * const doc = buildTrustMaterial({ issuers: [{ issuer, trust_domain, source_type: 'software_jwks', keys }] }, nowSeconds)
 */
export function buildTrustMaterial(config: TrustMaterialConfig, now: number): TrustMaterial {
  checkNow(now, 'buildTrustMaterial');
  const c = parseWith(trustMaterialConfigSchema, config, 'trust material config');
  const doc: Record<string, unknown> = {
    version: TRUST_MATERIAL_VERSION,
    kind: 'trust_material',
    ...(c.trust_domain !== undefined ? { trust_domain: c.trust_domain } : {}),
    issued_at: now,
    ...(c.expires_in_seconds !== undefined ? { expires_at: now + c.expires_in_seconds } : {}),
    issuers: c.issuers,
    ...(c.spiffe_bundles !== undefined ? { spiffe_bundles: c.spiffe_bundles } : {}),
    ...(c.receipt_keys !== undefined ? { receipt_keys: c.receipt_keys } : {}),
  };
  return parseTrustMaterial(doc);
}
