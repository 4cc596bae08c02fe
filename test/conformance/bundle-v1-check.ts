import { expect } from 'vitest';
import { buildRouteTable, parsePolicyBundle } from '../../pkg/bundle/index.js';

/**
 * bundle-v1 source rules: the policy bundle parses with our strict schema, round-trips unchanged,
 * keeps the source rule values exactly, and names the expected source types in order.
 */
export async function checkBundleVector(v: Record<string, unknown>): Promise<void> {
  const raw = v.policy_bundle as Record<string, unknown>;
  const parsed = parsePolicyBundle(raw);
  expect(JSON.parse(JSON.stringify(parsed))).toEqual(raw);
  const sources = parsed.route_groups.flatMap((g) => g.routes.flatMap((r) => r.allowed_sources));
  expect(sources.map((s) => s.source_type)).toEqual(v.expected_source_types);
  const [software, oidc, spire] = sources;
  expect(software).toMatchObject({
    subject_exact: 'service:orders-client',
    required_key_binding: 'software',
  });
  expect(oidc?.context_policy).toEqual({
    required_tool_name: 'orders-runner',
    required_workflow_id: 'orders-search',
  });
  expect(spire).toMatchObject({
    subject_prefix: 'spiffe://example.local/ns/orders/sa/',
    required_key_binding: 'attested_workload',
    provenance_policy: {
      profile: 'trustplane-spiffe-spire-k8s-v1',
      required_spiffe_trust_domain: 'example.local',
      required_posture: 'spiffe_svid_verified',
    },
  });
  const table = buildRouteTable(
    parsed.route_groups.flatMap((g) =>
      g.routes.map((route) => ({
        route,
        api: parsed.apis.find((a) => a.api_id === g.api_id)!,
        routeGroupId: g.route_group_id,
      })),
    ),
  );
  expect(table.resolve('GET', '/v1/orders/search')?.route.route_id).toBe('orders.search');
  expect(table.resolve('POST', '/v1/orders/search')).toBeUndefined();
}
