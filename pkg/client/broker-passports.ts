import { passportContextSchema } from '../authcore/claims.js';
import { parsePublicKey, type VerifyKey } from '../authcore/verify-key.js';
import { decodePassportUnverified } from '../authcore/passport-format.js';
import { isKeyBinding, type KeyBinding } from '../authcore/signer-taxonomy.js';
import {
  brokerIpcRequestSchema,
  brokerIpcResponseSchema,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
} from '../proof/broker-ipc-v1.js';
import { timingSafeEqualString } from '../internal/bytes.js';
import { verifyProof } from '../proof/request-proof.js';
import { buildTranscript } from '../proof/transcript.js';
import { BrokerDeniedError } from './broker-denied-error.js';
import { BrokerResponseError, type BrokerResponseCheck } from './broker-response-error.js';
import { describeRequestForBroker } from './describe-request-for-broker.js';
import type { OutgoingRequest } from './outgoing-request.js';
import type { PassportSource, RequestCredentials } from './passport-source.js';

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
