import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  enforceNodeRequest,
  headerValue,
  writeDeny,
  type NodeBody,
  type NodeRequestView,
} from '../internal/node-http/index.js';
import { WIRE_HEADERS } from '../proof/wire.js';
import { TrustplaneError } from '../authcore/errors.js';
import { denyAnswer, type NormalizedRequest } from '../verifier/index.js';
import { requestIdOf, type EnforcementRuntime } from './enforcement-runtime.js';
import {
  gatewayBody,
  gatewayGrant,
  originalQueryRefusal,
  type BodySignal,
  type GatewayBody,
} from './gateway-check.js';

/** The gateway in front of the forward-auth endpoint (`forwardAuthGateway`). */
type Gateway = 'nginx' | 'traefik' | 'caddy' | 'envoy';

function required(req: IncomingMessage, name: string): string {
  const value = headerValue(req, name)?.trim();
  if (value === undefined || value === '') {
    throw new TrustplaneError('malformed_request', `the gateway did not send ${name}`);
  }
  return value;
}

function scheme(req: IncomingMessage): string {
  const proto = headerValue(req, 'x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
  return proto === 'https' || proto === 'http' ? proto : 'http';
}

/**
 * The original request as the gateway describes it, reading only that gateway's protocol headers
 * (any other `X-Original-*` / `X-Forwarded-*` header may come from the caller):
 * - nginx: `X-Original-Method`, `X-Original-URI`, `X-Forwarded-Host`, `X-Forwarded-Proto`, all
 *   set with `proxy_set_header` in the auth location (which replaces caller-sent values);
 * - Traefik: `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host`, `X-Forwarded-Proto`,
 *   which Traefik overwrites on the auth request;
 * - Caddy: the same four headers, which `forward_auth` (`X-Forwarded-Method`, `-Uri`) and its
 *   reverse proxy (`-Host`, `-Proto`, unless `trusted_proxies` says otherwise) overwrite;
 * - Envoy: the check request's own method, path (`forwardAuthPathPrefix` stripped) and Host.
 * @throws TrustplaneError `malformed_request` when a header the protocol requires is missing
 */
function originalRequest(
  gateway: Gateway,
  prefix: string | undefined,
  req: IncomingMessage,
): NodeRequestView {
  if (gateway === 'nginx') {
    return {
      method: required(req, 'x-original-method'),
      target: required(req, 'x-original-uri'),
      authority: required(req, 'x-forwarded-host').split(',')[0]!.trim().toLowerCase(),
      scheme: scheme(req),
    };
  }
  if (gateway === 'traefik' || gateway === 'caddy') {
    return {
      method: required(req, 'x-forwarded-method'),
      target: required(req, 'x-forwarded-uri'),
      authority: required(req, 'x-forwarded-host').split(',')[0]!.trim().toLowerCase(),
      scheme: scheme(req),
    };
  }
  let target = req.url ?? '/';
  if (prefix !== undefined && prefix !== '/' && target.startsWith(prefix))
    target = target.slice(prefix.length) || '/';
  return {
    method: req.method ?? 'GET',
    target,
    authority: (headerValue(req, 'host') ?? '').toLowerCase(),
    scheme: scheme(req),
  };
}

/**
 * The caller's address, for the audit event. nginx sets `X-Real-IP` (`proxy_set_header`). Traefik
 * and Caddy set `X-Forwarded-For` on the auth request to the peer they took the request from
 * (appended to the client's value only when they trust it: `trustForwardHeader`,
 * `trusted_proxies`) and pass a client-sent `X-Real-IP` through, so their address is the last
 * `X-Forwarded-For` entry.
 */
function clientAddress(gateway: Gateway, req: IncomingMessage): string | undefined {
  if (gateway === 'traefik' || gateway === 'caddy') {
    const last = headerValue(req, 'x-forwarded-for')?.split(',').at(-1)?.trim();
    return last !== undefined && last !== '' ? last : req.socket.remoteAddress;
  }
  return headerValue(req, 'x-real-ip') ?? req.socket.remoteAddress;
}

/**
 * What the gateway says about a body it did not pass: nginx sends `X-Original-Content-Length` and
 * `X-Original-Transfer-Encoding` (`0` / `identity` when there is no body: see the maps in
 * examples/nginx/trustplane-server.conf; both absent is "unknown"); Envoy with `with_request_body`
 * marks the check request `x-envoy-auth-partial-body`; Traefik without `forwardBody` and Caddy
 * (whose `forward_auth` never passes the body) say nothing.
 */
function bodySignal(gateway: Gateway, req: IncomingMessage): BodySignal {
  if (gateway === 'nginx') {
    const length = headerValue(req, 'x-original-content-length');
    const coding = headerValue(req, 'x-original-transfer-encoding');
    if (length === undefined && coding === undefined) return 'unknown';
    const te = coding?.trim().toLowerCase() ?? '';
    if (te !== '' && te !== 'identity') return 'present';
    return length !== undefined && length.trim() !== '' && length.trim() !== '0' ? 'present' : 'none';
  }
  if (gateway === 'envoy') {
    const partial = headerValue(req, 'x-envoy-auth-partial-body')?.trim().toLowerCase();
    if (partial === 'true') return 'present';
    return partial === 'false' ? 'none' : 'unknown';
  }
  return 'unknown';
}

/**
 * Bind the body as far as the gateway allows ({@link gatewayBody}): a body sent to this endpoint
 * is verified unless Envoy says it is partial; otherwise the gateway's signal decides.
 */
function forwardAuthBody(
  gateway: Gateway,
  req: IncomingMessage,
  request: NormalizedRequest,
  received: NodeBody,
): GatewayBody {
  const signal = bodySignal(gateway, req);
  const partial = gateway === 'envoy' && signal === 'present';
  return gatewayBody(request, {
    received: received.declared && !partial,
    signal,
    claimedSha256: headerValue(req, WIRE_HEADERS.bodySha256),
  });
}

/**
 * Forward-auth mode (nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz HTTP service): the
 * original request is described by the gateway's headers ({@link originalRequest}). A body sent to
 * this endpoint (Envoy `with_request_body`, Traefik `forwardBody`) is verified; otherwise see
 * {@link forwardAuthBody}. The decision is the kernel's:
 * - allow: 200 with the identity headers for the gateway to copy upstream, plus
 *   `X-TrustPlane-Body-Verified`;
 * - deny: the kernel's deny answer (the gateway refuses the request);
 * - a dry-run route's unenforced deny: 200 with every identity header present and empty, so that
 *   the gateway overwrites any the caller sent.
 */
export async function handleForwardAuthRequest(
  rt: EnforcementRuntime,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const requestId = requestIdOf(req);
  const gateway = rt.config.forwardAuthGateway ?? 'nginx';
  let view: NodeRequestView;
  let refusal: TrustplaneError | undefined;
  try {
    view = originalRequest(gateway, rt.config.forwardAuthPathPrefix, req);
  } catch (e) {
    refusal = e as TrustplaneError;
    view = { method: req.method ?? 'GET', target: req.url ?? '/', authority: '', scheme: 'http' };
  }
  // The gateway forwards the original query, not the canonical one the transcript covers: a query
  // an upstream could read otherwise (a `+`, a repeated key) is refused here.
  refusal ??= originalQueryRefusal(view.target);
  let verified = true;
  const granted = await enforceNodeRequest(rt.kernel, req, res, {
    view,
    mode: 'buffer',
    budget: rt.budget,
    requestId,
    echoRequestId: true,
    clientAddress: clientAddress(gateway, req),
    ...(refusal !== undefined ? { refusal } : {}),
    prepare: (request, received) => {
      const body = forwardAuthBody(gateway, req, request, received);
      verified = body.verified;
      return body.request;
    },
  });
  if (granted === undefined) return;
  const headers: OutgoingHttpHeaders = {
    'x-request-id': requestId,
    'cache-control': 'no-store',
    'content-length': '0',
  };
  const grant = gatewayGrant(granted.enforcement, verified);
  Object.assign(headers, grant.set);
  // A dry-run pass: no identity, and every identity header EMPTY rather than absent. A gateway that
  // copies identity headers only when the auth response has them (Envoy's allowed_upstream_headers)
  // would otherwise let a caller-sent X-TrustPlane-Subject through.
  for (const name of grant.unset) headers[name] = '';
  try {
    res.writeHead(200, headers);
  } catch {
    writeDeny(res, denyAnswer({ reason: 'internal_error' }), { requestId });
    return;
  }
  res.end();
}
