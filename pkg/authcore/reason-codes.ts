/**
 * The one registry of reason codes: errors, audit events and HTTP deny bodies all use these strings.
 * Codes are public API: add, never rename. Nothing else in the codebase switches on raw strings.
 */

/** How a reason code is surfaced at an HTTP enforcement point. */
export interface ReasonCodeInfo {
  /** HTTP status an enforcement point answers with. */
  readonly status: number;
  /** Which layer produces it. */
  readonly layer: 'request' | 'passport' | 'policy' | 'proof' | 'replay' | 'dependency' | 'bundle' | 'broker';
  /** One-line meaning, for docs and operators (never sent to callers). */
  readonly summary: string;
  /**
   * True when the same request may succeed if retried later unchanged (a dependency was down or
   * slow); false when the request itself, the credentials or the policy must change first.
   */
  readonly retryable: boolean;
}

const table = {
  // Request layer (before any credential is looked at).
  unsafe_request_path: {
    status: 400,
    layer: 'request',
    summary: 'The raw request path has encoded separators, dot segments, "//", "\\" or control characters.',
    retryable: false,
  },
  malformed_request: {
    status: 400,
    layer: 'request',
    summary: 'The request cannot be parsed for verification (bad query encoding, bad header, bad method).',
    retryable: false,
  },
  body_too_large: {
    status: 413,
    layer: 'request',
    summary: 'The request body exceeds the configured limit.',
    retryable: false,
  },
  bundle_route_missing: {
    status: 403,
    layer: 'policy',
    summary: 'No route in the policy bundle matches the method and path (or the fixed route id).',
    retryable: false,
  },
  // Passport layer.
  missing_passport: {
    status: 401,
    layer: 'passport',
    summary: 'No `Authorization: Bearer <passport>` header.',
    retryable: false,
  },
  malformed_passport: {
    status: 401,
    layer: 'passport',
    summary: 'The passport is not a well-formed compact JWS with the required claims.',
    retryable: false,
  },
  unsupported_algorithm: {
    status: 401,
    layer: 'passport',
    summary: 'The passport header names an algorithm other than EdDSA (or its alias Ed25519).',
    retryable: false,
  },
  unknown_issuer: {
    status: 401,
    layer: 'passport',
    summary: 'The passport issuer is not in the trust material.',
    retryable: false,
  },
  unknown_key: {
    status: 401,
    layer: 'passport',
    summary: 'The passport kid is not a current key of its issuer in the trust material.',
    retryable: false,
  },
  invalid_passport_signature: {
    status: 401,
    layer: 'passport',
    summary: 'The passport signature does not verify.',
    retryable: false,
  },
  passport_expired: {
    status: 401,
    layer: 'passport',
    summary: 'The passport `exp` is past (beyond skew).',
    retryable: false,
  },
  passport_not_yet_valid: {
    status: 401,
    layer: 'passport',
    summary: 'The passport `iat` or `nbf` is in the future beyond the allowed clock skew.',
    retryable: false,
  },
  passport_lifetime_exceeded: {
    status: 401,
    layer: 'passport',
    summary: 'The passport `exp - iat` exceeds the maximum lifetime.',
    retryable: false,
  },
  audience_mismatch: {
    status: 403,
    layer: 'passport',
    summary: 'The passport `aud` is not the audience of the API being called.',
    retryable: false,
  },
  trust_domain_mismatch: {
    status: 403,
    layer: 'passport',
    summary: "The passport `trust_domain` is not its issuer's or the policy bundle's trust domain.",
    retryable: false,
  },
  invalid_cnf: {
    status: 401,
    layer: 'passport',
    summary: 'The passport `cnf` (proof key) is missing, malformed or names an unknown key binding.',
    retryable: false,
  },
  revoked: {
    status: 403,
    layer: 'policy',
    summary: 'The passport jti, subject or signing key is listed in the bundle revocations.',
    retryable: false,
  },
  // Policy layer.
  source_issuer_mismatch: {
    status: 403,
    layer: 'policy',
    summary: 'No allowed source of the route names the passport issuer.',
    retryable: false,
  },
  source_type_mismatch: {
    status: 403,
    layer: 'policy',
    summary: "The issuer's source type in the trust material is not the one the route's source allows.",
    retryable: false,
  },
  source_trust_domain_mismatch: {
    status: 403,
    layer: 'policy',
    summary: "The passport trust domain is not the route source's trust domain.",
    retryable: false,
  },
  source_subject_mismatch: {
    status: 403,
    layer: 'policy',
    summary:
      "The passport subject matches neither `subject_exact` nor `subject_prefix` of the route's sources.",
    retryable: false,
  },
  insufficient_key_binding: {
    status: 403,
    layer: 'policy',
    summary: 'The key binding (capped by what the issuer may vouch for) is below the route minimum.',
    retryable: false,
  },
  context_policy_mismatch: {
    status: 403,
    layer: 'policy',
    summary: 'The passport `ctx` does not satisfy the source context policy.',
    retryable: false,
  },
  provenance_policy_mismatch: {
    status: 403,
    layer: 'policy',
    summary: 'The passport `provenance` does not satisfy the source or bundle provenance policy.',
    retryable: false,
  },
  unverifiable_body: {
    status: 403,
    layer: 'policy',
    summary:
      'The enforcement point cannot see the request body (forward-auth) and the route does not set `allow_unverified_body`.',
    retryable: false,
  },
  stale_bundle_fail_closed: {
    status: 403,
    layer: 'policy',
    summary: "The policy bundle is older than the route's freshness class allows (or expired).",
    retryable: false,
  },
  // Proof layer.
  missing_proof: {
    status: 401,
    layer: 'proof',
    summary: 'The `X-TrustPlane-Proof` or `X-TrustPlane-Nonce` header is missing or malformed.',
    retryable: false,
  },
  insufficient_covered_headers: {
    status: 401,
    layer: 'proof',
    summary: '`X-TrustPlane-Covered-Headers` does not include every header the route requires to be covered.',
    retryable: false,
  },
  request_binding_mismatch: {
    status: 401,
    layer: 'proof',
    summary: 'The request differs from what was signed (transcript or body digest header mismatch).',
    retryable: false,
  },
  invalid_request_proof: {
    status: 401,
    layer: 'proof',
    summary: 'The request proof does not verify with the passport `cnf` key over the rebuilt transcript.',
    retryable: false,
  },
  // Replay.
  jti_replay: {
    status: 401,
    layer: 'replay',
    summary: 'The passport jti was already used.',
    retryable: false,
  },
  // Dependencies (fail closed).
  replay_store_unavailable: {
    status: 503,
    layer: 'dependency',
    summary: 'The replay store could not answer; the request is denied (fail closed).',
    retryable: true,
  },
  audit_unavailable: {
    status: 503,
    layer: 'dependency',
    summary: 'A durable audit write required by the route failed; the request is denied.',
    retryable: true,
  },
  upstream_unavailable: {
    status: 502,
    layer: 'dependency',
    summary: 'The adapter allowed the request but could not reach the upstream or it failed mid-response.',
    retryable: true,
  },
  upstream_timeout: {
    status: 504,
    layer: 'dependency',
    summary: 'The adapter allowed the request but the upstream did not answer within the response timeout.',
    retryable: true,
  },
  internal_error: {
    status: 500,
    layer: 'dependency',
    summary: 'An unexpected verifier failure; the request is denied (fail closed).',
    retryable: true,
  },
  policy_unavailable: {
    status: 503,
    layer: 'dependency',
    summary: 'No valid trust material or policy bundle is loaded.',
    retryable: true,
  },
  // Broker (passport issuance; the status is what a broker-backed HTTP endpoint would answer).
  issuance_policy_denied: {
    status: 403,
    layer: 'broker',
    summary: 'The broker refused to mint: the identity may not get a passport for this audience or route.',
    retryable: false,
  },
  workload_attestation_failed: {
    status: 403,
    layer: 'broker',
    summary:
      'The workload identity (X.509-SVID) did not verify: expired, untrusted chain or invalid SPIFFE ID.',
    retryable: false,
  },
  workload_identity_unavailable: {
    status: 503,
    layer: 'broker',
    summary: 'The broker has no current workload identity (SVID source or Workload API not answering).',
    retryable: true,
  },
  // Bundle loading (CLI and loaders; not a per-request answer).
  invalid_bundle: {
    status: 500,
    layer: 'bundle',
    summary: 'A trust-material or policy-bundle document does not match its schema.',
    retryable: false,
  },
  bundle_signature_invalid: {
    status: 500,
    layer: 'bundle',
    summary: 'A signed document does not verify with the configured signer key (tampered or wrong key).',
    retryable: false,
  },
  unsigned_bundle_rejected: {
    status: 500,
    layer: 'bundle',
    summary: 'A document is unsigned and the explicit dev flag to allow unsigned documents is not set.',
    retryable: false,
  },
  bundle_conflict: {
    status: 500,
    layer: 'bundle',
    summary: 'A merge would overwrite an existing kid or source selector without `replace`.',
    retryable: false,
  },
  bundle_source_not_found: {
    status: 500,
    layer: 'bundle',
    summary: 'A source to remove is not in the document.',
    retryable: false,
  },
  invalid_key: {
    status: 500,
    layer: 'bundle',
    summary: 'Key material is not a valid Ed25519 key in an accepted encoding.',
    retryable: false,
  },
} as const satisfies Record<string, ReasonCodeInfo>;

/** Every reason code. */
export type ReasonCode = keyof typeof table;

/** The registry, keyed by code (null prototype: no inherited keys). */
export const REASON_CODES: Readonly<Record<ReasonCode, ReasonCodeInfo>> = Object.freeze(
  Object.assign(Object.create(null) as Record<ReasonCode, ReasonCodeInfo>, table),
);

/** All reason codes, in registry order. */
export const REASON_CODE_LIST: readonly ReasonCode[] = Object.freeze(Object.keys(table) as ReasonCode[]);

/** True when `value` is a registered reason code. */
export function isReasonCode(value: unknown): value is ReasonCode {
  return typeof value === 'string' && Object.hasOwn(table, value);
}

/** HTTP status an enforcement point answers with for `code`. */
export function statusForReason(code: ReasonCode): number {
  return REASON_CODES[code].status;
}

/** True when a request refused with `code` may succeed if retried unchanged (see the registry). */
export function isRetryableReason(code: ReasonCode): boolean {
  return REASON_CODES[code].retryable;
}
