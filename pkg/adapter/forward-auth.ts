import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  EMPTY_BODY_SHA256,
  enforceNodeRequest,
  headerValue,
  writeDeny,
  type NodeRequestView,
} from '../internal/node-http/index.js';
import { IDENTITY_HEADERS, WIRE_HEADERS } from '../proof/wire.js';
import { denyAnswer, identityHeaders, type NormalizedRequest } from '../verifier/index.js';
import { requestIdOf, type EnforcementRuntime } from './enforcement-runtime.js';

const HEX64 = /^[0-9a-f]{64}$/;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * The original request as the gateway describes it: method and URI from `X-Original-Method`/
 * `X-Original-URI` (nginx) or `X-Forwarded-Method`/`X-Forwarded-Uri` (Traefik), else this request
 * itself (Envoy, with `forwardAuthPathPrefix` stripped); host from `X-Forwarded-Host`,
 * `X-Original-Host` or `Host`; scheme from `X-Forwarded-Proto`.
 */
function originalRequest(rt: EnforcementRuntime, req: IncomingMessage): NodeRequestView {
  const method = (
    headerValue(req, 'x-original-method') ??
    headerValue(req, 'x-forwarded-method') ??
    req.method ??
    'GET'
  ).trim();
  let target = headerValue(req, 'x-original-uri') ?? headerValue(req, 'x-forwarded-uri');
  if (target === undefined) {
    target = req.url ?? '/';
    const prefix = rt.config.forwardAuthPathPrefix;
    if (prefix !== undefined && prefix !== '/' && target.startsWith(prefix))
      target = target.slice(prefix.length) || '/';
  }
  const authority = (
    headerValue(req, 'x-forwarded-host')?.split(',')[0]?.trim() ??
    headerValue(req, 'x-original-host') ??
    headerValue(req, 'host') ??
    ''
  ).toLowerCase();
  const proto = headerValue(req, 'x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
  return { method, target, authority, scheme: proto === 'https' || proto === 'http' ? proto : 'http' };
}

/**
 * When the gateway sent no body but the original request may carry one (POST/PUT/PATCH, or a
 * non-zero length or a transfer coding the gateway signals), the body cannot be verified here: the
 * caller's claimed `X-TrustPlane-Body-SHA256` stands in for the digest and the request is marked
 * `bodyUnverified` (denied `unverifiable_body` unless the route sets `allow_unverified_body`).
 */
function withUnverifiedBody(req: IncomingMessage, request: NormalizedRequest): NormalizedRequest {
  if (request.bodyLength > 0) return request;
  const declared =
    headerValue(req, 'x-original-content-length') ?? headerValue(req, 'x-forwarded-content-length');
  const coding =
    headerValue(req, 'x-original-transfer-encoding') ?? headerValue(req, 'x-forwarded-transfer-encoding');
  const mayHaveBody =
    BODY_METHODS.has(request.method.toUpperCase()) ||
    (declared !== undefined && declared.trim() !== '' && declared.trim() !== '0') ||
    (coding !== undefined && coding.trim() !== '');
  if (!mayHaveBody) return request;
  const claimed = headerValue(req, WIRE_HEADERS.bodySha256)?.trim().toLowerCase();
  const bodySha256 = claimed !== undefined && HEX64.test(claimed) ? claimed : EMPTY_BODY_SHA256;
  return {
    ...request,
    bodySha256,
    bodyLength: bodySha256 === EMPTY_BODY_SHA256 ? 0 : 1,
    bodyUnverified: true,
  };
}

/**
 * Forward-auth mode (nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz HTTP service): the
 * original request is described by the gateway's headers ({@link originalRequest}). A body sent to
 * this endpoint (Envoy `with_request_body`, Traefik `forwardBody`) is verified; otherwise see
 * {@link withUnverifiedBody}. The decision is the kernel's:
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
  const granted = await enforceNodeRequest(rt.kernel, req, res, {
    view: originalRequest(rt, req),
    mode: 'buffer',
    requestId,
    echoRequestId: true,
    clientAddress: headerValue(req, 'x-real-ip') ?? req.socket.remoteAddress,
    prepare: (request) => withUnverifiedBody(req, request),
  });
  if (granted === undefined) return;
  const headers: OutgoingHttpHeaders = {
    'x-request-id': requestId,
    'cache-control': 'no-store',
    'content-length': '0',
  };
  if (granted.enforcement.outcome === 'allow') {
    Object.assign(headers, identityHeaders(granted.enforcement.decision));
    headers['x-trustplane-body-verified'] = granted.request.bodyUnverified === true ? 'false' : 'true';
  } else {
    // A dry-run pass: no identity, and every identity header EMPTY rather than absent. A gateway that
    // copies identity headers only when the auth response has them (Envoy's
    // allowed_upstream_headers) would otherwise let a caller-sent X-TrustPlane-Subject through.
    for (const name of IDENTITY_HEADERS) headers[name] = '';
    headers['x-trustplane-body-verified'] = '';
  }
  try {
    res.writeHead(200, headers);
  } catch {
    writeDeny(res, denyAnswer({ reason: 'internal_error' }), { requestId });
    return;
  }
  res.end();
}
