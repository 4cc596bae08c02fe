// The benchmark world both benches use: a caller key, a bundle-signing key, and signed trust
// material + policy bundle for one API (`orders-api`) with a software issuer.

import { generateSigningKey } from '../dist/pkg/authcore/index.js';
import { signDocument } from '../dist/pkg/bundle/index.js';

export const ISSUER = 'https://issuer.example/software-jwks';
export const TRUST_DOMAIN = 'example.local';
export const ORIGIN = 'https://orders.example';
export const BUNDLE_SIGNER = { issuer: 'https://bundles.example', kid: 'bundle-signer-1' };

export const SOFTWARE_SOURCE = {
  source_type: 'software_jwks',
  issuer: ISSUER,
  trust_domain: TRUST_DOMAIN,
  subject_exact: 'service:orders-client',
};

/** Keys and signed documents, both documents issued at `issuedAt` (epoch seconds). */
export async function buildBenchWorld(issuedAt) {
  const [caller, bundleSigner] = await Promise.all([generateSigningKey(), generateSigningKey()]);
  const trustDoc = await signDocument(
    {
      version: 'trustplane-trust-material-v1',
      kind: 'trust_material',
      trust_domain: TRUST_DOMAIN,
      issued_at: issuedAt,
      issuers: [
        {
          issuer: ISSUER,
          trust_domain: TRUST_DOMAIN,
          source_type: 'software_jwks',
          keys: [{ kty: 'OKP', crv: 'Ed25519', x: caller.publicKey.x, kid: 'caller-1' }],
        },
      ],
    },
    bundleSigner,
    BUNDLE_SIGNER,
  );
  const route = (route_id, method, path_template) => ({
    route_id,
    method,
    path_template,
    allowed_sources: [SOFTWARE_SOURCE],
  });
  const policyDoc = await signDocument(
    {
      version: 'trustplane-bundle-v1',
      kind: 'policy_runtime_bundle',
      trust_domain: TRUST_DOMAIN,
      issued_at: issuedAt,
      apis: [{ api_id: 'orders-api', audience: 'orders-api', base_url: ORIGIN }],
      route_groups: [
        {
          route_group_id: 'orders',
          api_id: 'orders-api',
          routes: [
            route('orders.search', 'GET', '/v1/orders/search'),
            route('orders.get', 'GET', '/v1/orders/{order_id}'),
            route('orders.create', 'POST', '/v1/orders'),
          ],
        },
      ],
      default_required_key_binding: 'software',
      default_freshness_class: 'bounded',
      default_max_staleness_seconds: 300,
      revocations: [],
    },
    bundleSigner,
    BUNDLE_SIGNER,
  );
  return { caller, bundleSigner, trustDoc, policyDoc };
}
