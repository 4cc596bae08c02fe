import type { LoadedPolicy } from '../../bundle/index.js';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import type { AuditRequestInfo } from '../../audit/event.js';
import type { ReasonCode } from '../../authcore/index.js';
import {
  DEFAULT_MAX_BODY_BYTES,
  denyBody,
  denyHeaders,
  verifyRequest,
  type AllowDecision,
  type Decision,
  type DenyDecision,
  type NormalizedRequest,
} from '../../verifier/index.js';
import { middlewareDeny, prepareOptions, type TrustplaneMiddlewareOptions } from '../options.js';
import {
  EMPTY_BODY_SHA256,
  firstValue,
  repeatedCriticalHeader,
  requestScheme,
  splitTarget,
} from './request.js';

declare module 'http' {
  interface IncomingMessage {
    /**
     * The verified identity, set by the TrustPlane Node middleware on allow (`subject`, `issuer`,
     * `routeId`, `keyBinding`, …). Undefined on routes the middleware does not guard.
     */
    trustplane?: AllowDecision;
  }
}

/**
 * Options of the Node {@link trustplane} middleware: `{ trust, policy }` or
 * `{ material: () => ({ trust, policy }) }`, a `replayStore`, the common options of
 * {@link TrustplaneMiddlewareOptions}, and the Node-only `trustProxy` and `onDecision`.
 */
export type TrustplaneOptions = TrustplaneMiddlewareOptions & {
  /**
   * Take the scheme from `X-Forwarded-Proto` (first value; only `http`/`https`) instead of the
   * socket. Only behind a proxy that sets it. The authority always comes from `Host`; behind a
   * proxy that rewrites `Host`, set `publicOrigin` (or the API's `base_url`).
   */
  readonly trustProxy?: boolean;
  /**
   * Observes every decision (metrics, logging) before the response or `next()`. If it throws,
   * the request fails closed: 500 `internal_error`, `next` not called.
   */
  readonly onDecision?: (decision: Decision, req: IncomingMessage, res: ServerResponse) => void;
};

/**
 * A Connect/Express-style middleware; Express 5, Connect and `@fastify/middie` accept it.
 * @example
 * const guard: TrustplaneRequestHandler = trustplane({ trust, policy, replayStore })
 * http.createServer((req, res) => guard(req, res, () => res.end(req.trustplane!.subject)))
 */
export type TrustplaneRequestHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

const CONSUMED_BODY =
  'trustplane(): the request body was consumed by an earlier body parser and only its parsed form ' +
  'is left; register trustplane() before express.json()/text()/urlencoded() (a Buffer req.body ' +
  'from express.raw() is accepted when the request has no Content-Encoding)';

/** The raw request target: Express strips a mount path from `req.url`, never from `originalUrl`. */
function rawTarget(req: IncomingMessage): string {
  const original = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
  return typeof original === 'string' ? original : (req.url ?? '');
}

type BodyResult =
  | { readonly ok: true; readonly sha256: string; readonly length: number }
  | {
      readonly ok: false;
      readonly reason: ReasonCode;
      readonly message: string;
      /** Answer with `Connection: close` and discard the rest of the body. */
      readonly drain: boolean;
      /** The body was consumed before the middleware ran (logged once). */
      readonly misconfigured?: true;
    };

/**
 * Read the whole body up to `max` bytes, hashing as it streams, then put the bytes back in front of
 * the stream (`readable.unshift`) so downstream parsers read it as if untouched. Chunks are pulled
 * with `read(readableLength)`: an explicit size never makes the stream emit 'end' (a bare `read()`
 * at EOF would), and `unshift` is allowed until 'end' has been emitted.
 */
function readAndRestoreBody(req: IncomingMessage, max: number): Promise<BodyResult> {
  if (req.complete && req.readableLength === 0) {
    // Fully received and nothing buffered: an empty (chunked) body. Leave the stream untouched.
    return Promise.resolve({ ok: true, sha256: EMPTY_BODY_SHA256, length: 0 });
  }
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (result: BodyResult) => {
      req.off('readable', onReadable);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      resolve(result);
    };
    const onReadable = () => {
      while (req.readableLength > 0) {
        const chunk = req.read(req.readableLength) as Buffer | null;
        if (chunk === null) break;
        total += chunk.length;
        if (total > max) {
          finish({ ok: false, reason: 'body_too_large', message: 'request body too large', drain: true });
          return;
        }
        hash.update(chunk);
        chunks.push(chunk);
      }
      if (req.complete) {
        finish({ ok: true, sha256: hash.digest('hex'), length: total });
        if (total > 0) req.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
      }
    };
    const onEnd = () => {
      // Not expected (nothing here reads past EOF); with bytes read they could not be restored.
      if (total === 0) finish({ ok: true, sha256: EMPTY_BODY_SHA256, length: 0 });
      else
        finish({ ok: false, reason: 'internal_error', message: 'request stream ended early', drain: false });
    };
    const onError = () =>
      finish({
        ok: false,
        reason: 'malformed_request',
        message: 'request body could not be read',
        drain: false,
      });
    const onClose = () => {
      if (!req.complete) onError();
    };
    // Start the underlying read first, so attaching 'readable' does not schedule a read(0) that
    // would end an already-finished empty stream.
    if (req.readableLength === 0) req.read(0);
    req.on('readable', onReadable);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** Digest of the body as sent, or a deny. Consults `req.body` only when the stream is gone. */
function bodyDigest(req: IncomingMessage, max: number): BodyResult | Promise<BodyResult> {
  const contentLength = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  // RFC 9112 §6.3: a request without Transfer-Encoding and Content-Length has no body.
  if (!chunked && (contentLength === undefined || Number(contentLength) === 0)) {
    return { ok: true, sha256: EMPTY_BODY_SHA256, length: 0 };
  }
  if (contentLength !== undefined && Number(contentLength) > max) {
    return { ok: false, reason: 'body_too_large', message: 'request body too large', drain: true };
  }
  if (req.readableEnded || req.readableDidRead) {
    const parsed = (req as IncomingMessage & { body?: unknown }).body;
    const encoding = req.headers['content-encoding']?.trim().toLowerCase() ?? 'identity';
    // A Buffer is the bytes as sent only when nothing inflated them.
    if (Buffer.isBuffer(parsed) && encoding === 'identity' && req.readableEnded) {
      if (parsed.length > max) {
        return { ok: false, reason: 'body_too_large', message: 'request body too large', drain: false };
      }
      return { ok: true, sha256: createHash('sha256').update(parsed).digest('hex'), length: parsed.length };
    }
    return { ok: false, reason: 'internal_error', message: CONSUMED_BODY, drain: false, misconfigured: true };
  }
  return readAndRestoreBody(req, max);
}

/** Header lookup: repeated fields joined with ", " (RFC 9110 §5.3), `Cookie` with "; " (RFC 6265). */
function headerSource(req: IncomingMessage): (name: string) => string | undefined {
  const distinct = req.headersDistinct;
  return (name) => {
    const values = distinct[name];
    if (values === undefined || values.length === 0) return undefined;
    if (values.length === 1) return values[0];
    return values.join(name === 'cookie' ? '; ' : ', ');
  };
}

function requestFacts(req: IncomingMessage, path: string, query: string): AuditRequestInfo {
  const host = firstValue(req.headers.host)?.toLowerCase();
  const requestId = firstValue(req.headers['x-request-id']);
  const client = req.socket.remoteAddress;
  return {
    method: req.method ?? '',
    path,
    ...(host !== undefined ? { authority: host } : {}),
    ...(query !== '' ? { querySha256: createHash('sha256').update(query).digest('hex') } : {}),
    ...(requestId !== undefined && requestId !== '' ? { requestId } : {}),
    ...(client !== undefined ? { clientAddress: client } : {}),
  };
}

function respondDeny(res: ServerResponse, decision: DenyDecision, close: boolean): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  const body = JSON.stringify(denyBody(decision));
  const headers: Record<string, string> = {
    ...denyHeaders(decision),
    'content-length': String(Buffer.byteLength(body)),
  };
  // An unread body that may keep coming: answer, then close instead of reading it for keep-alive.
  if (close) headers.connection = 'close';
  res.writeHead(decision.status, headers);
  res.end(body);
}

/**
 * Connect/Express-style middleware that verifies every request with the TrustPlane pipeline
 * (`verifyRequest`) on the request exactly as sent: the raw path of `req.originalUrl`/`req.url`
 * (never WHATWG-normalized, so `/a/../b` and `%2F` are refused `unsafe_request_path` before
 * routing), the method, the headers, and the exact body bytes.
 *
 * - Allow: sets `req.trustplane` (the {@link AllowDecision}) and calls `next()`.
 * - Deny: writes `{"allowed":false,"reason":"<code>"}` with the reason's status and the headers of
 *   `denyHeaders` (`WWW-Authenticate` on 401); `next` is not called. An unexpected failure is a
 *   500 `internal_error` deny too (fail closed), never `next(err)`.
 *
 * Body: the middleware reads the body (up to `maxBodyBytes`, default 1 MiB; `Content-Length` is
 * checked first) and hashes it while it streams, then puts the bytes back in front of the request
 * stream with `req.unshift()`, so `express.json()`, `express.raw()`, `express.text()`,
 * `req.pipe()` and `for await (const chunk of req)` downstream read the same bytes. Register it
 * before body parsers. When a parser already ran, only a raw `Buffer` `req.body` of an
 * unencoded body can stand for the bytes; any other consumed body (parsed JSON, text) is a
 * misconfiguration, denied 500 `internal_error` and logged once. A too-large body is answered 413
 * with `Connection: close` and the rest is discarded.
 *
 * Repeated `Authorization`, `Host`, `Content-Type`, `Set-Cookie` or `X-TrustPlane-*` headers are
 * denied `malformed_request`; other repeated headers are joined with ", " (RFC 9110 §5.3). The
 * scheme is the socket's (`https` on TLS), or `X-Forwarded-Proto` with `trustProxy`; the authority
 * is `Host`. Both only matter when neither `publicOrigin` nor the API's `base_url` is set.
 *
 * Fastify (not tested here): register `@fastify/middie` and `fastify.use(trustplane(options))`;
 * it then runs in the `onRequest` phase, before Fastify parses the body, and the decision is on
 * `request.raw.trustplane`. A `preHandler` hook is too late (the body is parsed by then).
 *
 * Every decision writes one audit event (component `middleware-node`, with `client_address`) to
 * `options.audit` when set; an audit failure goes to `onAuditError` and the decision stands.
 *
 * Reason codes answered: every code of `verifyRequest` (for instance `missing_passport` 401,
 * `unsafe_request_path` 400, `invalid_request_proof` 401, `request_binding_mismatch` 401,
 * `jti_replay` 401, `bundle_route_missing` 403, `replay_store_unavailable` 503), plus
 * `body_too_large` 413, `malformed_request` 400 (non-origin-form target, repeated critical header,
 * body read failure), `policy_unavailable` 503 (the material provider returned `undefined`) and
 * `internal_error` 500 (provider or `onDecision` threw, body consumed by an earlier parser).
 *
 * @param options trust material and policy (static or a provider), replay store, limits, audit
 * @returns the middleware
 * @throws TypeError or RangeError at construction for invalid options
 * @example
 * const app = express()
 * app.use(trustplane({ trust, policy, replayStore: new MemoryReplayStore(), audit }))
 * app.use(express.json())
 * app.post('/v1/orders', (req, res) => {
 *   res.json({ subject: req.trustplane!.subject, order: req.body })
 * })
 */
export function trustplane(options: TrustplaneOptions): TrustplaneRequestHandler {
  const prepared = prepareOptions(options, 'middleware-node', {
    maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
    instance: hostname(),
  });
  const { onDecision } = options;
  if (onDecision !== undefined && typeof onDecision !== 'function') {
    throw new TypeError('trustplane(): onDecision must be a function');
  }
  const trustProxy = options.trustProxy === true;
  let warnedConsumed = false;

  const decide = async (
    req: IncomingMessage,
    res: ServerResponse,
    startedMs: number,
  ): Promise<{ answered: Decision; close: boolean }> => {
    const target = rawTarget(req);
    const { path, query } = splitTarget(target);

    let decision: Decision;
    let policyVersion: string | undefined;
    let policy: LoadedPolicy | undefined;
    let close = false;
    const repeated = repeatedCriticalHeader(req.rawHeaders);
    if (!target.startsWith('/')) {
      decision = middlewareDeny('malformed_request', 'request target is not in origin-form');
    } else if (repeated !== undefined) {
      decision = middlewareDeny('malformed_request', `repeated ${repeated} header`);
    } else {
      const body = await bodyDigest(req, prepared.maxBodyBytes);
      const context = prepared.context();
      if (!body.ok) {
        decision = middlewareDeny(body.reason, body.message);
        close = body.drain;
        if (body.misconfigured && !warnedConsumed) {
          warnedConsumed = true;
          console.error(CONSUMED_BODY);
        }
      } else if ('allowed' in context) {
        decision = context;
      } else {
        const normalized: NormalizedRequest = {
          method: req.method ?? '',
          scheme: requestScheme(req, trustProxy),
          authority: firstValue(req.headers.host)?.toLowerCase() ?? '',
          path,
          query,
          headers: headerSource(req),
          bodySha256: body.sha256,
          bodyLength: body.length,
        };
        decision = await verifyRequest(normalized, context);
        policyVersion = context.policy.policyVersion;
        policy = context.policy;
      }
    }

    let answered: Decision = decision;
    if (onDecision !== undefined) {
      try {
        onDecision(decision, req, res);
      } catch {
        answered = middlewareDeny('internal_error', 'onDecision threw');
      }
    }
    answered = await prepared.record(decision, answered, {
      request: requestFacts(req, path, query),
      startedMs,
      policyVersion,
      policy,
    });
    return { answered, close };
  };

  return (req, res, next) => {
    const startedMs = performance.now();
    void decide(req, res, startedMs)
      .catch(() => ({ answered: middlewareDeny('internal_error', 'middleware failure'), close: false }))
      .then(({ answered, close }) => {
        if (answered.allowed) {
          req.trustplane = answered;
          next();
          return;
        }
        try {
          respondDeny(res, answered, close);
        } catch {
          res.destroy();
        }
        // Discard the rest of a refused body; the connection closes after the answer.
        if (close) req.resume();
      });
  };
}
