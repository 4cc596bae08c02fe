/**
 * The small dev world shared by the tour (`scripts/tour.ts`) and the CLI tests: one software issuer
 * whose key is the caller's own (self-issued passports), and an orders API with three routes.
 * These are `trustplane bundle build` configs, not documents: the builder adds version, kind and
 * issued_at.
 */

export const DEV_ISSUER = 'https://issuer.example/software-jwks';
export const DEV_SUBJECT = 'service:orders-client';
export const DEV_TRUST_DOMAIN = 'example.local';

/** Trust-material config trusting `callerX` (base64url public key) as kid `caller-1` of {@link DEV_ISSUER}. */
export function devTrustConfig(callerX: string) {
  return {
    trust_domain: DEV_TRUST_DOMAIN,
    issuers: [
      {
        issuer: DEV_ISSUER,
        trust_domain: DEV_TRUST_DOMAIN,
        source_type: 'software_jwks',
        keys: [{ kty: 'OKP', crv: 'Ed25519', x: callerX, kid: 'caller-1' }],
      },
    ],
  };
}

/** Policy config: `orders.search` (GET), `orders.create` (POST), `orders.approve` (POST, hardware_local). */
export function devPolicyConfig() {
  const source = {
    source_type: 'software_jwks',
    issuer: DEV_ISSUER,
    trust_domain: DEV_TRUST_DOMAIN,
    subject_exact: DEV_SUBJECT,
  };
  return {
    trust_domain: DEV_TRUST_DOMAIN,
    apis: [{ api_id: 'orders-api', audience: 'orders-api', base_url: 'https://orders.example' }],
    route_groups: [
      {
        route_group_id: 'orders',
        api_id: 'orders-api',
        routes: [
          {
            route_id: 'orders.search',
            method: 'GET',
            path_template: '/v1/orders/search',
            allowed_sources: [source],
          },
          {
            route_id: 'orders.create',
            method: 'POST',
            path_template: '/v1/orders',
            allowed_sources: [source],
          },
          {
            route_id: 'orders.approve',
            method: 'POST',
            path_template: '/v1/orders/{order_id}/approve',
            required_key_binding: 'hardware_local',
            allowed_sources: [source],
          },
        ],
      },
    ],
  };
}
