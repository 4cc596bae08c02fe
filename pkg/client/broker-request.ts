import { passportContextSchema } from '../authcore/claims.js';
import { TrustplaneError } from '../authcore/errors.js';
import { parsePublicKey, type VerifyKey } from '../authcore/verify-key.js';
import { decodePassportUnverified } from '../authcore/passport-format.js';
import type { ReasonCode } from '../authcore/reason-codes.js';
import { isKeyBinding, type KeyBinding } from '../authcore/signer-taxonomy.js';
import {
  brokerIpcRequestSchema,
  brokerIpcResponseSchema,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
} from '../proof/broker-ipc-v1.js';
import { timingSafeEqualString } from '../internal/bytes.js';
import { sha256HexSync } from '../internal/sha256.js';
import { normalizeQuery } from '../proof/normalize-query.js';
import { verifyProof } from '../proof/request-proof.js';
import { buildTranscript } from '../proof/transcript.js';
import { QUERY_NORMALIZATION } from '../proof/wire.js';
import type { OutgoingRequest } from './outgoing-request.js';
import type { PassportSource, RequestCredentials } from './passport-source.js';

/** The broker-ipc-v1 `http` member: the request a broker binds a passport to, by digests. */
export type BrokerHttpDescription = BrokerIpcRequest['http'];

/**
 * Describe the exact request for a broker (broker-ipc-v1 `http`): method, scheme, authority, raw
 * path, content encoding, the raw and normalized query with the normalized query's digest, the
 * covered-header allow list with the digests of the trimmed values of those present, the audience,
 * route id, body digest and nonce. Header values and the body never leave the caller, only digests.
 *
 * @param request the prepared request (from a {@link ProtectedClient} or {@link prepareRequest})
 * @returns the `http` description, in the shape of the broker-ipc-v1 vectors
 * @throws TrustplaneError `malformed_request` for a query with bad percent-encoding
 * @example
 * const http = describeRequestForBroker(await prepareRequest({ method: 'GET',
 *   url: 'https://orders.example/v1/orders/search?q=a', audience: 'orders-api', routeId: 'orders.search' }))
 * http.headers.allow_list // ['x-trustplane-nonce']
 */
export function describeRequestForBroker(request: OutgoingRequest): BrokerHttpDescription {
  const normalized = normalizeQuery(request.query);
  const selected: { name: string; value_sha256: string }[] = [];
  for (const name of request.coveredHeaders) {
    if (!Object.hasOwn(request.headers, name)) continue;
    selected.push({ name, value_sha256: sha256HexSync(request.headers[name]!.trim()) });
  }
  return {
    method: request.method,
    scheme: request.scheme,
    authority: request.authority,
    path: request.path,
    content_encoding: request.contentEncoding,
    query: {
      raw: request.query,
      normalization: QUERY_NORMALIZATION,
      normalized,
      sha256: sha256HexSync(normalized),
    },
    headers: { allow_list: [...request.coveredHeaders], selected },
    audience: request.audience,
    route_id: request.routeId,
    body_sha256: request.bodySha256,
    nonce: request.nonce,
  };
}

/**
 * The broker refused to mint (a broker-ipc-v1 deny response). Carries the broker's reason code,
 * whether a retry may succeed, and the response's non-secret `error.details`.
 * @example
 * try { await client.request(req) } catch (e) {
 *   if (e instanceof BrokerDeniedError && e.retryable) scheduleRetry()
 * }
 */
export class BrokerDeniedError extends Error {
  /** The broker's `reason_code` (e.g. `insufficient_key_binding`, `issuance_policy_denied`). */
  readonly reasonCode: string;
  /** The broker's `error.retryable`. */
  readonly retryable: boolean;
  /** The broker's `error.details` (string values; empty when none). */
  readonly details: Readonly<Record<string, string>>;
  /** The `request_id` of the refused request. */
  readonly requestId: string;

  constructor(response: Extract<BrokerIpcResponse, { accepted: false }>) {
    super(`the broker denied the passport request: ${response.reason_code}`);
    this.name = 'BrokerDeniedError';
    this.reasonCode = response.reason_code;
    this.retryable = response.error.retryable;
    this.details = Object.freeze({ ...(response.error.details ?? {}) });
    this.requestId = response.request_id;
  }
}

/** Which client-side check a broker response failed. */
export type BrokerResponseCheck =
  'response_shape' | 'request_id' | 'passport' | 'jti' | 'audience' | 'key_binding' | 'transcript' | 'stamp';

const CHECK_REASON: Readonly<Record<BrokerResponseCheck, ReasonCode>> = Object.freeze({
  response_shape: 'malformed_passport',
  passport: 'malformed_passport',
  jti: 'malformed_passport',
  audience: 'audience_mismatch',
  key_binding: 'insufficient_key_binding',
  request_id: 'request_binding_mismatch',
  transcript: 'request_binding_mismatch',
  stamp: 'request_binding_mismatch',
});

/**
 * The client refused a broker's allow response before sending anything: it is not a valid
 * broker-ipc-v1 response, answers another request, or its passport and stamp are not bound to
 * the exact request the client is about to send. `reason` is `malformed_passport` (shape,
 * passport, jti), `audience_mismatch`, `insufficient_key_binding` or `request_binding_mismatch`
 * (request id, transcript, stamp); `check` names the failed check.
 * @example
 * catch (e) { if (e instanceof BrokerResponseError) log.warn({ reason: e.reason, check: e.check }) }
 */
export class BrokerResponseError extends TrustplaneError {
  /** The failed check. */
  readonly check: BrokerResponseCheck;

  constructor(check: BrokerResponseCheck, message: string) {
    super(CHECK_REASON[check], message, { check });
    this.check = check;
  }
}

/** The broker a {@link brokerPassports} source asks (e.g. `BrokerIpcClient` from `trustplane/broker`). */
export interface BrokerTransport {
  issue(request: BrokerIpcRequest): Promise<BrokerIpcResponse>;
}

/** The key-binding request sent with every broker-ipc-v1 request. */
export interface BrokerKeyBindingOptions {
  /** The binding asked for (normally the route's minimum). */
  readonly requested: KeyBinding;
  /** Bindings the caller accepts in the minted passport (must include `requested`). */
  readonly acceptable: readonly KeyBinding[];
  /** Whether the broker may fall back to a software key (default false). */
  readonly allowSoftwareFallback?: boolean;
}

/** Context fields a caller may ask the broker to vouch for. */
export type BrokerContextField = 'actor_type' | 'purpose' | 'tool_name' | 'workflow_id' | 'max_txn_value';

/** Options for {@link brokerPassports}. */
export interface BrokerPassportsOptions {
  readonly broker: BrokerTransport;
  readonly keyBinding: BrokerKeyBindingOptions;
  /** Context values to ask for (sent as `ctx.selected_fields` + `ctx.values`). */
  readonly ctx?: Partial<Record<BrokerContextField, string>>;
}

function randomRequestId(): string {
  return `tp-client-${crypto.randomUUID()}`;
}

function fail(check: BrokerResponseCheck, message: string): never {
  throw new BrokerResponseError(check, message);
}

/**
 * A passport source that asks a broker (broker-ipc-v1) for each request: the client describes the
 * exact request ({@link describeRequestForBroker}) with a fresh `request_id` and nonce, the broker
 * mints a passport whose `cnf` key it holds and stamps the transcript. Before anything is sent the
 * client checks the response: it is a valid broker-ipc-v1 response, `request_id` is echoed, the
 * passport's `jti` is the artifact's, its `aud` is the client's, its `cnf.key_binding` is
 * acceptable, `stamp.transcript_sha256` equals the transcript the client builds itself from the
 * request and the passport's `jti`/`iat`/`cnf.key_binding`, and the stamp verifies with the
 * passport's `cnf` key over that transcript.
 *
 * @throws TypeError at construction for bad options; per request, BrokerDeniedError for a deny
 *   and BrokerResponseError (`malformed_passport`, `audience_mismatch`, `insufficient_key_binding`,
 *   `request_binding_mismatch`) for a response that fails a check
 * @example
 * const passports = brokerPassports({
 *   broker: new BrokerIpcClient({ socketPath: '/run/trustplane/broker.sock' }),
 *   keyBinding: { requested: 'attested_workload', acceptable: ['attested_workload'] },
 *   ctx: { purpose: 'refund' },
 * })
 */
export function brokerPassports(options: BrokerPassportsOptions): PassportSource {
  const broker = options.broker;
  if (typeof broker?.issue !== 'function') throw new TypeError('broker must have an issue(request) method');
  const { requested, acceptable } = options.keyBinding ?? {};
  const fallback = options.keyBinding?.allowSoftwareFallback ?? false;
  if (!isKeyBinding(requested)) throw new TypeError('keyBinding.requested must be a key binding');
  if (
    !Array.isArray(acceptable) ||
    acceptable.length === 0 ||
    acceptable.length > 4 ||
    !acceptable.every((b) => isKeyBinding(b)) ||
    new Set(acceptable).size !== acceptable.length
  ) {
    throw new TypeError('keyBinding.acceptable must be 1 to 4 distinct key bindings');
  }
  if (!acceptable.includes(requested)) throw new TypeError('keyBinding.acceptable must include requested');
  if (typeof fallback !== 'boolean')
    throw new TypeError('keyBinding.allowSoftwareFallback must be a boolean');
  const accepted = new Set<string>(fallback ? [...acceptable, 'software'] : acceptable);
  let ctx: BrokerIpcRequest['ctx'];
  if (options.ctx !== undefined) {
    const parsed = passportContextSchema.safeParse(options.ctx);
    if (!parsed.success) throw new TypeError('ctx must hold only the known context keys with string values');
    const values = parsed.data as Record<string, string>;
    const fields = Object.keys(values) as BrokerContextField[];
    if (fields.length > 0) ctx = { selected_fields: fields, values };
  }
  const keyBinding = {
    intent: 'route_policy_minimum' as const,
    requested_key_binding: requested,
    acceptable_key_bindings: [...acceptable],
    allow_software_fallback: fallback,
  };

  return Object.freeze({
    async authorize(request: OutgoingRequest): Promise<RequestCredentials> {
      const ipcRequest: BrokerIpcRequest = {
        request_id: randomRequestId(),
        protocol: 'local-json-ipc',
        operation: 'issue_request_bound_passport',
        http: describeRequestForBroker(request),
        key_binding: { ...keyBinding, acceptable_key_bindings: [...keyBinding.acceptable_key_bindings] },
        ...(ctx ? { ctx: { selected_fields: [...ctx.selected_fields], values: { ...ctx.values } } } : {}),
      };
      // Our own request must be valid broker-ipc-v1 before it goes anywhere.
      if (!brokerIpcRequestSchema.safeParse(ipcRequest).success) {
        throw new TypeError('the request cannot be described in broker-ipc-v1 (a field is out of bounds)');
      }
      const parsed = brokerIpcResponseSchema.safeParse(await broker.issue(ipcRequest));
      if (!parsed.success) fail('response_shape', 'the broker response is not valid broker-ipc-v1');
      const response = parsed.data;
      if (response.request_id !== ipcRequest.request_id) {
        fail('request_id', 'the broker response answers another request');
      }
      if (!response.accepted) throw new BrokerDeniedError(response);
      return checkIssued(response, request, accepted);
    },
  });
}

async function checkIssued(
  response: Extract<BrokerIpcResponse, { accepted: true }>,
  request: OutgoingRequest,
  accepted: ReadonlySet<string>,
): Promise<RequestCredentials> {
  const { passport, stamp } = response.artifacts;
  let claims: Record<string, unknown>;
  try {
    claims = decodePassportUnverified(passport.value).payload;
  } catch {
    fail('passport', 'the broker passport is malformed');
  }
  const cnf = claims.cnf as Record<string, unknown> | undefined;
  if (
    typeof claims.jti !== 'string' ||
    !Number.isSafeInteger(claims.iat) ||
    typeof cnf !== 'object' ||
    cnf === null ||
    typeof cnf.key_binding !== 'string' ||
    typeof cnf.public_key_b64url !== 'string'
  ) {
    fail('passport', 'the broker passport lacks jti, iat or cnf');
  }
  if (claims.jti !== passport.jti) fail('jti', 'the broker passport jti differs from the artifact jti');
  const aud = Array.isArray(claims.aud) && claims.aud.length === 1 ? claims.aud[0] : claims.aud;
  if (aud !== request.audience) fail('audience', 'the broker passport is for another audience');
  if (!accepted.has(cnf.key_binding)) {
    fail('key_binding', 'the broker passport key binding is not acceptable');
  }
  const transcript = await buildTranscript({
    method: request.method,
    scheme: request.scheme,
    authority: request.authority,
    path: request.path,
    query: request.query,
    audience: request.audience,
    routeId: request.routeId,
    contentEncoding: request.contentEncoding,
    coveredHeaders: request.coveredHeaders,
    headers: request.headers,
    bodySha256: request.bodySha256,
    passportJti: claims.jti,
    nonce: request.nonce,
    issuedAt: claims.iat as number,
    keyBinding: cnf.key_binding,
  });
  if (!timingSafeEqualString(transcript.sha256, stamp.transcript_sha256)) {
    fail('transcript', 'the broker stamp is bound to a different request');
  }
  let cnfKey: VerifyKey;
  try {
    cnfKey = await parsePublicKey(cnf.public_key_b64url);
  } catch {
    fail('passport', 'the broker passport cnf key is malformed');
  }
  if (!(await verifyProof(transcript.digest, stamp.value, cnfKey))) {
    fail('stamp', 'the broker stamp does not verify with the passport cnf key');
  }
  return { passport: passport.value, proof: stamp.value, transcriptSha256: transcript.sha256 };
}
