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
  type ByteBudget,
  type NodeBody,
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
  readonly prepare?: (request: NormalizedRequest, body: NodeBody) => NormalizedRequest;
  /** Buffered-bytes budget shared by the point's requests (see `ByteBudget`). */
  readonly budget?: ByteBudget;
  /** The point's decision hook (the middleware's `onDecision`). */
  readonly onDecision?: (decision: Decision) => void;
  /** Called when the body was consumed by an earlier parser (a misconfiguration). */
  readonly onConsumedBody?: () => void;
  /** Called right before the deny is written on `res` (Fastify: take the reply over, `hijack()`). */
  readonly beforeDeny?: () => void;
}

/** A request the point lets through: allowed (with identity) or a dry-run pass (without). */
export interface NodeRequestGranted {
  readonly enforcement: AllowEnforcement | PassEnforcement;
  /** The request as decided. */
  readonly request: NormalizedRequest;
  /** The exact body bytes (in `restore` mode they are also back in the stream; empty when none). */
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
      : readNodeRequest(req, options.view, {
          maxBodyBytes: kernel.maxBodyBytes,
          mode: options.mode,
          ...(options.budget !== undefined ? { budget: options.budget } : {}),
        });
  let request: NormalizedRequest | undefined;
  if (read.ok) {
    res.once('close', () => read.body.release());
    request = options.prepare !== undefined ? options.prepare(read.request, read.body) : read.request;
  }
  const enforcement = await kernel.enforce({
    request: read.ok ? request! : read.error,
    facts: auditRequestInfo(options.view, {
      requestId: options.requestId,
      clientAddress: options.clientAddress,
    }),
    startedMs,
    ...(options.onDecision !== undefined ? { onDecision: options.onDecision } : {}),
  });
  const body = read.ok ? read.body.result : undefined;
  if (body !== undefined && !body.ok && body.misconfigured === true) options.onConsumedBody?.();
  if (enforcement.outcome !== 'deny' && read.ok && request !== undefined) {
    // The kernel has read the body of every request it lets through (a dry-run pass included).
    if (body === undefined || body.ok) {
      return { enforcement, request, body: body?.bytes ?? Buffer.alloc(0) };
    }
  }
  // A body the request declared but that was never (fully) read may still be arriving: answer,
  // close the connection and discard the rest instead of reading it for keep-alive.
  const drain = !read.ok
    ? read.drain
    : read.body.declared && (body === undefined || (!body.ok && body.drain));
  // A refusal of the reading layer is always a deny: request-layer reasons are always enforced.
  const answer =
    enforcement.outcome === 'deny' ? enforcement.answer : denyAnswer({ reason: 'internal_error' });
  options.beforeDeny?.();
  writeDeny(res, answer, {
    close: drain,
    ...(options.echoRequestId === true && options.requestId !== undefined
      ? { requestId: options.requestId }
      : {}),
  });
  if (drain) req.resume();
  return undefined;
}
