import { z } from 'zod';
import { keyBindingSchema } from '../authcore/claims.js';
import { parsePathTemplate, templateShape } from './path-template.js';

/*
 * zod schemas of the two signed documents. Every object is strict (unknown keys rejected), every
 * string is bounded, and there are no defaults or transforms: a parsed document deep-equals its
 * input, so what is signed, what is stored and what is enforced are the same value.
 */

/** Policy-bundle format identifier. */
export const POLICY_BUNDLE_VERSION = 'trustplane-bundle-v1';
/** Trust-material format identifier. */
export const TRUST_MATERIAL_VERSION = 'trustplane-trust-material-v1';
/** Signature format of signed documents. */
export const SIGNATURE_FORMAT = 'ed25519-jcs-v1';
/** Signature format of placeholder (unsigned) documents. */
export const UNSIGNED_SIGNATURE_FORMAT = 'unsigned-skeleton';

const text = (max: number) => z.string().min(1).max(max);
const epochSeconds = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** Printable ASCII without spaces: ids travel in headers such as `X-TrustPlane-Route-Id`. */
const identifier = z
  .string()
  .regex(/^[\x21-\x7e]{1,256}$/, 'must be 1-256 printable ASCII characters without spaces');
/** SPIFFE trust-domain characters (lowercase), at most 255 bytes. */
const trustDomain = z
  .string()
  .regex(/^[a-z0-9._-]{1,255}$/, 'must be a lowercase trust domain (a-z 0-9 . - _)');
const sourceType = z.string().regex(/^[a-z0-9_]{1,64}$/, 'must match ^[a-z0-9_]+$');
/** Canonical unpadded base64url of exactly 32 bytes: 43 characters, last one with 2 zero low bits. */
const ed25519X = z
  .string()
  .regex(/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/, 'must be canonical base64url of a 32-byte key');
/** Canonical unpadded base64url of exactly 64 bytes. */
const ed25519Signature = z
  .string()
  .regex(/^[A-Za-z0-9_-]{85}[AQgw]$/, 'must be canonical base64url of a 64-byte signature');
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

/** `signed_by` of a signed document (covered by the signature). */
export const signedBySchema = z.strictObject({
  issuer: text(2048),
  kid: text(256),
  alg: z.enum(['EdDSA', 'none']),
});

/** `signature` of a signed document (the one member the signature does not cover). */
export const signatureSchema = z.discriminatedUnion('format', [
  z.strictObject({ format: z.literal(SIGNATURE_FORMAT), value: ed25519Signature }),
  z.strictObject({ format: z.literal(UNSIGNED_SIGNATURE_FORMAT), value: z.string().max(1024) }),
]);

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
  base_url: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional(),
});

/** Routes of one API, grouped (scopes name groups). */
export const policyRouteGroupSchema = z.strictObject({
  route_group_id: identifier,
  api_id: identifier,
  routes: z.array(policyRouteSchema),
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

function addDuplicateIssues<T>(
  ctx: z.RefinementCtx,
  items: readonly T[],
  keyOf: (item: T) => string,
  path: (index: number) => PropertyKey[],
  message: string,
): void {
  const seen = new Set<string>();
  items.forEach((item, index) => {
    const key = keyOf(item);
    if (seen.has(key)) ctx.addIssue({ code: 'custom', message, path: path(index) });
    seen.add(key);
  });
}

/** The trustplane-bundle-v1 policy bundle (the conformance vector's `policy_bundle`). */
export const policyBundleSchema = z
  .strictObject({
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
  })
  .superRefine((bundle, ctx) => {
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
        const segments = parsePathTemplate(route.path_template);
        if (typeof segments === 'string') return;
        const key = `${route.method} ${templateShape(segments)}`;
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
    if (bundle.issued_at !== undefined && bundle.expires_at !== undefined) {
      if (bundle.expires_at <= bundle.issued_at) {
        ctx.addIssue({ code: 'custom', message: 'expires_at must be after issued_at', path: ['expires_at'] });
      }
    }
  });

/** An Ed25519 public JWK of a trusted issuer, with its optional validity window. */
export const issuerKeySchema = z
  .strictObject({
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519'),
    x: ed25519X,
    kid: text(256),
    use: z.literal('sig').optional(),
    alg: z.enum(['EdDSA', 'Ed25519']).optional(),
    nbf: epochSeconds.optional(),
    exp: epochSeconds.optional(),
  })
  .superRefine((key, ctx) => {
    if (key.nbf !== undefined && key.exp !== undefined && key.exp <= key.nbf) {
      ctx.addIssue({ code: 'custom', message: 'exp must be after nbf', path: ['exp'] });
    }
  });

/**
 * A trusted passport issuer. `max_key_binding` caps what it may vouch for; when absent the loader
 * uses `attested_workload` for `source_type: spiffe_spire` and `software` for every other type.
 */
export const trustedIssuerSchema = z
  .strictObject({
    issuer: text(2048),
    trust_domain: trustDomain,
    source_type: sourceType,
    max_key_binding: keyBindingSchema.optional(),
    keys: z.array(issuerKeySchema).min(1),
  })
  .superRefine((issuer, ctx) => {
    addDuplicateIssues(
      ctx,
      issuer.keys,
      (k) => k.kid,
      (i) => ['keys', i, 'kid'],
      'duplicate kid within the issuer',
    );
  });

const base64Der = z
  .string()
  .max(16384)
  .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'must be base64 DER')
  .min(4);
const b64u = (max: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_-]*$/, 'must be base64url')
    .min(1)
    .max(max);

/** One authority of a SPIFFE bundle (a JWK with a SPIFFE `use`). */
export const spiffeBundleKeySchema = z
  .strictObject({
    use: z.enum(['x509-svid', 'jwt-svid']),
    kty: z.enum(['EC', 'RSA', 'OKP']),
    kid: text(256).optional(),
    alg: text(32).optional(),
    crv: text(32).optional(),
    x: b64u(1024).optional(),
    y: b64u(1024).optional(),
    n: b64u(2048).optional(),
    e: b64u(16).optional(),
    key_ops: z.array(text(32)).max(8).optional(),
    x5c: z.array(base64Der).min(1).max(8).optional(),
    x5t: b64u(64).optional(),
    'x5t#S256': b64u(64).optional(),
    x5u: z
      .url({ protocol: /^https$/ })
      .max(2048)
      .optional(),
  })
  .superRefine((key, ctx) => {
    // SPIFFE Trust Domain and Bundle, section 4: x509-svid carries exactly one certificate
    // (go-spiffe rejects more), jwt-svid needs a kid.
    if (key.use === 'x509-svid' && key.x5c?.length !== 1) {
      ctx.addIssue({ code: 'custom', message: 'x509-svid needs exactly one x5c certificate', path: ['x5c'] });
    }
    if (key.use === 'jwt-svid' && key.kid === undefined) {
      ctx.addIssue({ code: 'custom', message: 'jwt-svid needs a kid', path: ['kid'] });
    }
  });

/** A SPIFFE trust bundle (the SPIFFE bundle JWKS format) for one trust domain. */
export const spiffeBundleSchema = z.strictObject({
  trust_domain: trustDomain,
  keys: z.array(spiffeBundleKeySchema).min(1),
  spiffe_sequence: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  spiffe_refresh_hint: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
});

/**
 * A receipt-signing key of an adapter. `nbf`/`exp` bound when the key may SIGN receipts: a receipt
 * is checked against its own `iat`, never the verifier's clock, so a key rotated out (exp passed)
 * keeps verifying the receipts it signed while the trust material still lists it.
 */
export const receiptKeySchema = z
  .strictObject({
    kid: text(256),
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519'),
    x: ed25519X,
    adapter: text(256).optional(),
    nbf: epochSeconds.optional(),
    exp: epochSeconds.optional(),
  })
  .superRefine((key, ctx) => {
    if (key.nbf !== undefined && key.exp !== undefined && key.exp <= key.nbf) {
      ctx.addIssue({ code: 'custom', message: 'exp must be after nbf', path: ['exp'] });
    }
  });

/** trustplane-trust-material-v1: trusted issuers and their keys, SPIFFE bundles, receipt keys. */
export const trustMaterialSchema = z
  .strictObject({
    version: z.literal(TRUST_MATERIAL_VERSION),
    kind: z.literal('trust_material'),
    trust_domain: trustDomain.optional(),
    issued_at: epochSeconds.optional(),
    expires_at: epochSeconds.optional(),
    issuers: z.array(trustedIssuerSchema),
    spiffe_bundles: z.array(spiffeBundleSchema).optional(),
    receipt_keys: z.array(receiptKeySchema).optional(),
    signed_by: signedBySchema.optional(),
    signature: signatureSchema.optional(),
  })
  .superRefine((doc, ctx) => {
    addDuplicateIssues(
      ctx,
      doc.issuers,
      (i) => i.issuer,
      (i) => ['issuers', i, 'issuer'],
      'duplicate issuer',
    );
    addDuplicateIssues(
      ctx,
      doc.spiffe_bundles ?? [],
      (b) => b.trust_domain,
      (i) => ['spiffe_bundles', i, 'trust_domain'],
      'duplicate SPIFFE bundle trust_domain',
    );
    addDuplicateIssues(
      ctx,
      doc.receipt_keys ?? [],
      (k) => k.kid,
      (i) => ['receipt_keys', i, 'kid'],
      'duplicate receipt key kid',
    );
    if (doc.issued_at !== undefined && doc.expires_at !== undefined && doc.expires_at <= doc.issued_at) {
      ctx.addIssue({ code: 'custom', message: 'expires_at must be after issued_at', path: ['expires_at'] });
    }
  });

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
/** `signed_by` of a signed document. */
export type SignedBy = z.infer<typeof signedBySchema>;
/** `signature` of a signed document. */
export type DocumentSignature = z.infer<typeof signatureSchema>;
/** A trustplane-trust-material-v1 document. */
export type TrustMaterial = z.infer<typeof trustMaterialSchema>;
/** An issuer entry of trust material. */
export type TrustMaterialIssuer = z.infer<typeof trustedIssuerSchema>;
/** An issuer key (public JWK) of trust material. */
export type IssuerKey = z.infer<typeof issuerKeySchema>;
/** A SPIFFE trust bundle of trust material. */
export type SpiffeBundle = z.infer<typeof spiffeBundleSchema>;
/** A SPIFFE bundle authority. */
export type SpiffeBundleKey = z.infer<typeof spiffeBundleKeySchema>;
/** A route's enforcement mode. */
export type EnforcementMode = z.infer<typeof enforcementModeSchema>;

/** A receipt-signing key of trust material. */
export type ReceiptKey = z.infer<typeof receiptKeySchema>;
