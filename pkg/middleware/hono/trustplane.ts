import type { Context, MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { AuditRequestInfo } from '../../audit/event-from-decision.js';
import { TrustplaneError } from '../../authcore/errors.js';
import { sha256HexSync } from '../../internal/sha256.js';
import { normalizeQuery } from '../../proof/normalize-query.js';
import {
  createEnforcementKernel,
  denyAnswer,
  type AllowDecision,
  type Decision,
  type Enforcement,
  type TrustplaneMiddlewareOptions,
} from '../../verifier/index.js';
import { filterMcpResponse } from '../../mcp/index.js';

// Web APIs only (Workers, Deno, Bun, Node): no node:* here, and `hono` is imported for types only,
// so the package does not need hono at runtime.

/**
 * Variables the middleware sets: `c.get('trustplane')` (or `c.var.trustplane`) is the verified
 * identity of an allowed request.
 * @example
 * const app = new Hono<{ Variables: TrustplaneVariables }>()
 */
export type TrustplaneVariables = { trustplane: AllowDecision };

/** The Hono environment the middleware declares: `{ Variables: TrustplaneVariables }`. */
export type TrustplaneEnv = { Variables: TrustplaneVariables };

/**
 * Options of the Hono {@link trustplane} middleware: `{ trust, policy }` or
 * `{ material: () => ({ trust, policy }) }`, a `replayStore`, and the common options of
 * {@link TrustplaneMiddlewareOptions}, plus `onDecision`.
 */
export type TrustplaneOptions = TrustplaneMiddlewareOptions & {
  /**
   * Observes every decision (metrics, logging) before the response or the handler. If it throws,
   * the request fails closed: 500 `internal_error`, handler not run.
   */
  readonly onDecision?: (decision: Decision, c: Context<TrustplaneEnv>) => void;
};

/** Request facts for the audit event (the query is hashed, never logged). */
function requestFacts(request: Request): AuditRequestInfo {
  const url = new URL(request.url);
  const query = url.search.slice(1);
  const requestId = request.headers.get('x-request-id');
  return {
    method: request.method,
    authority: url.host,
    path: url.pathname,
    ...(query !== '' ? { querySha256: sha256HexSync(query) } : {}),
    ...(requestId !== null && requestId !== '' ? { requestId } : {}),
  };
}

/**
 * Hand the handlers what the transcript covers: when the raw URL is spelled otherwise (the query's
 * pair order, escapes or `+`; on an allow, a scheme or host other than the verified origin),
 * `c.req.raw` is replaced by the same request with the canonical URL, so `c.req.query()` and
 * `c.req.url` read what was verified. The body stream moves to the new request unread.
 */
function useCanonicalUrl(c: Context<TrustplaneEnv>, allow: AllowDecision | undefined): void {
  const raw = c.req.raw;
  const url = new URL(raw.url);
  const rawQuery = url.search.slice(1);
  const query = allow?.query ?? (rawQuery === '' ? '' : normalizeQuery(rawQuery));
  const origin = allow !== undefined ? `${allow.scheme}://${allow.authority}` : url.origin;
  // The path stays exactly as received (URL.pathname keeps its escapes).
  const canonical = `${origin}${url.pathname}${query === '' ? '' : `?${query}`}`;
  if (canonical === raw.url) return;
  const hasBody = raw.body !== null && raw.method !== 'GET' && raw.method !== 'HEAD';
  const init: RequestInit & { duplex?: 'half' } = {
    method: raw.method,
    headers: raw.headers,
    signal: raw.signal,
    redirect: raw.redirect,
    ...(hasBody ? { body: raw.body, duplex: 'half' as const } : {}),
  };
  c.req.raw = new Request(canonical, init);
}

const CONSUMED_BODY =
  'trustplane(): the request body was read before the middleware ran; register trustplane() before ' +
  'any middleware that reads the body (validators, body limiters)';

/**
 * Hono middleware that verifies every request through the enforcement kernel
 * (`createEnforcementKernel`, the same decide/record/answer path as the Node middleware and the
 * adapter): passport, request proof over the rebuilt transcript, route policy, freshness,
 * one-time jti.
 *
 * - Allow: sets `c.var.trustplane` (the {@link AllowDecision}: `subject`, `issuer`, `routeId`,
 *   `keyBinding`, …) and runs the next handler.
 * - Deny: answers the kernel's deny answer (`denyAnswer`): `{"allowed":false,"reason":"<code>"}`
 *   with the reason's status, `X-TrustPlane-Reason`, `Cache-Control: no-store` and
 *   `WWW-Authenticate` on 401; the handler does not run.
 * - A deny on a route whose `enforcement` is `dry-run` is recorded (`enforcement: "dry-run"`) but
 *   not enforced: the handler runs and `c.var.trustplane` is unset.
 *
 * The body is read from a clone of `c.req.raw` (up to `maxBodyBytes`), so handlers can still call
 * `c.req.json()`, `c.req.text()`, …. Register the middleware before anything that reads the body;
 * a body already read is a misconfiguration, denied 500 `internal_error` (fail closed) and logged.
 *
 * The path checked is the one in `c.req.url`, which the runtime has already WHATWG-normalized
 * (dot segments resolved): Hono routes on the same URL, so verifier and handler agree. To refuse
 * raw `..`/`%2E` paths before any normalization, enforce at the adapter or the Node middleware.
 *
 * Every decision writes one audit event (component `middleware-hono`) to `options.audit` when set;
 * an audit failure goes to `onAuditError` and the decision stands.
 *
 * Reason codes answered: every code of `verifyRequest` (for instance `missing_passport` 401,
 * `invalid_request_proof` 401, `request_binding_mismatch` 401, `jti_replay` 401,
 * `bundle_route_missing` 403, `body_too_large` 413, `replay_store_unavailable` 503), plus
 * `policy_unavailable` 503 when the material provider returns `undefined` and `internal_error` 500
 * when the provider or `onDecision` throws or the body was already consumed.
 *
 * @param options trust material and policy (static or a provider), replay store, limits, audit
 * @returns a Hono middleware typed with {@link TrustplaneEnv}
 * @throws TypeError or RangeError at construction for invalid options
 * @example
 * const app = new Hono<{ Variables: TrustplaneVariables }>()
 * app.use('/v1/*', trustplane({ trust, policy, replayStore: new MemoryReplayStore(), audit }))
 * app.post('/v1/orders', async (c) => {
 *   const { subject, routeId } = c.get('trustplane')
 *   return c.json({ subject, routeId, order: await c.req.json() })
 * })
 * // hot reload: the provider is read once per request
 * app.use('*', trustplane({ material: () => reloader.current, replayStore }))
 */
export function trustplane(options: TrustplaneOptions): MiddlewareHandler<TrustplaneEnv> {
  const onDecision = options.onDecision;
  if (onDecision !== undefined && typeof onDecision !== 'function') {
    throw new TypeError('trustplane(): onDecision must be a function');
  }
  const kernel = createEnforcementKernel({ ...options, component: 'middleware-hono' });
  let warnedConsumed = false;

  const decide = async (c: Context<TrustplaneEnv>, startedMs: number): Promise<Enforcement> => {
    const request = c.req.raw;
    let input: Request | TrustplaneError = request;
    if (request.bodyUsed) {
      if (!warnedConsumed) console.error(CONSUMED_BODY);
      warnedConsumed = true;
      input = new TrustplaneError('internal_error', CONSUMED_BODY);
    }
    return kernel.enforce({
      request: input,
      facts: requestFacts(request),
      startedMs,
      ...(onDecision !== undefined ? { onDecision: (d: Decision) => onDecision(d, c) } : {}),
    });
  };

  return async (c, next) => {
    let enforcement: Enforcement | undefined;
    try {
      enforcement = await decide(c, performance.now());
    } catch {
      // The kernel never throws; anything else failing here fails closed (below).
      enforcement = undefined;
    }
    if (enforcement !== undefined && enforcement.outcome !== 'deny') {
      // An allow sets the identity; a dry-run route's unenforced deny runs the handler without one.
      const allow = enforcement.outcome === 'allow' ? enforcement.decision : undefined;
      if (allow !== undefined) c.set('trustplane', allow);
      useCanonicalUrl(c, allow);
      await next();
      const lists = enforcement.outcome === 'allow' ? enforcement.mcp?.lists : undefined;
      if (lists !== undefined) {
        // MCP list answers: only what this caller may use (SSE filtered event by event, as it streams).
        try {
          c.res = await filterMcpResponse(c.res, lists);
        } catch {
          const failed = denyAnswer({ reason: 'upstream_unavailable' });
          c.res = new Response(failed.body, { status: failed.status, headers: failed.headers });
        }
      }
      return;
    }
    const answer = enforcement?.answer ?? denyAnswer({ reason: 'internal_error' });
    return c.body(answer.body, answer.status as ContentfulStatusCode, answer.headers);
  };
}
