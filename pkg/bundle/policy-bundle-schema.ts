import { z } from 'zod';
import { keyBindingSchema } from '../authcore/claims.js';
import { signatureSchema, signedBySchema } from './document-signature-schema.js';
import { buildMcpPolicySchema } from './mcp-policy-schema.js';
import { parsePathTemplate, templateShapeOf } from './path-template.js';
import {
  addDuplicateIssues,
  epochSeconds,
  sourceType,
  text,
  trustDomain,
  urlField,
  addValidityWindowIssue,
} from './schema-fields.js';

/*
 * zod schemas of the trustplane-bundle-v1 policy bundle and its parts. The rules every document
 * schema follows, and the building blocks they share, are in schema-fields.ts.
 */

/** Policy-bundle format identifier. */
export const POLICY_BUNDLE_VERSION = 'trustplane-bundle-v1';

/** Printable ASCII without spaces: ids travel in headers such as `X-TrustPlane-Route-Id`. */
const identifier = z
  .string()
  .regex(/^[\x21-\x7e]{1,256}$/, 'must be 1-256 printable ASCII characters without spaces');
const headerName = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9a-z]{1,64}$/, 'must be a lowercase header name');
const decimal = z.string().regex(/^(?:0|[1-9][0-9]{0,30})(?:\.[0-9]{1,18})?$/, 'must be a decimal string');

/** `risk` of a route. */
export const riskSchema = z.enum(['low', 'medium', 'high', 'critical']);
/** Freshness classes of trustplane-bundle-v1. */
export const freshnessClassSchema = z.enum(['realtime', 'bounded', 'offline-ok']);

/** Caller-context requirements (compared with the passport `ctx`). */
export const contextPolicySchema = z.strictObject({
  required_actor_type: text(256).optional(),
  required_purpose: text(256).optional(),
  required_tool_name: text(256).optional(),
  required_workflow_id: text(256).optional(),
  /** Largest `ctx.max_txn_value` accepted, as a decimal string. */
  max_txn_value: decimal.optional(),
});

/** Provenance requirements (compared with the passport `provenance`). */
export const provenancePolicySchema = z.strictObject({
  profile: text(256).optional(),
  required_spiffe_trust_domain: trustDomain.optional(),
  required_posture: text(256).optional(),
  required_signer: text(256).optional(),
});

/** One allowed source of a route: who may call it. Exactly one of `subject_exact`/`subject_prefix`. */
export const policySourceSchema = z
  .strictObject({
    source_type: sourceType,
    issuer: text(2048),
    trust_domain: trustDomain,
    subject_exact: text(2048).optional(),
    subject_prefix: text(2048).optional(),
    required_key_binding: keyBindingSchema.optional(),
    context_policy: contextPolicySchema.optional(),
    provenance_policy: provenancePolicySchema.optional(),
  })
  .superRefine((source, ctx) => {
    if ((source.subject_exact === undefined) === (source.subject_prefix === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'exactly one of subject_exact and subject_prefix is required',
        path: ['subject_exact'],
      });
    }
  });

/**
 * The `mcp` option of a route (ours): per JSON-RPC method, tool, resource and prompt rules for an
 * MCP Streamable HTTP endpoint. See docs/mcp.md.
 */
export const mcpPolicySchema = buildMcpPolicySchema(policySourceSchema, contextPolicySchema);

/** How a route's decisions are enforced: `enforce` (default) or `dry-run` (recorded, not enforced). */
export const enforcementModeSchema = z.enum(['enforce', 'dry-run']);

/** One route: method + path template, and who may call it. */
export const policyRouteSchema = z
  .strictObject({
    route_id: identifier,
    method: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Z]{1,32}$/, 'must be an uppercase HTTP method token'),
    path_template: z.string().superRefine((template, ctx) => {
      const parsed = parsePathTemplate(template);
      if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
    }),
    risk: riskSchema.optional(),
    required_key_binding: keyBindingSchema.optional(),
    allowed_sources: z.array(policySourceSchema).min(1),
    freshness_class: freshnessClassSchema.optional(),
    max_staleness_seconds: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    /** Headers the request proof must cover (ours; default `["x-trustplane-nonce"]`). */
    covered_headers: z.array(headerName).max(32).optional(),
    /** Accept a body without `X-TrustPlane-Body-SHA256` verification (ours; default false). */
    allow_unverified_body: z.boolean().optional(),
    /**
     * `required`: the adapter allows only after the allow event is durably written (PostgreSQL
     * commit or file fsync), else 503 `audit_unavailable`. Default `best_effort` (never waits).
     */
    audit: z.enum(['required', 'best_effort']).optional(),
    /** Sign a `trustplane-receipt-v1` over the request and the upstream's answer (ours; default false). */
    receipt: z.boolean().optional(),
    /**
     * `enforce` (default): a deny is answered. `dry-run` (ours): the decision is made, recorded in
     * the audit ledger (`enforcement: "dry-run"`) and counted (`would_deny`), but a deny is not
     * enforced: the request goes on without any verified identity, and the answer carries nothing
     * of the decision. Request-layer refusals (unsafe path, malformed request, body too large) and
     * internal errors are always enforced.
     */
    enforcement: enforcementModeSchema.optional(),
    /**
     * Ours: the route is an MCP endpoint. Each JSON-RPC call in the (verified) body is decided by
     * these rules after the request proof and the one-time jti; list answers are filtered to what
     * the caller may use. See docs/mcp.md.
     */
    mcp: mcpPolicySchema.optional(),
  })
  .superRefine((route, ctx) => {
    const headers = route.covered_headers ?? [];
    if (new Set(headers).size !== headers.length) {
      ctx.addIssue({ code: 'custom', message: 'covered_headers has duplicates', path: ['covered_headers'] });
    }
  });

/** An API (one audience) the bundle protects. */
export const policyApiSchema = z.strictObject({
  api_id: identifier,
  audience: text(2048),
  base_url: urlField(['http', 'https']).optional(),
  /**
   * Ours. `true` when the API's upstream routes paths case-sensitively (Hono, Go `net/http`,
   * Flask). Default `false`: the upstream may fold letter case (Express's default), so a path that
   * would then reach another route of the bundle is refused `ambiguous_request_path`.
   */
  case_sensitive_paths: z.boolean().optional(),
});

/** Routes of one API, grouped (scopes name groups). */
const policyRouteGroupShape = {
  route_group_id: identifier,
  api_id: identifier,
  routes: z.array(policyRouteSchema),
};
export const policyRouteGroupSchema = z.strictObject(policyRouteGroupShape);

/**
 * A route group with its routes left unchecked: a loader that checks a large bundle in slices
 * checks each route with {@link policyRouteSchema} itself (see parsePolicyBundleSliced).
 */
export const policyRouteGroupHeadSchema = z.strictObject({
  ...policyRouteGroupShape,
  routes: z.array(z.unknown()),
});

/** A scope granting a route group. */
export const policyScopeSchema = z.strictObject({
  scope: text(256),
  route_group_id: identifier,
});

/** A revocation: a `jti`, a subject, or a key id; optionally scoped to one issuer. */
export const revocationSchema = z.strictObject({
  kind: z.enum(['jti', 'subject', 'key']),
  issuer: text(2048).optional(),
  value: text(2048),
  reason: text(1024).optional(),
  revoked_at: epochSeconds.optional(),
});

/** Where revocations come from and how fresh they must be. */
export const revocationFeedSchema = z.strictObject({
  freshness_class: freshnessClassSchema,
});

const policyBundleShape = {
  version: z.literal(POLICY_BUNDLE_VERSION),
  kind: z.literal('policy_runtime_bundle'),
  contract_metadata: z.record(z.string().max(256), z.string().max(4096)).optional(),
  trust_domain: trustDomain,
  apis: z.array(policyApiSchema),
  route_groups: z.array(policyRouteGroupSchema),
  scopes: z.array(policyScopeSchema).optional(),
  default_required_key_binding: keyBindingSchema.optional(),
  default_freshness_class: freshnessClassSchema.optional(),
  default_max_staleness_seconds: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  provenance_policy: provenancePolicySchema.optional(),
  context_policy: contextPolicySchema.optional(),
  revocations: z.array(revocationSchema).optional(),
  revocation_feed: revocationFeedSchema.optional(),
  /** Epoch seconds the bundle was built (ours; the age the freshness classes measure). */
  issued_at: epochSeconds.optional(),
  expires_at: epochSeconds.optional(),
  policy_version: text(256).optional(),
  signed_by: signedBySchema.optional(),
  signature: signatureSchema.optional(),
};

/**
 * The checks across a bundle's parts: unique ids, references between apis, route groups and
 * scopes, no two routes of one method and template shape, and the validity window.
 */
function checkBundleReferences(bundle: PolicyBundle, ctx: z.RefinementCtx): void {
  addDuplicateIssues(
    ctx,
    bundle.apis,
    (a) => a.api_id,
    (i) => ['apis', i, 'api_id'],
    'duplicate api_id',
  );
  addDuplicateIssues(
    ctx,
    bundle.route_groups,
    (g) => g.route_group_id,
    (i) => ['route_groups', i, 'route_group_id'],
    'duplicate route_group_id',
  );
  const apiIds = new Set(bundle.apis.map((a) => a.api_id));
  const groupIds = new Set(bundle.route_groups.map((g) => g.route_group_id));
  const routeIds = new Set<string>();
  const shapes = new Map<string, string>();
  bundle.route_groups.forEach((group, g) => {
    if (!apiIds.has(group.api_id)) {
      ctx.addIssue({
        code: 'custom',
        message: 'api_id does not name an entry of apis',
        path: ['route_groups', g, 'api_id'],
      });
    }
    group.routes.forEach((route, r) => {
      const path = ['route_groups', g, 'routes', r];
      if (routeIds.has(route.route_id)) {
        ctx.addIssue({
          code: 'custom',
          message: 'duplicate route_id (route ids are unique across the bundle)',
          path: [...path, 'route_id'],
        });
      }
      routeIds.add(route.route_id);
      // An invalid template has its own issue already (the first one reported); its shape here
      // can only add later issues.
      const key = `${route.method} ${templateShapeOf(route.path_template)}`;
      const other = shapes.get(key);
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `method and path_template collide with route ${JSON.stringify(other)}`,
          path: [...path, 'path_template'],
        });
      } else {
        shapes.set(key, route.route_id);
      }
    });
  });
  (bundle.scopes ?? []).forEach((scope, i) => {
    if (!groupIds.has(scope.route_group_id)) {
      ctx.addIssue({
        code: 'custom',
        message: 'route_group_id does not name an entry of route_groups',
        path: ['scopes', i, 'route_group_id'],
      });
    }
  });
  addValidityWindowIssue(ctx, bundle);
}

/** The trustplane-bundle-v1 policy bundle (the conformance vector's `policy_bundle`). */
export const policyBundleSchema = z.strictObject(policyBundleShape).superRefine(checkBundleReferences);

/** The bundle with its route groups left unchecked (see {@link policyRouteGroupHeadSchema}). */
export const policyBundleHeadSchema = z.strictObject({
  ...policyBundleShape,
  route_groups: z.array(z.unknown()),
});

/** Only the checks across parts, for a bundle whose parts were checked one by one. */
export const policyBundleReferencesSchema = z.custom<PolicyBundle>().superRefine(checkBundleReferences);

/** A trustplane-bundle-v1 policy bundle. */
export type PolicyBundle = z.infer<typeof policyBundleSchema>;
/** An API entry of a policy bundle. */
export type PolicyApi = z.infer<typeof policyApiSchema>;
/** A route group of a policy bundle. */
export type PolicyRouteGroup = z.infer<typeof policyRouteGroupSchema>;
/** A route of a policy bundle. */
export type PolicyRoute = z.infer<typeof policyRouteSchema>;
/** An allowed source of a route. */
export type PolicySource = z.infer<typeof policySourceSchema>;
/** A scope entry. */
export type PolicyScope = z.infer<typeof policyScopeSchema>;
/** Source or bundle context policy. */
export type ContextPolicy = z.infer<typeof contextPolicySchema>;
/** Source or bundle provenance policy. */
export type ProvenancePolicy = z.infer<typeof provenancePolicySchema>;
/** A revocation entry. */
export type Revocation = z.infer<typeof revocationSchema>;
/** A freshness class. */
export type FreshnessClass = z.infer<typeof freshnessClassSchema>;
/** A route risk label. */
export type RouteRisk = z.infer<typeof riskSchema>;
/** The `mcp` option of a route. */
export type McpPolicy = z.infer<typeof mcpPolicySchema>;
/** A tool rule of a route's `mcp` option. */
export type McpToolRule = NonNullable<McpPolicy['tools']>[number];
/** A resource rule of a route's `mcp` option. */
export type McpResourceRule = NonNullable<McpPolicy['resources']>[number];
/** A prompt rule of a route's `mcp` option. */
export type McpPromptRule = NonNullable<McpPolicy['prompts']>[number];
/** An argument constraint of a tool or prompt rule. */
export type McpArgumentRule = NonNullable<McpToolRule['arguments']>[number];
/** A route's enforcement mode. */
export type EnforcementMode = z.infer<typeof enforcementModeSchema>;
