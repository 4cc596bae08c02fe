import { z } from 'zod';
import { checkNow, lifetime } from './document-lifetime.js';
import { parseWith } from './parse-document.js';
import { parsePolicyBundle } from './parse-policy-bundle.js';
import { type PolicyBundle, policyBundleSchema, POLICY_BUNDLE_VERSION } from './policy-bundle-schema.js';

const bundle = policyBundleSchema.shape;

/** Input of {@link buildPolicyBundle}: the policy content; the builder adds version, kind and times. */
export const policyBundleConfigSchema = z.strictObject({
  trust_domain: bundle.trust_domain,
  apis: bundle.apis,
  route_groups: bundle.route_groups,
  scopes: bundle.scopes,
  defaults: z
    .strictObject({
      required_key_binding: bundle.default_required_key_binding,
      freshness_class: bundle.default_freshness_class,
      max_staleness_seconds: bundle.default_max_staleness_seconds,
    })
    .optional(),
  provenance_policy: bundle.provenance_policy,
  context_policy: bundle.context_policy,
  contract_metadata: bundle.contract_metadata,
  revocations: bundle.revocations,
  revocation_feed: bundle.revocation_feed,
  policy_version: bundle.policy_version,
  /** When set, `expires_at = now + expires_in_seconds`. */
  expires_in_seconds: lifetime.optional(),
});

/** Input of {@link buildPolicyBundle}. */
export type PolicyBundleConfig = z.input<typeof policyBundleConfigSchema>;

/**
 * Build an unsigned trustplane-bundle-v1 policy bundle from a config: sets `version`, `kind`,
 * `revocations` (default `[]`), `issued_at = now` and, with `expires_in_seconds`, `expires_at`.
 * Sign it with `signDocument` before distributing it.
 *
 * @param config APIs, route groups, defaults and policies (untrusted: validated strictly)
 * @param now current time, integer epoch seconds
 * @returns the validated document (no `signed_by`/`signature`)
 * @throws TrustplaneError `invalid_bundle` (the message names the first failing path); RangeError for a bad `now`
 * @example
 * const doc = buildPolicyBundle({ trust_domain: 'example.local', apis, route_groups }, nowSeconds)
 */
export function buildPolicyBundle(config: PolicyBundleConfig, now: number): PolicyBundle {
  checkNow(now, 'buildPolicyBundle');
  const c = parseWith(policyBundleConfigSchema, config, 'policy bundle config');
  const doc: Record<string, unknown> = {
    version: POLICY_BUNDLE_VERSION,
    kind: 'policy_runtime_bundle',
    ...(c.contract_metadata !== undefined ? { contract_metadata: c.contract_metadata } : {}),
    trust_domain: c.trust_domain,
    apis: c.apis,
    route_groups: c.route_groups,
    ...(c.scopes !== undefined ? { scopes: c.scopes } : {}),
    ...(c.defaults?.required_key_binding !== undefined
      ? { default_required_key_binding: c.defaults.required_key_binding }
      : {}),
    ...(c.defaults?.freshness_class !== undefined
      ? { default_freshness_class: c.defaults.freshness_class }
      : {}),
    ...(c.defaults?.max_staleness_seconds !== undefined
      ? { default_max_staleness_seconds: c.defaults.max_staleness_seconds }
      : {}),
    ...(c.provenance_policy !== undefined ? { provenance_policy: c.provenance_policy } : {}),
    ...(c.context_policy !== undefined ? { context_policy: c.context_policy } : {}),
    revocations: c.revocations ?? [],
    ...(c.revocation_feed !== undefined ? { revocation_feed: c.revocation_feed } : {}),
    issued_at: now,
    ...(c.expires_in_seconds !== undefined ? { expires_at: now + c.expires_in_seconds } : {}),
    ...(c.policy_version !== undefined ? { policy_version: c.policy_version } : {}),
  };
  return parsePolicyBundle(doc);
}
