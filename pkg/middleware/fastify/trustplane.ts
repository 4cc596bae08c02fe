import type { IncomingMessage } from 'node:http';
import { hostname } from 'node:os';
import { parse as parseQueryString } from 'node:querystring';
import { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
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

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The verified identity, set by the TrustPlane Fastify plugin on allow (`subject`, `issuer`,
     * `routeId`, `keyBinding`, …); `null` on a dry-run pass and on routes outside the plugin's scope.
     */
    trustplane: AllowDecision | null;
  }
}

/**
 * Options of the Fastify {@link trustplane} plugin: `{ trust, policy }` or
 * `{ material: () => ({ trust, policy }) }`, a `replayStore`, the common options of
 * {@link TrustplaneMiddlewareOptions}, and the Fastify-only options below.
 */
export type TrustplaneFastifyOptions = TrustplaneMiddlewareOptions & {
  /**
   * Take the scheme from `X-Forwarded-Proto` (first value; only `http`/`https`) instead of the
   * socket. Only behind a proxy that sets it. The authority always comes from `Host`; behind a
   * proxy that rewrites `Host`, set `publicOrigin` (or the API's `base_url`).
   */
  readonly trustProxy?: boolean;
  /**
   * Observes every decision (metrics, logging) before the deny is written or the route runs. If it
   * throws, the request fails closed: 500 `internal_error`.
   */
  readonly onDecision?: (decision: Decision, request: FastifyRequest, reply: FastifyReply) => void;
  /**
   * Parses the canonical query the transcript covered into `request.query` after the decision
   * (default `node:querystring`'s `parse`). Pass the instance's own `querystringParser` when it has
   * one. The canonical query has every reserved character percent-encoded (`+` is `%2B`), so any
   * parser reads the values that were verified.
   */
  readonly querystringParser?: (query: string) => unknown;
};

/** The Fastify plugin type of {@link trustplane}. */
export type TrustplaneFastifyPlugin = FastifyPluginAsync<TrustplaneFastifyOptions>;

/** A body stream Fastify's parsers accept from a `preParsing` hook (it checks the length). */
type VerifiedBody = Readable & { receivedEncodedLength?: number };

const plugin: TrustplaneFastifyPlugin = async (fastify, options) => {
  const { onDecision, querystringParser } = options;
  if (onDecision !== undefined && typeof onDecision !== 'function') {
    throw new TypeError('trustplane(): onDecision must be a function');
  }
  if (querystringParser !== undefined && typeof querystringParser !== 'function') {
    throw new TypeError('trustplane(): querystringParser must be a function');
  }
  const parseQuery = querystringParser ?? ((q: string) => parseQueryString(q));
  const kernel = createEnforcementKernel({
    ...options,
    component: 'middleware-fastify',
    instance: options.instance ?? hostname(),
  });
  const trustProxy = options.trustProxy === true;
  // The verified bytes of each request let through, until Fastify's parser takes them.
  const verified = new WeakMap<IncomingMessage, Buffer>();

  fastify.decorateRequest('trustplane', null);

  fastify.addHook('onRequest', async (request, reply) => {
    const req = request.raw;
    let hijacked = false;
    try {
      const granted = await enforceNodeRequest(kernel, req, reply.raw, {
        view: {
          method: req.method ?? '',
          target: req.url ?? '',
          scheme: requestScheme(req, trustProxy),
          authority: firstHeaderValue(req, 'host')?.toLowerCase() ?? '',
        },
        mode: 'buffer',
        requestId: firstHeaderValue(req, 'x-request-id'),
        clientAddress: req.socket.remoteAddress,
        ...(onDecision !== undefined ? { onDecision: (d: Decision) => onDecision(d, request, reply) } : {}),
        beforeDeny: () => {
          hijacked = true;
          reply.hijack();
        },
      });
      if (granted === undefined) return;
      // A dry-run route's unenforced deny runs the route without a verified identity.
      const allow = granted.enforcement.outcome === 'allow' ? granted.enforcement.decision : undefined;
      request.trustplane = allow ?? null;
      const query = canonicalizeNodeRequest(req, allow);
      (request as { query: unknown }).query = parseQuery(query);
      verified.set(req, granted.body);
      // MCP list answers: filtered on the raw response, so a route that replies through
      // reply.send() (string, Buffer, stream, Response) and one that takes the reply over
      // (reply.hijack(), as the MCP SDK's Node transport is mounted) are both covered.
      const lists = granted.enforcement.outcome === 'allow' ? granted.enforcement.mcp?.lists : undefined;
      if (lists !== undefined) filterMcpAnswer(reply.raw, lists);
    } catch {
      // The kernel never throws; anything else failing here fails closed.
      if (!hijacked) reply.hijack();
      writeDeny(reply.raw, denyAnswer({ reason: 'internal_error' }));
    }
  });

  fastify.addHook('preParsing', async (request, _reply, payload) => {
    const bytes = verified.get(request.raw);
    if (bytes === undefined) return payload;
    verified.delete(request.raw);
    const body: VerifiedBody = Readable.from(bytes.length > 0 ? [bytes] : []);
    body.receivedEncodedLength = bytes.length;
    return body;
  });

  if (!fastify.hasContentTypeParser('*')) {
    fastify.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: kernel.maxBodyBytes },
      (_request, body, done) => done(null, body),
    );
  }
};

// Skip Fastify's encapsulation, as `fastify-plugin` does: the hooks apply to the registering context.
Object.defineProperties(plugin, {
  [Symbol.for('skip-override')]: { value: true },
  [Symbol.for('fastify.display-name')]: { value: 'trustplane' },
  [Symbol.for('plugin-meta')]: { value: { name: 'trustplane', fastify: '5.x' } },
});

/**
 * Fastify 5 plugin that verifies every request of its scope through the enforcement kernel
 * (`createEnforcementKernel`, the same decide/record/answer path and the same Node request reading
 * as the Node middleware and the adapter), on the request exactly as sent: the raw target of
 * `request.raw.url` (never normalized: `/a/../b` and `%2F` are refused `unsafe_request_path`), the
 * method, every header line, and the exact body bytes.
 *
 * - It runs in `onRequest`, before Fastify reads the body. The body is read once (up to
 *   `maxBodyBytes`, default 1 MiB; `Content-Length` is checked first) and digested as it streams.
 * - A `preParsing` hook hands those same bytes to Fastify's content-type parsers, so
 *   `request.body` is parsed from exactly what was verified. A catch-all parser (`*`, raw `Buffer`,
 *   `bodyLimit` = `maxBodyBytes`) is added unless the instance has one, so a body of any content
 *   type the kernel verified reaches the route as its raw bytes instead of a 415.
 * - Allow: `request.trustplane` is the {@link AllowDecision}; the Host header becomes the
 *   authority the transcript covered, and `request.raw.url` and `request.query` the canonical
 *   query (see `querystringParser`).
 * - Deny: the kernel's deny answer, byte for byte (`{"allowed":false,"reason":"<code>"}`, the
 *   reason's status, `X-TrustPlane-Reason`, `Cache-Control: no-store`, `WWW-Authenticate` on 401,
 *   `Connection: close` when a body may still be arriving); the route never runs. An unexpected
 *   failure is a 500 `internal_error` deny (fail closed).
 * - A deny on a `dry-run` route is recorded (`enforcement: "dry-run"`) but not enforced: the route
 *   runs with `request.trustplane` null.
 * - MCP routes: a `tools/list`, `resources/list`, `resources/templates/list` or `prompts/list`
 *   answer is filtered to what the caller may use on `reply.raw`, after Fastify's `onSend` hooks
 *   (so also when the route took the reply over with `reply.hijack()`): `text/event-stream` event
 *   by event as it streams, `application/json` once complete with its new `Content-Length`; a
 *   compressed list answer is replaced by a 502 `upstream_unavailable`. See docs/mcp.md.
 *
 * Scope: the plugin skips Fastify's encapsulation (like `fastify-plugin`), so its hooks apply to
 * the context it is registered in and every child, 404 handler included. Register it at the root
 * to guard the whole app, or inside a `register`ed context to guard only that context's routes.
 *
 * Audit events carry component `middleware-fastify` and
 * `client_address` (the socket's peer).
 *
 * Reason codes answered: those of the Node middleware (every code of `verifyRequest`,
 * `body_too_large` 413, `malformed_request` 400, `policy_unavailable` 503, `internal_error` 500,
 * `upstream_unavailable` 502 for an MCP list answer that cannot be filtered).
 *
 * @param fastify the instance (Fastify passes it)
 * @param options trust material and policy (static or a provider), replay store, limits, audit
 * @throws TypeError or RangeError at registration for invalid options
 * @example
 * const app = Fastify()
 * await app.register(trustplane, { trust, policy, replayStore: new MemoryReplayStore(), audit })
 * app.post('/v1/orders', async (request) => ({ subject: request.trustplane!.subject, order: request.body }))
 */
export const trustplane: TrustplaneFastifyPlugin = plugin;
