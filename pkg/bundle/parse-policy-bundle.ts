import type { SlicePoint } from '../internal/yield.js';
import { parseJsonText, parseWith } from './parse-document.js';
import {
  type PolicyBundle,
  type PolicyRoute,
  type PolicyRouteGroup,
  policyBundleHeadSchema,
  policyBundleReferencesSchema,
  policyBundleSchema,
  policyRouteGroupHeadSchema,
  policyRouteSchema,
} from './policy-bundle-schema.js';

/**
 * Parse and schema-check policy-bundle JSON text (no signature check; see {@link loadPolicyBundle}).
 *
 * @param text JSON text or its UTF-8 bytes, at most {@link MAX_DOCUMENT_BYTES}
 * @returns the validated document
 * @throws TrustplaneError `invalid_bundle` for oversize, non-UTF-8, non-JSON or schema-invalid input
 * @example const doc = parsePolicyBundleText(await fs.readFile('bundle.json'))
 */
export function parsePolicyBundleText(text: string | Uint8Array): PolicyBundle {
  return parseWith(policyBundleSchema, parseJsonText(text, 'policy bundle'), 'policy bundle');
}

/**
 * Schema-check a policy bundle value without verifying its signature (used by editing tools).
 * @throws TrustplaneError `invalid_bundle`
 * @example const doc = parsePolicyBundle(JSON.parse(text))
 */
export function parsePolicyBundle(value: unknown): PolicyBundle {
  return parseWith(policyBundleSchema, value, 'policy bundle');
}

/**
 * {@link parsePolicyBundle} for a large bundle, checked part by part with `pause` consulted before
 * each route, so the check does not hold the event loop for all of it. It accepts exactly the
 * documents `parsePolicyBundle` accepts and returns the same value; when a document has several
 * problems, the one named may differ (the parts are checked in another order). Internal to pkg/bundle.
 * @throws TrustplaneError `invalid_bundle`
 */
export async function parsePolicyBundleSliced(value: unknown, pause: SlicePoint): Promise<PolicyBundle> {
  const head = parseWith(policyBundleHeadSchema, value, 'policy bundle');
  const groups: PolicyRouteGroup[] = [];
  for (let g = 0; g < head.route_groups.length; g++) {
    const group = parseWith(policyRouteGroupHeadSchema, head.route_groups[g], 'policy bundle', [
      'route_groups',
      g,
    ]);
    const routes: PolicyRoute[] = [];
    for (let r = 0; r < group.routes.length; r++) {
      const paused = pause();
      if (paused) await paused;
      const at = ['route_groups', g, 'routes', r];
      routes.push(parseWith(policyRouteSchema, group.routes[r], 'policy bundle', at));
    }
    groups.push({ route_group_id: group.route_group_id, api_id: group.api_id, routes });
  }
  const bundle: PolicyBundle = { ...head, route_groups: groups };
  return parseWith(policyBundleReferencesSchema, bundle, 'policy bundle');
}
