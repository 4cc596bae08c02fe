import type { LoadedPolicy } from '../../bundle/index.js';
import type { Context, MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { AuditRequestInfo } from '../../audit/event.js';
import { sha256HexSync } from '../../internal/sha256.js';
import {
  DEFAULT_MAX_BODY_BYTES,
  denyBody,
  denyHeaders,
  verifyRequest,
  type AllowDecision,
  type Decision,
  type DenyDecision,
} from '../../verifier/index.js';
import { middlewareDeny, prepareOptions, type TrustplaneMiddlewareOptions } from '../options.js';

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
async function requestFacts(request: Request): Promise<AuditRequestInfo> {
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

const CONSUMED_BODY =
  'trustplane(): the request body was read before the middleware ran; register trustplane() before ' +
  'any middleware that reads the body (validators, body limiters)';

/**
 * Hono middleware that verifies every request with the TrustPlane pipeline (`verifyRequest`):
 * passport, request proof over the rebuilt transcript, route policy, freshness, one-time jti.
 *
 * - Allow: sets `c.var.trustplane` (the {@link AllowDecision}: `subject`, `issuer`, `routeId`,
 *   `keyBinding`, …) and runs the next handler.
 * - Deny: answers `{"allowed":false,"reason":"<code>"}` with the reason's status and the headers of
 *   `denyHeaders` (`WWW-Authenticate` on 401, `Cache-Control: no-store`); the handler does not run.
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
  const prepared = prepareOptions(options, 'middleware-hono', { maxBodyBytes: DEFAULT_MAX_BODY_BYTES });
  const onDecision = options.onDecision;
  if (onDecision !== undefined && typeof onDecision !== 'function') {
    throw new TypeError('trustplane(): onDecision must be a function');
  }
  let warnedConsumed = false;

  const decide = async (c: Context<TrustplaneEnv>, startedMs: number): Promise<Decision> => {
    const request = c.req.raw;
    const context = prepared.context();
    let decision: Decision;
    let policyVersion: string | undefined;
    let policy: LoadedPolicy | undefined;
    if ('allowed' in context) {
      decision = context;
    } else if (request.bodyUsed) {
      if (!warnedConsumed) console.error(CONSUMED_BODY);
      warnedConsumed = true;
      decision = middlewareDeny('internal_error', CONSUMED_BODY);
    } else {
      decision = await verifyRequest(request, context);
      policyVersion = context.policy.policyVersion;
      policy = context.policy;
    }
    let answered: Decision = decision;
    if (onDecision !== undefined) {
      try {
        onDecision(decision, c);
      } catch {
        answered = middlewareDeny('internal_error', 'onDecision threw');
      }
    }
    answered = await prepared.record(decision, answered, {
      request: await requestFacts(request),
      startedMs,
      policyVersion,
      policy,
    });
    return answered;
  };

  return async (c, next) => {
    const startedMs = performance.now();
    let decision: Decision;
    try {
      decision = await decide(c, startedMs);
    } catch {
      // verifyRequest never throws; anything else failing here fails closed.
      decision = middlewareDeny('internal_error', 'middleware failure');
    }
    if (decision.allowed) {
      c.set('trustplane', decision);
      await next();
      return;
    }
    return respondDeny(c, decision);
  };
}

function respondDeny(c: Context<TrustplaneEnv>, decision: DenyDecision): Response {
  return c.body(
    JSON.stringify(denyBody(decision)),
    decision.status as ContentfulStatusCode,
    denyHeaders(decision),
  );
}
