import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  enforceNodeRequest,
  headerValue,
  requestScheme,
  splitTarget,
  writeDeny,
} from '../internal/node-http/index.js';
import { normalizeQuery } from '../proof/normalize-query.js';
import { WIRE_HEADERS } from '../proof/wire.js';
import { TrustplaneError } from '../authcore/errors.js';
import {
  denyAnswer,
  identityHeaders,
  type AllowEnforcement,
  type NormalizedRequest,
  type PassEnforcement,
} from '../verifier/index.js';
import { requestIdOf, type EnforcementRuntime } from './enforcement-runtime.js';
import { connectionTokens, isHopByHop } from './hop-by-hop.js';
import { respondWithReceipt } from './receipt-response.js';
import { respondWithMcpFilter } from './mcp-response.js';

/** The host the caller addressed: `Host`, or the first `X-Forwarded-Host` behind a trusted proxy. */
function callerAuthority(rt: EnforcementRuntime, req: IncomingMessage): string {
  const forwarded = rt.config.trustForwardedHeaders
    ? headerValue(req, 'x-forwarded-host')?.split(',')[0]?.trim()
    : undefined;
  return (forwarded ?? headerValue(req, 'host') ?? '').toLowerCase();
}

/**
 * Reverse-proxy mode: read and digest the body, decide through the kernel, then forward the exact
 * bytes to the upstream with the identity headers, or answer the kernel's deny (the upstream
 * receives nothing). On a dry-run route a deny that was not enforced is forwarded without identity.
 */
export async function handleProxyRequest(
  rt: EnforcementRuntime,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const requestId = requestIdOf(req);
  const scheme = requestScheme(req, rt.config.trustForwardedHeaders);
  const slot = upstreamSlot(rt, res);
  const granted = await enforceNodeRequest(rt.kernel, req, res, {
    view: {
      method: req.method ?? 'GET',
      target: req.url ?? '/',
      scheme,
      authority: callerAuthority(rt, req),
    },
    mode: 'buffer',
    budget: rt.budget,
    requestId,
    echoRequestId: true,
    clientAddress: req.socket.remoteAddress,
    ...(slot !== undefined ? { prepare: (request: NormalizedRequest) => slot.before(request) } : {}),
  });
  if (granted === undefined) return;
  // A dry-run pass can go on after its slot was refused (overloaded is not a request-layer deny):
  // it is refused here instead, since it has no upstream connection.
  if (slot !== undefined && !(await slot.take())) {
    writeDeny(res, denyAnswer({ reason: 'overloaded' }), { requestId });
    return;
  }
  forward(rt, req, res, granted.enforcement, granted.body, scheme, requestId);
}

/** Seconds a caller refused `overloaded` is asked to wait (`Retry-After`). */
export const OVERLOADED_RETRY_AFTER_SECONDS = 1;

/**
 * One request's upstream connection slot. It is taken when the kernel asks for the body (the
 * passport, route and policy have passed; the proof check and the jti consume come next), so a
 * request that cannot get an upstream connection within `upstreamQueueTimeoutMs` is refused
 * `overloaded` with its jti unconsumed instead of burning it and then waiting in the http.Agent's
 * own unbounded queue. It is held through the upstream exchange and given back when the response
 * closes. Requests refused earlier (no or a bad passport, policy) never take one.
 */
function upstreamSlot(
  rt: EnforcementRuntime,
  res: ServerResponse,
): { before(request: NormalizedRequest): NormalizedRequest; take(): Promise<boolean> } | undefined {
  if (rt.upstreamSlots === undefined) return undefined;
  const lease = rt.upstreamSlots.lease();
  let closed = false;
  res.once('close', () => {
    closed = true;
    lease.release();
  });
  let taking: Promise<boolean> | undefined;
  const take = () =>
    (taking ??= lease.take().then((ok) => {
      if (!ok && !closed) {
        rt.metrics.overloadRefusals.inc({ kind: 'upstream_queue' });
        if (!res.headersSent) res.setHeader('retry-after', String(OVERLOADED_RETRY_AFTER_SECONDS));
      }
      return ok;
    }));
  return {
    take,
    before(request) {
      const readBody = request.readBody;
      if (readBody === undefined) return request;
      return {
        ...request,
        // The NormalizedRequest contract: a failure of readBody is a refusal the kernel records
        // and answers (here 503 overloaded); the pipeline reads the body just before the proof
        // check and the jti consume, and never for a request refused earlier.
        readBody: async () => {
          const body = await readBody();
          if (!(await take())) {
            throw new TrustplaneError(
              'overloaded',
              'no upstream connection free within upstreamQueueTimeoutMs',
            );
          }
          return body;
        },
      };
    },
  };
}

/**
 * The headers the upstream receives: every end-to-end line the caller sent (repeated lines kept, in
 * order), without hop-by-hop headers, the whole `X-TrustPlane-*` namespace, `Authorization`
 * (unless `forwardAuthorization`), and forwarding headers the caller may not set; then the
 * identity headers of an allow, `X-Request-Id`, `X-Forwarded-For/-Proto/-Host`. On an allow, `Host`
 * (with `preserveHost`) and `X-Forwarded-Host`/`-Proto` carry the origin the transcript covered
 * (`publicOrigin`, else the API's `base_url`, else the request's own), never a caller's other Host.
 */
function upstreamHeaders(
  rt: EnforcementRuntime,
  req: IncomingMessage,
  enforcement: AllowEnforcement | PassEnforcement,
  body: Buffer,
  scheme: string,
  requestId: string,
): OutgoingHttpHeaders {
  const listed = connectionTokens(req.headers);
  const out: OutgoingHttpHeaders = {};
  const trustFwd = rt.config.trustForwardedHeaders;
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (values === undefined || values.length === 0) continue;
    if (isHopByHop(name, listed)) continue;
    // Proof headers, caller-sent identity headers and the whole X-TrustPlane-* namespace stop here.
    if (name.startsWith('x-trustplane-')) continue;
    if (name === WIRE_HEADERS.authorization && !rt.config.forwardAuthorization) continue;
    if (name === 'expect' || name === 'content-length' || name === 'x-request-id') continue;
    if (!trustFwd && (name === 'forwarded' || name.startsWith('x-forwarded-'))) continue;
    if (name === 'host' && !rt.config.preserveHost) continue;
    out[name] = values.length === 1 ? values[0] : values;
  }
  const allow = enforcement.outcome === 'allow' ? enforcement.decision : undefined;
  if (allow !== undefined) Object.assign(out, identityHeaders(allow));
  out['x-request-id'] = requestId;
  const client = req.socket.remoteAddress ?? '';
  const priorFor = trustFwd ? headerValue(req, 'x-forwarded-for') : undefined;
  out['x-forwarded-for'] = priorFor !== undefined && priorFor !== '' ? `${priorFor}, ${client}` : client;
  out['x-forwarded-proto'] = allow?.scheme ?? scheme;
  const authority = allow?.authority ?? callerAuthority(rt, req);
  if (authority !== '') out['x-forwarded-host'] = authority;
  if (allow !== undefined && rt.config.preserveHost) out.host = allow.authority;
  if (body.length > 0 || req.headers['content-length'] !== undefined)
    out['content-length'] = String(body.length);
  if (!rt.config.preserveHost && rt.upstream) out.host = rt.upstream.host;
  return out;
}

function forward(
  rt: EnforcementRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  enforcement: AllowEnforcement | PassEnforcement,
  body: Buffer,
  scheme: string,
  requestId: string,
): void {
  const upstream = rt.upstream!;
  const routeId = enforcement.decision.routeId;
  let headers: OutgoingHttpHeaders;
  try {
    headers = upstreamHeaders(rt, req, enforcement, body, scheme, requestId);
  } catch {
    writeDeny(res, denyAnswer({ reason: 'internal_error' }), { requestId });
    return;
  }
  const prefix = upstream.pathname === '/' ? '' : upstream.pathname.replace(/\/$/, '');
  // The upstream gets the query in its canonical form: the one the transcript covers (pair order,
  // escapes and `+` as the verifier read them), never a raw spelling that could read differently.
  const target = splitTarget(req.url ?? '/');
  const query =
    enforcement.outcome === 'allow'
      ? enforcement.decision.query
      : target.query === ''
        ? ''
        : normalizeQuery(target.query);
  const send = upstream.protocol === 'https:' ? httpsRequest : httpRequest;
  const sentAt = process.hrtime.bigint();
  let settled = false;
  const fail = (kind: 'connect' | 'timeout' | 'reset') => {
    if (settled) return;
    settled = true;
    // The caller went away first (we destroyed the upstream request): not an upstream failure.
    if (res.destroyed && !res.headersSent) return;
    rt.metrics.upstreamErrors.inc({ kind });
    rt.log.warn('upstream failure', { kind, route_id: routeId, request_id: requestId });
    const reason = kind === 'timeout' ? 'upstream_timeout' : 'upstream_unavailable';
    writeDeny(res, denyAnswer({ reason }), { requestId });
  };
  let upReq;
  try {
    upReq = send({
      protocol: upstream.protocol,
      hostname: upstream.hostname.replace(/^\[|\]$/g, ''),
      port: upstream.port || (upstream.protocol === 'https:' ? 443 : 80),
      method: req.method ?? 'GET',
      path: `${prefix}${target.path}${query === '' ? '' : `?${query}`}`,
      headers,
      ...(rt.agent !== undefined ? { agent: rt.agent } : {}),
    });
  } catch {
    fail('connect');
    return;
  }
  const responseTimer = setTimeout(() => {
    fail('timeout');
    upReq.destroy();
  }, rt.config.upstreamResponseTimeoutMs);
  upReq.on('socket', (socket) => {
    if (!(socket as { connecting?: boolean }).connecting) return;
    const connectTimer = setTimeout(() => {
      fail('connect');
      upReq.destroy();
    }, rt.config.upstreamConnectTimeoutMs);
    socket.once('connect', () => clearTimeout(connectTimer));
    socket.once('close', () => clearTimeout(connectTimer));
  });
  upReq.on('error', (e: NodeJS.ErrnoException) => {
    clearTimeout(responseTimer);
    if (settled && res.headersSent) {
      res.destroy();
      return;
    }
    fail(
      e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'EHOSTUNREACH' ? 'connect' : 'reset',
    );
  });
  upReq.on('response', (upRes: IncomingMessage) => {
    clearTimeout(responseTimer);
    if (settled) {
      upRes.resume();
      return;
    }
    settled = true;
    const status = upRes.statusCode ?? 502;
    rt.metrics.upstreamSeconds.observe(
      { status_class: `${Math.floor(status / 100)}xx` },
      Number(process.hrtime.bigint() - sentAt) / 1e9,
    );
    const listed = connectionTokens(upRes.headers);
    const out: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(upRes.headers)) {
      if (value === undefined || isHopByHop(name, listed)) continue;
      out[name] = value;
    }
    if (enforcement.outcome === 'allow' && enforcement.receipt) {
      respondWithReceipt(rt, res, upRes, status, out, enforcement, requestId);
      return;
    }
    const lists = enforcement.outcome === 'allow' ? enforcement.mcp?.lists : undefined;
    if (lists !== undefined) {
      try {
        respondWithMcpFilter(rt, res, upRes, status, out, lists, requestId);
      } catch {
        upRes.destroy();
        res.destroy();
      }
      return;
    }
    try {
      res.writeHead(status, out);
    } catch {
      upRes.destroy();
      res.destroy();
      return;
    }
    upRes.pipe(res);
    upRes.on('error', () => res.destroy());
    upRes.on('aborted', () => res.destroy());
  });
  res.on('close', () => {
    clearTimeout(responseTimer);
    if (!res.writableFinished) upReq.destroy();
  });
  upReq.end(body.length > 0 ? body : undefined);
}
