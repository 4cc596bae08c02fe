import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import {
  canonicalizeNodeRequest,
  enforceNodeRequest,
  filterMcpAnswer,
  firstHeaderValue,
  requestScheme,
  writeDeny,
} from '../../internal/node-http/index.js';
import {
  createEnforcementKernel,
  denyAnswer,
  type AllowDecision,
  type Decision,
  type TrustplaneMiddlewareOptions,
} from '../../verifier/index.js';

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

/**
 * Connect/Express-style middleware that verifies every request through the enforcement kernel
 * (`createEnforcementKernel`, the same decide/record/answer path as the Hono middleware and the
 * adapter) on the request exactly as sent: the raw path of `req.originalUrl`/`req.url` (never
 * WHATWG-normalized, so `/a/../b` and `%2F` are refused `unsafe_request_path` before routing), the
 * method, the headers, and the exact body bytes.
 *
 * - Allow: sets `req.trustplane` (the {@link AllowDecision}) and calls `next()`.
 * - Deny: writes the kernel's deny answer (`denyAnswer`): `{"allowed":false,"reason":"<code>"}`
 *   with the reason's status, `X-TrustPlane-Reason`, `Cache-Control: no-store` and
 *   `WWW-Authenticate` on 401; `next` is not called. An unexpected failure is a 500
 *   `internal_error` deny too (fail closed), never `next(err)`.
 * - A deny on a route whose `enforcement` is `dry-run` is recorded (`enforcement: "dry-run"`) but
 *   not enforced: `next()` runs with `req.trustplane` unset.
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
 * MCP routes: a `tools/list`, `resources/list`, `resources/templates/list` or `prompts/list`
 * answer is filtered to what the caller may use as the handler writes it (`res.writeHead`,
 * `res.write`, `res.end` are wrapped for those requests only): a `text/event-stream` answer event
 * by event as it streams, an `application/json` answer once complete with its new
 * `Content-Length`; a compressed list answer is replaced by a 502 `upstream_unavailable` (never
 * sent unfiltered). See docs/mcp.md.
 *
 * Fastify: use the plugin of `trustplane/middleware/fastify` (the same kernel and deny answer, the verified
 * bytes handed to Fastify's body parsers, `request.trustplane`).
 *
 * Every decision writes one audit event (component `middleware-node`, with `client_address`) to
 * `options.audit` when set; an audit failure goes to `onAuditError` and the decision stands.
 *
 * Reason codes answered: every code of `verifyRequest` (for instance `missing_passport` 401,
 * `unsafe_request_path` 400, `invalid_request_proof` 401, `request_binding_mismatch` 401,
 * `jti_replay` 401, `bundle_route_missing` 403, `replay_store_unavailable` 503), plus
 * `body_too_large` 413, `malformed_request` 400 (non-origin-form target, repeated critical header,
 * body read failure), `policy_unavailable` 503 (the material provider returned `undefined`),
 * `internal_error` 500 (provider or `onDecision` threw, body consumed by an earlier parser) and
 * `upstream_unavailable` 502 (an MCP list answer that cannot be filtered).
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
  const { onDecision } = options;
  if (onDecision !== undefined && typeof onDecision !== 'function') {
    throw new TypeError('trustplane(): onDecision must be a function');
  }
  const kernel = createEnforcementKernel({
    ...options,
    component: 'middleware-node',
    instance: options.instance ?? hostname(),
  });
  const trustProxy = options.trustProxy === true;
  let warnedConsumed = false;

  const handle = async (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => {
    const granted = await enforceNodeRequest(kernel, req, res, {
      view: {
        method: req.method ?? '',
        target: rawTarget(req),
        scheme: requestScheme(req, trustProxy),
        authority: firstHeaderValue(req, 'host')?.toLowerCase() ?? '',
      },
      mode: 'restore',
      requestId: firstHeaderValue(req, 'x-request-id'),
      clientAddress: req.socket.remoteAddress,
      ...(onDecision !== undefined ? { onDecision: (d: Decision) => onDecision(d, req, res) } : {}),
      onConsumedBody: () => {
        if (!warnedConsumed) console.error(CONSUMED_BODY);
        warnedConsumed = true;
      },
    });
    if (granted === undefined) return;
    // A dry-run route's unenforced deny runs the handler without a verified identity.
    const allow = granted.enforcement.outcome === 'allow' ? granted.enforcement.decision : undefined;
    if (allow !== undefined) req.trustplane = allow;
    canonicalizeNodeRequest(req, allow);
    // MCP list answers: only what this caller may use, filtered as the handler writes them.
    const lists = granted.enforcement.outcome === 'allow' ? granted.enforcement.mcp?.lists : undefined;
    if (lists !== undefined) filterMcpAnswer(res, lists);
    next();
  };

  return (req, res, next) => {
    handle(req, res, next).catch(() => {
      // The kernel never throws; anything else failing here fails closed.
      writeDeny(res, denyAnswer({ reason: 'internal_error' }));
    });
  };
}
