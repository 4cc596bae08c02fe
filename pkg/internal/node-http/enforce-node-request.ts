import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TrustplaneError } from '../../authcore/errors.js';
import {
  denyAnswer,
  type AllowEnforcement,
  type Decision,
  type EnforcementKernel,
  type NormalizedRequest,
  type PassEnforcement,
} from '../../verifier/index.js';
import type { BodyReadMode } from './read-body.js';
import {
  auditRequestInfo,
  readNodeRequest,
  type NodeRequestRead,
  type NodeRequestRefusal,
  type NodeRequestView,
} from './read-request.js';
import { writeDeny } from './write-deny.js';

/** Options for {@link enforceNodeRequest}. */
export interface EnforceNodeRequestOptions {
  /** The method, raw target, scheme and authority to verify. */
  readonly view: NodeRequestView;
  /** `buffer` (the point forwards the bytes) or `restore` (handlers read them after us). */
  readonly mode: BodyReadMode;
  /** The request id, for the audit event and echoed on a deny (the adapter's). */
  readonly requestId?: string | undefined;
  /** Echo `requestId` as `X-Request-Id` on a deny. */
  readonly echoRequestId?: boolean;
  readonly clientAddress?: string | undefined;
  /**
   * A refusal the point made before reading (forward-auth: the gateway did not describe the
   * original request): recorded and answered by the kernel; the body is not read.
   */
  readonly refusal?: TrustplaneError;
  /** Adjust the read request before it is decided (forward-auth: a body the gateway did not pass). */
  readonly prepare?: (request: NormalizedRequest) => NormalizedRequest;
  /** The point's decision hook (the middleware's `onDecision`). */
  readonly onDecision?: (decision: Decision) => void;
  /** Called when the body was consumed by an earlier parser (a misconfiguration). */
  readonly onConsumedBody?: () => void;
}

/** A request the point lets through: allowed (with identity) or a dry-run pass (without). */
export interface NodeRequestGranted {
  readonly enforcement: AllowEnforcement | PassEnforcement;
  /** The request as decided. */
  readonly request: NormalizedRequest;
  /** The exact body bytes (in `restore` mode they are also back in the stream). */
  readonly body: Buffer;
}

/**
 * Read a Node request, decide it through the kernel, and answer a deny: the one read → decide →
 * answer path of every Node enforcement point. A refused body that may still be arriving is
 * answered with `Connection: close` and discarded.
 * @param kernel the enforcement point's kernel
 * @param req the incoming request
 * @param res its response
 * @param options what to verify and how to read the body
 * @returns the granted request, or `undefined` when the deny has been answered
 */
export async function enforceNodeRequest(
  kernel: EnforcementKernel,
  req: IncomingMessage,
  res: ServerResponse,
  options: EnforceNodeRequestOptions,
): Promise<NodeRequestGranted | undefined> {
  const startedMs = performance.now();
  const read: NodeRequestRead | NodeRequestRefusal =
    options.refusal !== undefined
      ? { ok: false, error: options.refusal, drain: true }
      : await readNodeRequest(req, options.view, { maxBodyBytes: kernel.maxBodyBytes, mode: options.mode });
  let request: NormalizedRequest | undefined;
  if (read.ok) request = options.prepare !== undefined ? options.prepare(read.request) : read.request;
  else if (read.misconfigured === true) options.onConsumedBody?.();
  const enforcement = await kernel.enforce({
    request: read.ok ? request! : read.error,
    facts: auditRequestInfo(options.view, {
      requestId: options.requestId,
      clientAddress: options.clientAddress,
    }),
    startedMs,
    ...(options.onDecision !== undefined ? { onDecision: options.onDecision } : {}),
  });
  if (enforcement.outcome !== 'deny' && read.ok && request !== undefined) {
    return { enforcement, request, body: read.body };
  }
  const drain = !read.ok && read.drain;
  // A refusal of the reading layer is always a deny: request-layer reasons are always enforced.
  const answer =
    enforcement.outcome === 'deny' ? enforcement.answer : denyAnswer({ reason: 'internal_error' });
  writeDeny(res, answer, {
    close: drain,
    ...(options.echoRequestId === true && options.requestId !== undefined
      ? { requestId: options.requestId }
      : {}),
  });
  if (drain) req.resume();
  return undefined;
}
