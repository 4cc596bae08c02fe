import { generateSigningKey, type SigningKey } from '../../pkg/authcore/signing-key.js';
import type { PolicyBundle, PolicyRoute, PolicySource, TrustMaterial } from '../../pkg/bundle/index.js';
import { readVectorJson } from '../helpers/vectors.js';

/** The conformance vector bundle-v1.source-rules.json. */
export interface SourceRulesVector {
  version: string;
  kind: string;
  policy_bundle: Record<string, unknown>;
  expected_source_types: string[];
}

export function sourceRulesVector(): SourceRulesVector {
  return readVectorJson<SourceRulesVector>('trustplane-v1/bundle-v1.source-rules.json');
}

export const NOW = 1_800_000_000;

export const softwareSource: PolicySource = {
  source_type: 'software_jwks',
  issuer: 'https://issuer.example/software-jwks',
  trust_domain: 'example.local',
  subject_exact: 'service:orders-client',
  required_key_binding: 'software',
};

export const spireSource: PolicySource = {
  source_type: 'spiffe_spire',
  issuer: 'https://issuer.example/spire',
  trust_domain: 'example.local',
  subject_prefix: 'spiffe://example.local/ns/orders/sa/',
  required_key_binding: 'attested_workload',
};

export function route(
  id: string,
  method: string,
  pathTemplate: string,
  extra: Partial<PolicyRoute> = {},
): PolicyRoute {
  return {
    route_id: id,
    method,
    path_template: pathTemplate,
    allowed_sources: [structuredClone(softwareSource)],
    ...extra,
  };
}

/** A small valid bundle: orders-api with search, get and create. */
export function sampleBundle(overrides: Partial<PolicyBundle> = {}): PolicyBundle {
  return {
    version: 'trustplane-bundle-v1',
    kind: 'policy_runtime_bundle',
    trust_domain: 'example.local',
    apis: [{ api_id: 'orders-api', audience: 'orders-api', base_url: 'https://orders.example' }],
    route_groups: [
      {
        route_group_id: 'orders-read',
        api_id: 'orders-api',
        routes: [
          route('orders.search', 'GET', '/v1/orders/search'),
          route('orders.get', 'GET', '/v1/orders/{order_id}'),
        ],
      },
      {
        route_group_id: 'orders-write',
        api_id: 'orders-api',
        routes: [
          route('orders.create', 'POST', '/v1/orders', {
            required_key_binding: 'hardware_local',
            allowed_sources: [structuredClone(softwareSource), structuredClone(spireSource)],
          }),
        ],
      },
    ],
    revocations: [],
    issued_at: NOW,
    ...overrides,
  };
}

export interface IssuerFixture {
  issuerKey: SigningKey;
  oldKey: SigningKey;
  doc: TrustMaterial;
}

/** Trust material with a software_jwks issuer (two keys) and a SPIRE issuer. */
export async function sampleTrustMaterial(): Promise<IssuerFixture> {
  const issuerKey = await generateSigningKey();
  const oldKey = await generateSigningKey();
  const spireKey = await generateSigningKey();
  const doc: TrustMaterial = {
    version: 'trustplane-trust-material-v1',
    kind: 'trust_material',
    trust_domain: 'example.local',
    issued_at: NOW,
    issuers: [
      {
        issuer: 'https://issuer.example/software-jwks',
        trust_domain: 'example.local',
        source_type: 'software_jwks',
        keys: [
          { kty: 'OKP', crv: 'Ed25519', x: oldKey.publicKey.x, kid: 'sw-old', exp: NOW + 100 },
          { kty: 'OKP', crv: 'Ed25519', x: issuerKey.publicKey.x, kid: 'sw-1', use: 'sig', alg: 'EdDSA' },
        ],
      },
      {
        issuer: 'https://issuer.example/spire',
        trust_domain: 'example.local',
        source_type: 'spiffe_spire',
        keys: [{ kty: 'OKP', crv: 'Ed25519', x: spireKey.publicKey.x, kid: 'spire-1' }],
      },
    ],
  };
  return { issuerKey, oldKey, doc };
}
