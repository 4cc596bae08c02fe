import {
  generateSigningKey,
  issuePassport,
  type IssuePassportClaims,
  type KeyBinding,
  type SigningKey,
} from '../../pkg/authcore/index.js';
import { loadPolicyBundle, loadTrustMaterial, signDocument } from '../../pkg/bundle/index.js';
import type { LoadedPolicy, LoadedTrustMaterial } from '../../pkg/bundle/index.js';
import { signRequest } from '../../pkg/proof/index.js';

/** Fixed test clock: 2026-01-01T00:00:00Z. */
export const NOW = 1_767_225_600;

export const SOFTWARE_ISSUER = 'https://issuer.example/software-jwks';
export const BROKER_ISSUER = 'https://issuer.example/spire';
export const OTHER_ISSUER = 'https://other.example/software-jwks';
export const UNLISTED_ISSUER = 'https://unlisted.example/software-jwks';
export const TRUST_DOMAIN = 'example.local';
export const ORIGIN = 'https://orders.example';

/** Keys of one test world. */
export interface World {
  caller: SigningKey;
  broker: SigningKey;
  other: SigningKey;
  unlisted: SigningKey;
  bundleSigner: SigningKey;
  trustDoc: Record<string, unknown>;
  policyDoc: Record<string, unknown>;
  trust: LoadedTrustMaterial;
  policy: LoadedPolicy;
}

const jwk = (key: SigningKey, kid: string) => ({ kty: 'OKP', crv: 'Ed25519', x: key.publicKey.x, kid });

/** Route list used by the verifier tests. */
export function testRoutes() {
  const software = {
    source_type: 'software_jwks',
    issuer: SOFTWARE_ISSUER,
    trust_domain: TRUST_DOMAIN,
    subject_exact: 'service:orders-client',
  };
  const other = {
    source_type: 'software_jwks',
    issuer: OTHER_ISSUER,
    trust_domain: 'other.local',
    subject_prefix: 'service:',
  };
  const spire = {
    source_type: 'spiffe_spire',
    issuer: BROKER_ISSUER,
    trust_domain: TRUST_DOMAIN,
    subject_prefix: 'spiffe://example.local/ns/orders/sa/',
    required_key_binding: 'attested_workload',
    provenance_policy: {
      profile: 'trustplane-spiffe-spire-k8s-v1',
      required_spiffe_trust_domain: 'example.local',
      required_posture: 'spiffe_svid_verified',
    },
    context_policy: { required_purpose: 'refund', max_txn_value: '500.00' },
  };
  return [
    {
      route_id: 'orders.search',
      method: 'GET',
      path_template: '/v1/orders/search',
      allowed_sources: [software, other],
    },
    {
      route_id: 'orders.get',
      method: 'GET',
      path_template: '/v1/orders/{order_id}',
      allowed_sources: [software],
    },
    {
      route_id: 'orders.create',
      method: 'POST',
      path_template: '/v1/orders',
      allowed_sources: [software],
    },
    {
      route_id: 'orders.secure',
      method: 'POST',
      path_template: '/v1/orders/{order_id}/approve',
      required_key_binding: 'hardware_local',
      allowed_sources: [software],
    },
    {
      route_id: 'orders.refund',
      method: 'POST',
      path_template: '/v1/orders/{order_id}/refund',
      allowed_sources: [spire],
    },
    {
      route_id: 'orders.live',
      method: 'GET',
      path_template: '/v1/orders/live',
      freshness_class: 'realtime',
      allowed_sources: [software],
    },
    {
      route_id: 'orders.archive',
      method: 'GET',
      path_template: '/v1/orders/archive',
      freshness_class: 'offline-ok',
      allowed_sources: [software],
    },
    {
      route_id: 'orders.tenant',
      method: 'GET',
      path_template: '/v1/tenants/{tenant}/orders',
      covered_headers: ['x-tenant-id'],
      allowed_sources: [software],
    },
  ];
}

/** Build a signed trust material + policy bundle world and load it. */
export async function createWorld(
  options: { policyPatch?: (doc: Record<string, unknown>) => void; issuedAt?: number } = {},
): Promise<World> {
  const [caller, broker, other, unlisted, bundleSigner] = await Promise.all([
    generateSigningKey(),
    generateSigningKey(),
    generateSigningKey(),
    generateSigningKey(),
    generateSigningKey(),
  ]);
  const trustDoc = await signDocument(
    {
      version: 'trustplane-trust-material-v1',
      kind: 'trust_material',
      trust_domain: TRUST_DOMAIN,
      issued_at: NOW - 60,
      issuers: [
        {
          issuer: SOFTWARE_ISSUER,
          trust_domain: TRUST_DOMAIN,
          source_type: 'software_jwks',
          keys: [jwk(caller, 'caller-1')],
        },
        {
          issuer: BROKER_ISSUER,
          trust_domain: TRUST_DOMAIN,
          source_type: 'spiffe_spire',
          max_key_binding: 'attested_workload',
          keys: [jwk(broker, 'broker-1')],
        },
        {
          issuer: OTHER_ISSUER,
          trust_domain: 'other.local',
          source_type: 'software_jwks',
          keys: [jwk(other, 'other-1')],
        },
        {
          issuer: UNLISTED_ISSUER,
          trust_domain: TRUST_DOMAIN,
          source_type: 'software_jwks',
          keys: [jwk(unlisted, 'unlisted-1')],
        },
      ],
    },
    bundleSigner,
    { issuer: 'https://bundles.example', kid: 'bundle-signer-1' },
  );
  const policyDoc: Record<string, unknown> = {
    version: 'trustplane-bundle-v1',
    kind: 'policy_runtime_bundle',
    trust_domain: TRUST_DOMAIN,
    issued_at: options.issuedAt ?? NOW - 60,
    apis: [{ api_id: 'orders-api', audience: 'orders-api', base_url: ORIGIN }],
    route_groups: [{ route_group_id: 'orders', api_id: 'orders-api', routes: testRoutes() }],
    default_required_key_binding: 'software',
    default_freshness_class: 'bounded',
    default_max_staleness_seconds: 300,
    revocations: [],
  };
  options.policyPatch?.(policyDoc);
  const signedPolicy = await signDocument(policyDoc, bundleSigner, {
    issuer: 'https://bundles.example',
    kid: 'bundle-signer-1',
  });
  const signers = [{ kid: 'bundle-signer-1', key: bundleSigner.publicKey }];
  const trust = await loadTrustMaterial(trustDoc, { signers });
  const policy = await loadPolicyBundle(signedPolicy, { signers });
  return {
    caller,
    broker,
    other,
    unlisted,
    bundleSigner,
    trustDoc: trustDoc as unknown as Record<string, unknown>,
    policyDoc: signedPolicy as unknown as Record<string, unknown>,
    trust,
    policy,
  };
}

/** What to sign. */
export interface SignSpec {
  method?: string;
  /** Path (and query) after the origin. */
  target?: string;
  routeId?: string;
  body?: string;
  headers?: Record<string, string>;
  cover?: string[];
  nonce?: string;
  claims?: Partial<IssuePassportClaims>;
  keyBinding?: KeyBinding;
  /** Issuer key (default caller, self-issued). */
  issuerKey?: SigningKey;
  kid?: string;
  /** Request key (default the issuer key). */
  requestKey?: SigningKey;
  /** Header alg/kid overrides are done by the tests themselves. */
  ttl?: number;
}

/** Issue a passport and sign a request; returns the headers to send and the URL. */
export async function signed(world: World, spec: SignSpec = {}) {
  const issuerKey = spec.issuerKey ?? world.caller;
  const requestKey = spec.requestKey ?? issuerKey;
  const iat = spec.claims?.iat ?? NOW;
  const claims: IssuePassportClaims = {
    iss: SOFTWARE_ISSUER,
    sub: 'service:orders-client',
    aud: 'orders-api',
    iat,
    exp: iat + (spec.ttl ?? 300),
    jti: `jti-${crypto.randomUUID()}`,
    trust_domain: TRUST_DOMAIN,
    ...spec.claims,
    cnf: {
      kid: 'request-key',
      key_binding: spec.keyBinding ?? 'software',
      public_key_b64url: requestKey.publicKey.x,
      ...spec.claims?.cnf,
    },
  };
  const passport = await issuePassport(claims, issuerKey, { kid: spec.kid ?? 'caller-1' });
  const method = spec.method ?? 'GET';
  const url = `${ORIGIN}${spec.target ?? '/v1/orders/search'}`;
  const result = await signRequest({
    method,
    url,
    routeId: spec.routeId ?? 'orders.search',
    passport,
    requestKey,
    ...(spec.headers ? { headers: spec.headers } : {}),
    ...(spec.body !== undefined ? { body: spec.body } : {}),
    ...(spec.cover ? { coveredHeaders: spec.cover } : {}),
    ...(spec.nonce !== undefined ? { nonce: spec.nonce } : {}),
  });
  return { ...result, url, method, passport, claims };
}

/** Build a Web Request from a signed spec, with optional overrides. */
export function toRequest(
  s: { url: string; method: string; headers: Readonly<Record<string, string>> },
  override: { url?: string; body?: string; headers?: Record<string, string | null> } = {},
  body?: string,
): Request {
  const headers = new Headers(s.headers as Record<string, string>);
  for (const [k, v] of Object.entries(override.headers ?? {})) {
    if (v === null) headers.delete(k);
    else headers.set(k, v);
  }
  const payload = override.body ?? body;
  return new Request(override.url ?? s.url, {
    method: s.method,
    headers,
    ...(payload !== undefined && s.method !== 'GET' ? { body: payload } : {}),
  });
}

/** A signed `POST /v1/orders` (route `orders.create`) with a JSON body. */
export function signedJson(world: World, body: string, spec: SignSpec = {}) {
  return signed(world, {
    method: 'POST',
    target: '/v1/orders',
    routeId: 'orders.create',
    body,
    headers: { 'content-type': 'application/json' },
    ...spec,
  });
}

/** The broker's SPIFFE workloads (`spiffe://example.local/ns/orders/sa/...`) as a route source. */
export function brokerSource(extra: Record<string, unknown> = {}) {
  return {
    source_type: 'spiffe_spire',
    issuer: BROKER_ISSUER,
    trust_domain: TRUST_DOMAIN,
    subject_prefix: 'spiffe://example.local/ns/orders/sa/',
    ...extra,
  };
}

/** A `createWorld` policy patch adding {@link brokerSource} to the given routes. */
export function allowBrokerOn(routeIds: readonly string[], extra: Record<string, unknown> = {}) {
  return (doc: Record<string, unknown>) => {
    const routes = (doc.route_groups as { routes: { route_id: string; allowed_sources: unknown[] }[] }[])[0]!
      .routes;
    for (const id of routeIds)
      routes.find((r) => r.route_id === id)!.allowed_sources.push(brokerSource(extra));
  };
}
