/**
 * The one registry of reason codes: errors, audit events and HTTP deny bodies all use these strings.
 * Codes are public API: add, never rename. Nothing else in the codebase switches on raw strings.
 */

/** Layers whose codes an enforcement point (or the broker) answers with. */
export type HttpReasonLayer =
  'request' | 'passport' | 'policy' | 'proof' | 'replay' | 'dependency' | 'bundle' | 'broker';

/**
 * Layers of component errors: codes a library component (SVID verification, SPIFFE ID parsing,
 * the Workload API client, receipts, the audit ledger, the broker IPC client) throws to its caller.
 * No enforcement point answers a request with them.
 */
export type ComponentReasonLayer =
  'svid' | 'spiffe_id' | 'workload_api' | 'receipt' | 'ledger' | 'broker_ipc' | 'setup';

/**
 * How a reason code is surfaced. For the HTTP-facing layers ({@link HttpReasonLayer}) `status` is
 * what an enforcement point answers with; for the component layers ({@link ComponentReasonLayer})
 * it is the status to use if the failure is ever surfaced over HTTP (e.g. by a service wrapping the
 * component), and `retryable` says whether calling the component again may succeed.
 */
export interface ReasonCodeInfo {
  /** HTTP status an enforcement point answers with (component layers: the status used if surfaced). */
  readonly status: number;
  /** Which layer produces it. */
  readonly layer: HttpReasonLayer | ComponentReasonLayer;
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
    summary:
      'The raw request path has encoded separators, dot segments, "//", "\\", ";", control characters, or a percent-encoding of a character that needs none.',
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
  ambiguous_request_path: {
    status: 400,
    layer: 'request',
    summary:
      'The path resolves to another route when read as an upstream may read it (letter case folded, HEAD routed as GET).',
    retryable: false,
  },
  ambiguous_request_query: {
    status: 400,
    layer: 'request',
    summary:
      'At an enforcement point that cannot forward the canonical query (forward-auth), a query an upstream could read otherwise: a "+" or a repeated key.',
    retryable: false,
  },
  unsafe_request_header: {
    status: 400,
    layer: 'request',
    summary:
      'A header that changes how an upstream reads the request (method override, URL rewrite, an underscore twin of X-TrustPlane-*, Connection naming an end-to-end header).',
    retryable: false,
  },
  request_headers_too_large: {
    status: 431,
    layer: 'request',
    summary:
      'More request header lines or bytes than the enforcement point reads (gRPC ext_authz: 200 lines, 64 KiB).',
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
  // MCP routes (a route with the `mcp` option): decided after the proof and the one-time jti, on
  // the verified body. Proxy and middlewares answer them as a JSON-RPC error (docs/mcp.md).
  mcp_invalid_jsonrpc: {
    status: 400,
    layer: 'policy',
    summary:
      'On an MCP route, the body is not a JSON-RPC 2.0 message (or batch) within the limits: not JSON, a missing `jsonrpc`/`method`, nesting or size over the caps; or the request is not `Content-Type: application/json` with no charset or `charset=utf-8`, or its body is encoded (`Content-Encoding`).',
    retryable: false,
  },
  mcp_method_denied: {
    status: 403,
    layer: 'policy',
    summary:
      "On an MCP route, the JSON-RPC method is not in the route's `mcp.methods` (nor `initialize`, `ping`, `notifications/*`).",
    retryable: false,
  },
  mcp_tool_denied: {
    status: 403,
    layer: 'policy',
    summary:
      "On an MCP route, `tools/call` names a tool no `mcp.tools` rule admits for this caller (unlisted tool, or the rule's sources, key binding or context not met).",
    retryable: false,
  },
  mcp_argument_denied: {
    status: 403,
    layer: 'policy',
    summary:
      "On an MCP route, a call's arguments break its rule's constraints (JSON Pointer with type, enum, min, max, pattern, max_length).",
    retryable: false,
  },
  mcp_resource_denied: {
    status: 403,
    layer: 'policy',
    summary: 'On an MCP route, `resources/read` names a URI no `mcp.resources` rule admits for this caller.',
    retryable: false,
  },
  mcp_prompt_denied: {
    status: 403,
    layer: 'policy',
    summary: 'On an MCP route, `prompts/get` names a prompt no `mcp.prompts` rule admits for this caller.',
    retryable: false,
  },
  mcp_session_mismatch: {
    status: 403,
    layer: 'policy',
    summary:
      'On an MCP route, the `Mcp-Session-Id` was first used by another caller (issuer and subject): a session belongs to the caller that used it first at this verifier.',
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
  replay_quota_exceeded: {
    status: 429,
    layer: 'replay',
    summary:
      'This caller (issuer + subject) holds its share of the memory replay store (maxEntriesPerScope): its requests are refused until its passports expire; other callers are unaffected.',
    retryable: true,
  },
  // Dependencies (fail closed).
  replay_store_unavailable: {
    status: 503,
    layer: 'dependency',
    summary: 'The replay store could not answer; the request is denied (fail closed).',
    retryable: true,
  },
  replay_store_amnesia: {
    status: 503,
    layer: 'dependency',
    summary:
      'The replay store lost consumed jtis (Redis restarted empty, flushed, evicting or rolled back; a damaged journal): passports that may predate the loss are refused for the maximum passport lifetime plus twice the skew.',
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
  overloaded: {
    status: 503,
    layer: 'dependency',
    summary:
      'The enforcement point is at a load limit (in-flight requests, buffered request bodies, upstream connection slots, connections); the request is refused before its jti is consumed.',
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
    summary:
      'A merge would overwrite an existing kid or source selector without `replace`; or a bundle is older than the one in force (`issued_at` rollback), or has its `issued_at` with other content: the last good one stays.',
    retryable: false,
  },
  bundle_source_not_found: {
    status: 500,
    layer: 'bundle',
    summary: 'A source to remove is not in the document.',
    retryable: false,
  },
  bundle_source_unavailable: {
    status: 503,
    layer: 'bundle',
    summary:
      'A bundle URL cannot be fetched (or serves a document that does not verify) and no last good copy is persisted in the state directory: the verifier cannot start.',
    retryable: true,
  },
  bundle_not_yet_valid: {
    status: 500,
    layer: 'bundle',
    summary:
      'A bundle is dated (`issued_at`) more than the clock-skew tolerance (30 s) in the future: refused at load, the last good one stays (a signer clock ahead, or a document that would lock out later ones as rollbacks).',
    retryable: false,
  },
  invalid_key: {
    status: 500,
    layer: 'bundle',
    summary: 'Key material is not a valid Ed25519 key in an accepted encoding.',
    retryable: false,
  },
  wrong_key_kind: {
    status: 500,
    layer: 'bundle',
    summary:
      'A public key was given where a private key is needed, or a private key where a public key is (e.g. `--private-key @signer.pub`); the message says which file to give instead.',
    retryable: false,
  },
  // -------------------------------------------------------------------------------------------
  // Component errors. Thrown by library components to their callers, never answered by an
  // enforcement point: `status` is the one to use if the failure is ever surfaced over HTTP.
  // -------------------------------------------------------------------------------------------

  // X.509-SVID verification and SVID sources (SvidError). The broker answers any of them as
  // `workload_attestation_failed` with `details.svid_error` = the code.
  svid_malformed: {
    status: 403,
    layer: 'svid',
    summary: 'An SVID chain, certificate or key is empty, oversized, undecodable or inconsistent.',
    retryable: false,
  },
  svid_bundle_malformed: {
    status: 403,
    layer: 'svid',
    summary: 'A SPIFFE trust bundle (JSON, JWKS or PEM) cannot be used.',
    retryable: false,
  },
  svid_no_uri_san: {
    status: 403,
    layer: 'svid',
    summary: 'The SVID leaf certificate has no URI SAN.',
    retryable: false,
  },
  svid_multiple_uri_sans: {
    status: 403,
    layer: 'svid',
    summary: 'The SVID leaf certificate has more than one URI SAN.',
    retryable: false,
  },
  svid_invalid_spiffe_id: {
    status: 403,
    layer: 'svid',
    summary: 'The SVID URI SAN is not a valid SPIFFE ID, has no path, or is not the ID the agent named.',
    retryable: false,
  },
  svid_leaf_is_ca: {
    status: 403,
    layer: 'svid',
    summary: 'The SVID leaf has basicConstraints cA=true.',
    retryable: false,
  },
  svid_bad_key_usage: {
    status: 403,
    layer: 'svid',
    summary: 'The SVID leaf keyUsage is absent, lacks digitalSignature, or has keyCertSign or cRLSign.',
    retryable: false,
  },
  svid_intermediate_not_ca: {
    status: 403,
    layer: 'svid',
    summary: 'An intermediate certificate of the SVID chain is not a CA or lacks keyCertSign.',
    retryable: false,
  },
  svid_unsupported_extension: {
    status: 403,
    layer: 'svid',
    summary: 'A certificate of the SVID chain has an unrecognised critical extension.',
    retryable: false,
  },
  svid_expired: {
    status: 403,
    layer: 'svid',
    summary: 'A certificate of the SVID path (or the dev CA) has expired.',
    retryable: false,
  },
  svid_not_yet_valid: {
    status: 403,
    layer: 'svid',
    summary: 'A certificate of the SVID path (or the dev CA) is not valid yet.',
    retryable: false,
  },
  svid_unknown_trust_domain: {
    status: 403,
    layer: 'svid',
    summary: "No trust bundle (or no X.509 root) for the SVID leaf's trust domain.",
    retryable: false,
  },
  svid_untrusted_chain: {
    status: 403,
    layer: 'svid',
    summary:
      "No path to a root of the leaf's trust bundle (unknown issuer, bad signature, weak algorithm, path length or name constraints).",
    retryable: false,
  },
  svid_key_mismatch: {
    status: 403,
    layer: 'svid',
    summary: 'The private key does not belong to the SVID leaf (or the dev CA certificate).',
    retryable: false,
  },
  svid_source_unreadable: {
    status: 503,
    layer: 'svid',
    summary: 'An SVID file source cannot read or watch its files (missing, not a file, changed while read).',
    retryable: true,
  },

  // SPIFFE ID parsing (SpiffeIdError; the messages are go-spiffe's).
  spiffe_id_empty: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'The SPIFFE ID is empty.',
    retryable: false,
  },
  spiffe_id_bad_scheme: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'The SPIFFE ID does not start with `spiffe://`.',
    retryable: false,
  },
  spiffe_id_missing_trust_domain: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'The SPIFFE ID (or trust domain) has no trust domain.',
    retryable: false,
  },
  spiffe_id_bad_trust_domain_char: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'The trust domain has a character other than lowercase letters, digits, `.`, `-` and `_`.',
    retryable: false,
  },
  spiffe_id_bad_path_segment_char: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'A path segment has a character other than letters, digits, `.`, `-` and `_`.',
    retryable: false,
  },
  spiffe_id_dot_segment: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'The path has a `.` or `..` segment.',
    retryable: false,
  },
  spiffe_id_empty_segment: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'The path has an empty segment (`//`).',
    retryable: false,
  },
  spiffe_id_trailing_slash: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'The path ends with `/`.',
    retryable: false,
  },
  spiffe_id_missing_leading_slash: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'A non-empty path does not start with `/`.',
    retryable: false,
  },
  spiffe_id_too_long: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'The SPIFFE ID is longer than 2048 bytes.',
    retryable: false,
  },
  spiffe_id_trust_domain_too_long: {
    status: 400,
    layer: 'spiffe_id',
    summary: 'The trust domain is longer than 255 bytes.',
    retryable: false,
  },

  // SPIFFE Workload API client (WorkloadApiError).
  workload_api_no_endpoint: {
    status: 500,
    layer: 'workload_api',
    summary: 'No Workload API endpoint was given and `SPIFFE_ENDPOINT_SOCKET` is unset or empty.',
    retryable: false,
  },
  workload_api_bad_endpoint: {
    status: 500,
    layer: 'workload_api',
    summary: 'The Workload API endpoint is not `unix:///absolute/path` or `tcp://<ip>:<port>`.',
    retryable: false,
  },
  workload_api_unavailable: {
    status: 503,
    layer: 'workload_api',
    summary: 'The Workload API agent is unreachable, failed, ended the stream, or gave nothing in time.',
    retryable: true,
  },
  workload_api_no_identity: {
    status: 503,
    layer: 'workload_api',
    summary: 'The Workload API agent holds no identity for this workload (or none with the requested hint).',
    retryable: true,
  },
  workload_api_rejected: {
    status: 502,
    layer: 'workload_api',
    summary:
      'The Workload API agent rejected the call itself (INVALID_ARGUMENT, UNIMPLEMENTED, FAILED_PRECONDITION).',
    retryable: false,
  },
  workload_api_bad_response: {
    status: 502,
    layer: 'workload_api',
    summary:
      'The Workload API agent sent a response that is empty, malformed or over a bound; it was ignored.',
    retryable: true,
  },
  workload_api_closed: {
    status: 503,
    layer: 'workload_api',
    summary: 'The Workload API source was closed.',
    retryable: false,
  },

  // Receipt verification (ReceiptError).
  receipt_malformed: {
    status: 400,
    layer: 'receipt',
    summary:
      'The receipt is not a well-formed trustplane-receipt-v1 compact JWS (format, algorithm, typ, schema).',
    retryable: false,
  },
  receipt_unknown_key: {
    status: 403,
    layer: 'receipt',
    summary: 'The receipt `kid` is not a receipt key of the trust material.',
    retryable: false,
  },
  receipt_signature_invalid: {
    status: 403,
    layer: 'receipt',
    summary: 'The receipt signature does not verify with its receipt key.',
    retryable: false,
  },
  receipt_key_not_valid_at_iat: {
    status: 403,
    layer: 'receipt',
    summary: "The receipt `iat` is outside its key's signing window (`nbf`/`exp` of the receipt key).",
    retryable: false,
  },
  receipt_adapter_mismatch: {
    status: 403,
    layer: 'receipt',
    summary: 'The receipt adapter is not the adapter of its key, or not the expected adapter.',
    retryable: false,
  },

  // Audit ledger sinks and readers (LedgerError), and `trustplane audit verify`.
  ledger_unavailable: {
    status: 503,
    layer: 'ledger',
    summary:
      'The ledger store (PostgreSQL, a ledger or spill file) could not be reached, read or written in time.',
    retryable: true,
  },
  ledger_error: {
    status: 500,
    layer: 'ledger',
    summary:
      'PostgreSQL refused the ledger operation (authentication, permission, schema); `details.sqlstate` names it.',
    retryable: false,
  },
  ledger_chain_mismatch: {
    status: 500,
    layer: 'ledger',
    summary: 'The ledger file holds another chain than the sink was opened for.',
    retryable: false,
  },
  ledger_chain_fork: {
    status: 500,
    layer: 'ledger',
    summary: 'Two writers use one chain id: a seq already holds another record; the sink stops committing.',
    retryable: false,
  },
  ledger_event_dropped: {
    status: 503,
    layer: 'ledger',
    summary:
      'An audit event was refused before it was chained (buffer full, sink closed, not JSON); a gap record in the chain counts it.',
    retryable: false,
  },
  ledger_records_lost: {
    status: 500,
    layer: 'ledger',
    summary:
      'The ledger holds gap records: records were lost (dropped before chaining, a failed spill write, a fork set aside); `audit verify` reports each range.',
    retryable: false,
  },
  audit_chain_broken: {
    status: 500,
    layer: 'ledger',
    summary:
      'The ledger is not one unbroken hash chain: a record edited, deleted, inserted or reordered, or a corrupt last record.',
    retryable: false,
  },

  // Broker IPC client (BrokerIpcError).
  broker_unreachable: {
    status: 503,
    layer: 'broker_ipc',
    summary: 'The broker socket (or TLS endpoint) cannot be reached.',
    retryable: true,
  },
  broker_timeout: {
    status: 504,
    layer: 'broker_ipc',
    summary: 'The broker did not answer within the request timeout.',
    retryable: true,
  },
  broker_protocol_error: {
    status: 502,
    layer: 'broker_ipc',
    summary:
      'The broker answered out of protocol (not JSON, not broker-ipc-v1, another request_id) or closed without an answer.',
    retryable: false,
  },
  broker_request_too_large: {
    status: 413,
    layer: 'broker_ipc',
    summary: 'The broker-ipc-v1 request exceeds 1 MiB.',
    retryable: false,
  },

  // Setting up a command or a process (the CLI prints them as `trustplane: <code>: <message>`).
  usage: {
    status: 400,
    layer: 'setup',
    summary:
      'A command was called wrongly: unknown verb or option, a missing or malformed flag (exit status 2).',
    retryable: false,
  },
  config: {
    status: 400,
    layer: 'setup',
    summary: 'The adapter or broker configuration is inconsistent; one line per problem (exit status 2).',
    retryable: false,
  },
  file_not_found: {
    status: 500,
    layer: 'setup',
    summary: 'A file named by a flag (or `@file` value) does not exist.',
    retryable: false,
  },
  io: {
    status: 500,
    layer: 'setup',
    summary: 'A file exists but cannot be read or written (permissions, a directory, a disk error).',
    retryable: false,
  },
  invalid_json: {
    status: 400,
    layer: 'setup',
    summary:
      'A file or flag value is not valid JSON; the message gives the line and column, never the content.',
    retryable: false,
  },
  address_in_use: {
    status: 500,
    layer: 'setup',
    summary:
      'A listen address is taken by another process: stop it or choose another `--listen`/`--admin-listen`.',
    retryable: true,
  },
  dependency_missing: {
    status: 500,
    layer: 'setup',
    summary:
      'An optional peer dependency needed for this feature is not installed (e.g. `pg` for the PostgreSQL ledger); the message names the package.',
    retryable: false,
  },
  policy_test_failed: {
    status: 500,
    layer: 'setup',
    summary: '`trustplane test`: at least one request case did not get its expected decision and reason.',
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

/** The component layers, in registry order (their codes are thrown by components, not answered). */
export const COMPONENT_REASON_LAYERS: readonly ComponentReasonLayer[] = Object.freeze([
  'svid',
  'spiffe_id',
  'workload_api',
  'receipt',
  'ledger',
  'broker_ipc',
  'setup',
]);

/**
 * True when `code` belongs to a component layer ({@link ComponentReasonLayer}): a component throws
 * it, no enforcement point answers a request with it.
 */
export function isComponentReason(code: ReasonCode): boolean {
  return (COMPONENT_REASON_LAYERS as readonly string[]).includes(REASON_CODES[code].layer);
}
