import type { ReasonCode } from '../authcore/reason-codes.js';
import { AUDIT_EVENT_SCHEMA, type AuditComponent, type AuditEvent } from './event.js';

/** An allow as the audit module records it (the verifier's `AllowDecision` extends it). */
export interface AuditAllowDecision {
  readonly allowed: true;
  readonly status: number;
  readonly routeId: string;
  readonly apiId: string;
  readonly audience: string;
  readonly subject: string;
  readonly issuer: string;
  readonly trustDomain: string;
  readonly jti: string;
  readonly keyBinding: string;
  readonly sourceType: string;
  readonly transcriptSha256: string;
}

/** A deny as the audit module records it (the verifier's `DenyDecision` extends it). */
export interface AuditDenyDecision {
  readonly allowed: false;
  readonly status: number;
  readonly reason: ReasonCode;
  /** The pipeline stage that refused. */
  readonly stage: string;
  /** Operator-facing detail (never sent to the caller). */
  readonly message: string;
  readonly routeId?: string;
  readonly issuer?: string;
  readonly subject?: string;
  readonly jti?: string;
}

/**
 * The decision an audit event records. Defined here, and extended by the verifier's `Decision`,
 * so that the audit layer does not depend on the verifier.
 */
export type AuditDecision = AuditAllowDecision | AuditDenyDecision;

/** Request facts the enforcement point adds to a decision's event. */
export interface AuditRequestInfo {
  readonly method?: string;
  readonly authority?: string;
  readonly path?: string;
  readonly querySha256?: string;
  readonly clientAddress?: string;
  readonly requestId?: string;
}

/** One MCP JSON-RPC call, as an audit event records it (the `mcp` member). */
export interface AuditMcpCall {
  readonly method: string;
  readonly id?: string | number;
  readonly tool?: string;
  readonly uri?: string;
  readonly argumentsSha256?: string;
  readonly arguments?: string;
  readonly batchIndex?: number;
  readonly batchSize?: number;
}

/** Options for {@link auditEventFromDecision}. */
export interface AuditEventOptions {
  readonly component: AuditComponent;
  readonly instance?: string;
  /** Event time, epoch milliseconds (default: now). */
  readonly timeMs?: number;
  readonly request?: AuditRequestInfo;
  readonly policyVersion?: string;
  readonly latencyUs?: number;
  /** Status actually answered, when it differs from the decision's (e.g. 502 after an allow). */
  readonly status?: number;
  /** The route's enforcement mode, recorded when it is `dry-run` (the decision was not enforced). */
  readonly enforcement?: 'enforce' | 'dry-run';
  /** The MCP call the event records (routes with `mcp`). */
  readonly mcp?: AuditMcpCall;
}

function put<K extends keyof AuditEvent>(
  event: Record<string, unknown>,
  key: K,
  value: AuditEvent[K] | undefined,
) {
  if (value !== undefined && value !== '') event[key] = value;
}

/**
 * Build the audit event for one verification decision.
 * @param decision the verifier's decision
 * @param options component, request facts and timing
 * @returns a plain event object (JSON-serializable, no secrets)
 * @example
 * const event = auditEventFromDecision(decision, { component: 'middleware-hono', request: { method: 'GET', path: '/v1/orders' } })
 */
export function auditEventFromDecision(decision: AuditDecision, options: AuditEventOptions): AuditEvent {
  const event: Record<string, unknown> = {
    schema: AUDIT_EVENT_SCHEMA,
    event_id: crypto.randomUUID(),
    time: new Date(options.timeMs ?? Date.now()).toISOString(),
    event_type: 'authorization_decision',
    component: options.component,
  };
  put(event, 'instance', options.instance);
  event.decision = decision.allowed ? 'allow' : 'deny';
  event.status = options.status ?? decision.status;
  if (!decision.allowed) {
    event.reason = decision.reason;
    event.stage = decision.stage;
    put(event, 'detail', decision.message.slice(0, 512));
  }
  const r = options.request;
  if (r) {
    put(event, 'request_id', r.requestId?.slice(0, 128));
    put(event, 'method', r.method?.slice(0, 32));
    put(event, 'authority', r.authority?.slice(0, 512));
    put(event, 'path', r.path?.slice(0, 4096));
    put(event, 'query_sha256', r.querySha256);
    put(event, 'client_address', r.clientAddress?.slice(0, 128));
  }
  put(event, 'route_id', decision.routeId);
  put(event, 'iss', decision.issuer);
  put(event, 'sub', decision.subject);
  put(event, 'jti', decision.jti);
  if (decision.allowed) {
    put(event, 'api_id', decision.apiId);
    put(event, 'audience', decision.audience);
    put(event, 'trust_domain', decision.trustDomain);
    put(event, 'key_binding', decision.keyBinding);
    put(event, 'source_type', decision.sourceType);
    put(event, 'transcript_sha256', decision.transcriptSha256);
  }
  put(event, 'policy_version', options.policyVersion);
  if (options.enforcement === 'dry-run') event.enforcement = 'dry-run';
  const m = options.mcp;
  if (m !== undefined) {
    const mcp: Record<string, unknown> = { method: m.method.slice(0, 256) };
    if (m.id !== undefined) mcp.id = typeof m.id === 'string' ? m.id.slice(0, 256) : m.id;
    if (m.tool !== undefined) mcp.tool = m.tool.slice(0, 4096);
    if (m.uri !== undefined) mcp.uri = m.uri.slice(0, 4096);
    if (m.argumentsSha256 !== undefined) mcp.arguments_sha256 = m.argumentsSha256;
    if (m.arguments !== undefined && m.arguments.length <= 4096) mcp.arguments = m.arguments;
    if (m.batchIndex !== undefined) mcp.batch_index = m.batchIndex;
    if (m.batchSize !== undefined) mcp.batch_size = m.batchSize;
    event.mcp = mcp;
  }
  if (options.latencyUs !== undefined) event.latency_us = Math.max(0, Math.round(options.latencyUs));
  return event as AuditEvent;
}
