import { createHash, randomUUID } from 'node:crypto';
import type { Agent as HttpAgent, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import { TrustplaneError } from '../authcore/errors.js';
import type { ReplayStore } from '../authcore/replay-store.js';
import {
  auditEventFromDecision,
  type AuditComponent,
  type AuditEvent,
  type AuditSink,
} from '../audit/event.js';
import type { ReceiptPayload } from '../audit/receipt.js';
import type { IDENTITY_HEADERS } from '../proof/wire.js';
import { WIRE_HEADERS } from '../proof/wire.js';
import {
  denyBody,
  denyHeaders,
  type AllowDecision,
  type Decision,
  type DenyDecision,
} from '../verifier/decision.js';
import type { NormalizedRequest } from '../verifier/normalized-request.js';
import { requestScheme } from '../middleware/node/request.js';
import { verifyRequest } from '../verifier/verify-request.js';
import type { BundleManager } from '../runtime/bundle-manager.js';
import type { AdapterConfig } from './config.js';
import type { Logger } from '../runtime/logger.js';
import type { AdapterMetrics } from '../runtime/metrics.js';
import {
  assertNoDuplicateCriticalHeaders,
  connectionTokens,
  EMPTY_BODY_SHA256,
  headerValue,
  isHopByHop,
  nodeHeaderSource,
  readBody,
  splitTarget,
  type ReadBody,
} from './node-request.js';

/** What the request handlers need (one per adapter instance). */
export interface EnforcementRuntime {
  readonly config: AdapterConfig;
  readonly bundles: BundleManager;
  readonly replayStore: ReplayStore;
  readonly audit: AuditSink;
  readonly log: Logger;
  readonly metrics: AdapterMetrics;
  readonly clock?: () => number;
  readonly upstream?: URL;
  readonly agent?: HttpAgent | HttpsAgent;
  /** Receipt signer (routes with `receipt: true`); absent when no receipt key is configured. */
  readonly receipts?: ReceiptSigner;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

function requestIdOf(req: IncomingMessage): string {
  const given = headerValue(req.headers, 'x-request-id');
  return given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
}

function preVerifyDeny(e: unknown): DenyDecision {
  const err =
    e instanceof TrustplaneError
      ? e
      : new TrustplaneError('internal_error', 'unexpected failure reading the request');
  return {
    allowed: false,
    status: err.status,
    reason: err.reason,
    stage: 'parse',
    message: err.message,
    details: {},
  };
}

interface RequestFacts {
  readonly method: string;
  /** The scheme the caller used (computed once; the verifier and X-Forwarded-Proto share it). */
  readonly scheme: string;
  readonly authority: string;
  readonly path: string;
  readonly query: string;
  readonly requestId: string;
  readonly clientAddress: string | undefined;
  readonly started: bigint;
}

/** Count and log one decision (metrics and the decision log line). */
function observe(
  rt: EnforcementRuntime,
  component: AuditComponent,
  decision: Decision,
  facts: RequestFacts,
): number {
  const seconds = Number(process.hrtime.bigint() - facts.started) / 1e9;
  const outcome = decision.allowed ? 'allow' : 'deny';
  const reason = decision.allowed ? 'none' : decision.reason;
  const route = decision.routeId ?? '';
  rt.metrics.decisions.inc({ outcome, reason, route });
  rt.metrics.verifySeconds.observe({ outcome }, seconds);
  if (!decision.allowed && decision.reason === 'replay_store_unavailable') rt.metrics.replayStoreErrors.inc();
  if (rt.log.enabled('info')) {
    rt.log.info('decision', {
      component,
      decision: outcome,
      status: decision.status,
      reason: decision.allowed ? undefined : decision.reason,
      stage: decision.allowed ? undefined : decision.stage,
      route_id: decision.routeId,
      method: facts.method,
      path: facts.path,
      sub: decision.subject,
      iss: decision.issuer,
      jti: decision.jti,
      request_id: facts.requestId,
      latency_ms: Math.round(seconds * 1e6) / 1e3,
    });
  }
  return seconds;
}

/** The audit event of one decision. */
function decisionEvent(
  rt: EnforcementRuntime,
  component: AuditComponent,
  decision: Decision,
  facts: RequestFacts,
  seconds: number,
): AuditEvent {
  const policyVersion = rt.bundles.current.policy.policyVersion;
  return auditEventFromDecision(decision, {
    component,
    instance: rt.config.instance,
    request: {
      method: facts.method,
      authority: facts.authority,
      path: facts.path,
      ...(facts.query !== '' ? { querySha256: createHash('sha256').update(facts.query).digest('hex') } : {}),
      ...(facts.clientAddress !== undefined ? { clientAddress: facts.clientAddress } : {}),
      requestId: facts.requestId,
    },
    ...(policyVersion !== undefined ? { policyVersion } : {}),
    latencyUs: seconds * 1e6,
  });
}

/** Hand an event to the audit sink without waiting (failures are counted and logged). */
function writeEvent(rt: EnforcementRuntime, event: () => AuditEvent): void {
  try {
    const written = rt.audit.write(event());
    if (written instanceof Promise) written.catch((e: unknown) => auditFailed(rt, e));
  } catch (e) {
    auditFailed(rt, e);
  }
}

/** Count, log and audit one decision (the audit write never delays the answer). */
function record(
  rt: EnforcementRuntime,
  component: AuditComponent,
  decision: Decision,
  facts: RequestFacts,
): void {
  const seconds = observe(rt, component, decision, facts);
  writeEvent(rt, () => decisionEvent(rt, component, decision, facts, seconds));
}

/**
 * Record an allow on an `audit: "required"` route: the allow event must be durable (PostgreSQL
 * commit, file fsync) before the request goes on; otherwise the answer is 503 `audit_unavailable`.
 * - When the sink says it cannot make a write durable right now (PostgreSQL unreachable) or has
 *   no durable write, the allow is never recorded: the 503 deny is the decision's one record.
 * - When a durable write was attempted and the sink says the event stays queued (PostgreSQL went
 *   down during the commit) or our timeout fired first, the allow event will be written when it
 *   can: it stays the decision's one record (a second, deny record would count the decision
 *   twice); the 503 is logged and counted. When the write failed and nothing was recorded (a
 *   file whose fsync failed is rolled back), the 503 deny is recorded.
 * @returns the decision that stands
 */
async function recordDurably(
  rt: EnforcementRuntime,
  component: AuditComponent,
  decision: AllowDecision,
  facts: RequestFacts,
): Promise<Decision> {
  const sink = rt.audit;
  const seconds = Number(process.hrtime.bigint() - facts.started) / 1e9;
  const err = new TrustplaneError('audit_unavailable', 'the route requires a durable audit write');
  const deny: DenyDecision = {
    ...preVerifyDeny(err),
    stage: 'policy',
    routeId: decision.routeId,
    issuer: decision.issuer,
    subject: decision.subject,
    jti: decision.jti,
  };
  if (sink.writeDurable === undefined || sink.durableAvailable === false) {
    record(rt, component, deny, facts);
    return deny;
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Error('durable audit write timed out');
  try {
    await Promise.race([
      sink.writeDurable(decisionEvent(rt, component, decision, facts, seconds)),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(timedOut), rt.config.auditDurableTimeoutMs);
      }),
    ]);
    observe(rt, component, decision, facts);
    return decision;
  } catch (e) {
    auditFailed(rt, e);
    // Queued (or still in flight when our timeout fired): the allow event will be written, and it
    // is the decision's one record. Otherwise nothing was recorded: record the deny.
    const queued = e === timedOut || (e as { queued?: unknown }).queued === true;
    if (queued) observe(rt, component, deny, facts);
    else record(rt, component, deny, facts);
    return deny;
  } finally {
    clearTimeout(timer);
  }
}

/** The policy route of an allowed decision (for its audit and receipt options). */
function routeOptions(rt: EnforcementRuntime, decision: AllowDecision) {
  return rt.bundles.current.policy.routesById.get(decision.routeId)?.route;
}

function auditFailed(rt: EnforcementRuntime, e: unknown): void {
  rt.metrics.auditWriteFailures.inc();
  rt.log.error('audit write failed', { error: e instanceof Error ? e.message : String(e) });
}

function sendDeny(res: ServerResponse, decision: DenyDecision, requestId: string, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: OutgoingHttpHeaders = {
    ...denyHeaders(decision),
    'x-trustplane-reason': decision.reason,
    'x-request-id': requestId,
  };
  if (close) headers.connection = 'close';
  res.writeHead(decision.status, headers);
  res.end(JSON.stringify(denyBody(decision)));
}

function identityHeaders(d: AllowDecision): Record<(typeof IDENTITY_HEADERS)[number], string> {
  return {
    'x-trustplane-subject': d.subject,
    'x-trustplane-issuer': d.issuer,
    'x-trustplane-trust-domain': d.trustDomain,
    'x-trustplane-jti': d.jti,
    'x-trustplane-key-binding': d.keyBinding,
    'x-trustplane-route-id': d.routeId,
  };
}

function callerAuthority(rt: EnforcementRuntime, req: IncomingMessage): string {
  const forwarded = rt.config.trustForwardedHeaders
    ? headerValue(req.headers, 'x-forwarded-host')?.split(',')[0]?.trim()
    : undefined;
  return (forwarded ?? headerValue(req.headers, 'host') ?? '').toLowerCase();
}

function verifierOptions(rt: EnforcementRuntime) {
  const snap = rt.bundles.current;
  return {
    trust: snap.trust,
    policy: snap.policy,
    replayStore: rt.replayStore,
    skewSeconds: rt.config.skewSeconds,
    maxLifetimeSeconds: rt.config.maxLifetimeSeconds,
    ...(rt.clock !== undefined ? { clock: rt.clock } : {}),
    ...(rt.config.routeId !== undefined ? { routeId: rt.config.routeId } : {}),
    ...(rt.config.publicOrigin !== undefined ? { publicOrigin: rt.config.publicOrigin } : {}),
  };
}

/**
 * Refuse a target not in origin-form and repeated critical headers, then read and digest the body;
 * on failure answer the deny.
 */
async function readOrDeny(
  rt: EnforcementRuntime,
  component: AuditComponent,
  req: IncomingMessage,
  res: ServerResponse,
  facts: RequestFacts,
): Promise<ReadBody | undefined> {
  try {
    // Only origin-form targets ("/path?query"): absolute-form or "*" never reach routing.
    if (!facts.path.startsWith('/'))
      throw new TrustplaneError('malformed_request', 'request target is not in origin-form');
    assertNoDuplicateCriticalHeaders(req.rawHeaders);
    return await readBody(req, rt.config.maxBodyBytes);
  } catch (e) {
    const deny = preVerifyDeny(e);
    record(rt, component, deny, facts);
    sendDeny(res, deny, facts.requestId, deny.reason === 'body_too_large');
    return undefined;
  }
}

/**
 * Reverse-proxy mode: buffer and digest the body, verify, then forward the exact bytes to the
 * upstream with identity headers, or answer the deny (the upstream receives nothing).
 */
export async function handleProxyRequest(
  rt: EnforcementRuntime,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const started = process.hrtime.bigint();
  const { path, query } = splitTarget(req.url ?? '/');
  const facts: RequestFacts = {
    method: req.method ?? 'GET',
    scheme: requestScheme(req, rt.config.trustForwardedHeaders),
    authority: callerAuthority(rt, req),
    path,
    query,
    requestId: requestIdOf(req),
    clientAddress: req.socket.remoteAddress,
    started,
  };
  const body = await readOrDeny(rt, 'adapter', req, res, facts);
  if (body === undefined) return;
  const normalized: NormalizedRequest = {
    method: facts.method,
    scheme: facts.scheme,
    authority: facts.authority,
    path,
    query,
    headers: nodeHeaderSource(req.headers),
    bodySha256: body.sha256,
    bodyLength: body.bytes.length,
  };
  const verified = await verifyRequest(normalized, verifierOptions(rt));
  const route = verified.allowed ? routeOptions(rt, verified) : undefined;
  let decision: Decision = verified;
  if (verified.allowed && route?.audit === 'required') {
    decision = await recordDurably(rt, 'adapter', verified, facts);
  } else {
    record(rt, 'adapter', verified, facts);
  }
  if (!decision.allowed) {
    sendDeny(res, decision, facts.requestId);
    return;
  }
  forward(rt, req, res, decision, body.bytes, facts, route?.receipt === true);
}

function upstreamHeaders(
  rt: EnforcementRuntime,
  req: IncomingMessage,
  decision: AllowDecision,
  body: Buffer,
  facts: RequestFacts,
): OutgoingHttpHeaders {
  const listed = connectionTokens(req.headers);
  const out: OutgoingHttpHeaders = {};
  const trustFwd = rt.config.trustForwardedHeaders;
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (isHopByHop(name, listed)) continue;
    // Proof headers, caller-sent identity headers and the whole X-TrustPlane-* namespace stop here.
    if (name.startsWith('x-trustplane-')) continue;
    if (name === WIRE_HEADERS.authorization && !rt.config.forwardAuthorization) continue;
    if (name === 'expect' || name === 'content-length' || name === 'x-request-id') continue;
    if (!trustFwd && (name === 'forwarded' || name.startsWith('x-forwarded-'))) continue;
    if (name === 'host' && !rt.config.preserveHost) continue;
    out[name] = value;
  }
  Object.assign(out, identityHeaders(decision));
  out['x-request-id'] = facts.requestId;
  const client = req.socket.remoteAddress ?? '';
  const priorFor = trustFwd ? headerValue(req.headers, 'x-forwarded-for') : undefined;
  out['x-forwarded-for'] = priorFor !== undefined && priorFor !== '' ? `${priorFor}, ${client}` : client;
  out['x-forwarded-proto'] = facts.scheme;
  if (facts.authority !== '') out['x-forwarded-host'] = facts.authority;
  if (body.length > 0 || req.headers['content-length'] !== undefined)
    out['content-length'] = String(body.length);
  if (!rt.config.preserveHost && rt.upstream) out.host = rt.upstream.host;
  return out;
}

function forward(
  rt: EnforcementRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  decision: AllowDecision,
  body: Buffer,
  facts: RequestFacts,
  receipt = false,
): void {
  const upstream = rt.upstream!;
  let headers: OutgoingHttpHeaders;
  try {
    headers = upstreamHeaders(rt, req, decision, body, facts);
  } catch {
    sendDeny(res, preVerifyDeny(undefined), facts.requestId);
    return;
  }
  const prefix = upstream.pathname === '/' ? '' : upstream.pathname.replace(/\/$/, '');
  const send = upstream.protocol === 'https:' ? httpsRequest : httpRequest;
  const sentAt = process.hrtime.bigint();
  let settled = false;
  const fail = (kind: 'connect' | 'timeout' | 'reset') => {
    if (settled) return;
    settled = true;
    // The caller went away first (we destroyed the upstream request): not an upstream failure.
    if (res.destroyed && !res.headersSent) return;
    rt.metrics.upstreamErrors.inc({ kind });
    rt.log.warn('upstream failure', { kind, route_id: decision.routeId, request_id: facts.requestId });
    const reason = kind === 'timeout' ? 'upstream_timeout' : 'upstream_unavailable';
    const err = new TrustplaneError(reason, 'upstream failure');
    sendDeny(res, { ...preVerifyDeny(err), routeId: decision.routeId }, facts.requestId);
  };
  let upReq;
  try {
    upReq = send({
      protocol: upstream.protocol,
      hostname: upstream.hostname.replace(/^\[|\]$/g, ''),
      port: upstream.port || (upstream.protocol === 'https:' ? 443 : 80),
      method: facts.method,
      path: `${prefix}${req.url ?? '/'}`,
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
    if (receipt && rt.receipts !== undefined) {
      respondWithReceipt(rt, res, upRes, status, out, decision, facts);
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

/** Signs receipts for an adapter (`trustplane-receipt-v1`). */
export interface ReceiptSigner {
  sign(payload: ReceiptPayload): Promise<string>;
}

/**
 * Buffer the upstream answer (bounded), sign a receipt over the request transcript, the identity,
 * the decision and the answer's status and body digest, send it in `X-TrustPlane-Receipt` with the
 * answer, and write it to the ledger as a `receipt_issued` event.
 */
function respondWithReceipt(
  rt: EnforcementRuntime,
  res: ServerResponse,
  upRes: IncomingMessage,
  status: number,
  headers: OutgoingHttpHeaders,
  decision: AllowDecision,
  facts: RequestFacts,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  const hash = createHash('sha256');
  const fail = (message: string) => {
    if (failed) return;
    failed = true;
    upRes.destroy();
    rt.metrics.upstreamErrors.inc({ kind: 'reset' });
    rt.log.warn('receipt not issued', {
      route_id: decision.routeId,
      request_id: facts.requestId,
      error: message,
    });
    const err = new TrustplaneError('upstream_unavailable', message);
    sendDeny(res, { ...preVerifyDeny(err), routeId: decision.routeId }, facts.requestId);
  };
  upRes.on('data', (chunk: Buffer) => {
    if (failed) return;
    size += chunk.length;
    if (size > rt.config.receiptMaxResponseBytes) {
      fail('the upstream response exceeds receiptMaxResponseBytes');
      return;
    }
    hash.update(chunk);
    chunks.push(chunk);
  });
  upRes.on('error', () => fail('the upstream response failed'));
  upRes.on('aborted', () => fail('the upstream response was aborted'));
  upRes.on('end', () => {
    if (failed) return;
    const bodyDigest = hash.digest('hex');
    const policyVersion = rt.bundles.current.policy.policyVersion;
    const payload: ReceiptPayload = {
      v: 'trustplane-receipt-v1',
      adapter: rt.config.instance,
      iat: Math.floor(rt.clock ? rt.clock() : Date.now() / 1000),
      request: {
        transcript_sha256: decision.transcriptSha256,
        method: facts.method,
        authority: facts.authority,
        path: facts.path,
        route_id: decision.routeId,
      },
      identity: {
        iss: decision.issuer,
        sub: decision.subject,
        aud: decision.audience,
        jti: decision.jti,
        trust_domain: decision.trustDomain,
        key_binding: decision.keyBinding,
      },
      decision: 'allow',
      response: { status, body_sha256: bodyDigest },
      ...(policyVersion !== undefined ? { policy_version: policyVersion } : {}),
    };
    rt.receipts!.sign(payload).then(
      (receipt) => {
        const body = Buffer.concat(chunks);
        try {
          res.writeHead(status, {
            ...headers,
            'content-length': String(body.length),
            'x-trustplane-receipt': receipt,
          });
          res.end(body);
        } catch {
          res.destroy();
          return;
        }
        writeEvent(rt, () => ({
          ...decisionEvent(rt, 'adapter', decision, facts, 0),
          event_type: 'receipt_issued',
          upstream_status: status,
          receipt,
        }));
      },
      (e: unknown) => fail(`receipt signing failed: ${e instanceof Error ? e.message : String(e)}`),
    );
  });
}

/**
 * Forward-auth mode (nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz HTTP service):
 * the original method and URI come from `X-Original-Method`/`X-Original-URI` (nginx) or
 * `X-Forwarded-Method`/`X-Forwarded-Uri` (Traefik), else from this request itself (Envoy, with
 * `forwardAuthPathPrefix` stripped). A body sent to this endpoint (Envoy `with_request_body`,
 * Traefik `forwardBody`) is verified; otherwise, when the original request may carry a body
 * (POST/PUT/PATCH, or a non-zero length or transfer coding signalled by the gateway), the caller's
 * claimed `X-TrustPlane-Body-SHA256` is used and the request is denied `unverifiable_body` unless
 * the route sets `allow_unverified_body`. On allow: 200 with the identity headers for the gateway
 * to copy upstream, plus `X-TrustPlane-Body-Verified`.
 */
export async function handleForwardAuthRequest(
  rt: EnforcementRuntime,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const started = process.hrtime.bigint();
  const h = req.headers;
  const method = (
    headerValue(h, 'x-original-method') ??
    headerValue(h, 'x-forwarded-method') ??
    req.method ??
    'GET'
  ).trim();
  let uri = headerValue(h, 'x-original-uri') ?? headerValue(h, 'x-forwarded-uri');
  if (uri === undefined) {
    uri = req.url ?? '/';
    const prefix = rt.config.forwardAuthPathPrefix;
    if (prefix !== undefined && prefix !== '/' && uri.startsWith(prefix))
      uri = uri.slice(prefix.length) || '/';
  }
  const { path, query } = splitTarget(uri);
  const authority = (
    headerValue(h, 'x-forwarded-host')?.split(',')[0]?.trim() ??
    headerValue(h, 'x-original-host') ??
    headerValue(h, 'host') ??
    ''
  ).toLowerCase();
  const proto = headerValue(h, 'x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
  const facts: RequestFacts = {
    method,
    scheme: proto === 'https' || proto === 'http' ? proto : 'http',
    authority,
    path,
    query,
    requestId: requestIdOf(req),
    clientAddress: headerValue(h, 'x-real-ip') ?? req.socket.remoteAddress,
    started,
  };
  const body = await readOrDeny(rt, 'forward-auth', req, res, facts);
  if (body === undefined) return;
  let bodySha256 = body.sha256;
  let bodyLength = body.bytes.length;
  let bodyUnverified = false;
  if (bodyLength === 0) {
    const declared =
      headerValue(h, 'x-original-content-length') ?? headerValue(h, 'x-forwarded-content-length');
    const coding =
      headerValue(h, 'x-original-transfer-encoding') ?? headerValue(h, 'x-forwarded-transfer-encoding');
    const mayHaveBody =
      BODY_METHODS.has(method.toUpperCase()) ||
      (declared !== undefined && declared.trim() !== '' && declared.trim() !== '0') ||
      (coding !== undefined && coding.trim() !== '');
    if (mayHaveBody) {
      bodyUnverified = true;
      const claimed = headerValue(h, WIRE_HEADERS.bodySha256)?.trim().toLowerCase();
      bodySha256 = claimed !== undefined && HEX64.test(claimed) ? claimed : EMPTY_BODY_SHA256;
      bodyLength = bodySha256 === EMPTY_BODY_SHA256 ? 0 : 1;
    }
  }
  const normalized: NormalizedRequest = {
    method,
    scheme: facts.scheme,
    authority,
    path,
    query,
    headers: nodeHeaderSource(h),
    bodySha256,
    bodyLength,
    ...(bodyUnverified ? { bodyUnverified: true } : {}),
  };
  const verified = await verifyRequest(normalized, verifierOptions(rt));
  let decision: Decision = verified;
  if (verified.allowed && routeOptions(rt, verified)?.audit === 'required') {
    decision = await recordDurably(rt, 'forward-auth', verified, facts);
  } else {
    record(rt, 'forward-auth', verified, facts);
  }
  if (!decision.allowed) {
    sendDeny(res, decision, facts.requestId);
    return;
  }
  const headers: OutgoingHttpHeaders = {
    ...identityHeaders(decision),
    'x-trustplane-body-verified': bodyUnverified ? 'false' : 'true',
    'x-request-id': facts.requestId,
    'cache-control': 'no-store',
    'content-length': '0',
  };
  try {
    res.writeHead(200, headers);
  } catch {
    sendDeny(res, preVerifyDeny(undefined), facts.requestId);
    return;
  }
  res.end();
}
