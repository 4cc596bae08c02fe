import { z } from 'zod';
import { REASON_CODES, type ReasonCode } from '../authcore/reason-codes.js';

/** The audit event format every component writes, one event per decision. */
export const AUDIT_EVENT_SCHEMA = 'trustplane-auth-audit-event-v0.1';

/** Which enforcement point (or broker) made the decision. */
export type AuditComponent =
  'library' | 'middleware-hono' | 'middleware-node' | 'adapter' | 'forward-auth' | 'broker';

const reasonCode = z.string().refine((s) => Object.hasOwn(REASON_CODES, s), 'unknown reason code');
const short = (max: number) => z.string().max(max);

/**
 * trustplane-auth-audit-event-v0.1. Required: `schema`, `event_id`, `time`, `event_type`,
 * `component`, `decision`, `status`. Everything else is present when known. Never holds a
 * passport, proof, signature, key or body: only identifiers and digests.
 */
export const auditEventSchema = z.strictObject({
  schema: z.literal(AUDIT_EVENT_SCHEMA),
  event_id: short(64),
  /** RFC 3339 UTC with milliseconds. */
  time: short(40),
  event_type: z.enum(['authorization_decision', 'passport_issued', 'passport_denied', 'receipt_issued']),
  component: z.enum(['library', 'middleware-hono', 'middleware-node', 'adapter', 'forward-auth', 'broker']),
  /** Instance name of the component (`--instance`, default the host name). */
  instance: short(256).optional(),
  decision: z.enum(['allow', 'deny']),
  /** HTTP status the enforcement point answered with. */
  status: z.number().int().min(100).max(599),
  /** Reason code (deny only). */
  reason: reasonCode.optional(),
  /** Pipeline stage that refused (deny only). */
  stage: short(32).optional(),
  /** Operator-facing detail of a deny (never sent to the caller; never secret). */
  detail: short(512).optional(),
  request_id: short(128).optional(),
  method: short(32).optional(),
  authority: short(512).optional(),
  /** Raw path as sent (the query is not logged; it may carry data). */
  path: short(4096).optional(),
  query_sha256: short(64).optional(),
  client_address: short(128).optional(),
  route_id: short(256).optional(),
  api_id: short(256).optional(),
  audience: short(2048).optional(),
  iss: short(2048).optional(),
  sub: short(2048).optional(),
  trust_domain: short(256).optional(),
  jti: short(256).optional(),
  key_binding: short(32).optional(),
  source_type: short(64).optional(),
  transcript_sha256: short(64).optional(),
  policy_version: short(256).optional(),
  /**
   * `dry-run` when the route's enforcement mode is dry-run: the decision was recorded and counted
   * (`would_deny`) but not enforced, and the request went on. Absent for enforced decisions.
   */
  enforcement: z.enum(['dry-run']).optional(),
  /** Verification time, microseconds. */
  latency_us: z.number().int().nonnegative().optional(),
  /** Response status the upstream answered (receipt routes; also `status` when it differs). */
  upstream_status: z.number().int().min(100).max(599).optional(),
  /** The signed receipt (`trustplane-receipt-v1`, compact JWS) returned in `X-TrustPlane-Receipt`. */
  receipt: short(8192).optional(),
  /** Ledger chain fields (set by chaining sinks, see `trustplane/audit` chain.ts). */
  chain_id: short(256).optional(),
  seq: z.number().int().positive().optional(),
  prev_hash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  record_hash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

/** One audit event. */
export type AuditEvent = z.infer<typeof auditEventSchema>;

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
  if (options.latencyUs !== undefined) event.latency_us = Math.max(0, Math.round(options.latencyUs));
  return event as AuditEvent;
}

/** Where audit events go. `write` must not throw for a healthy sink; failures reject. */
export interface AuditSink {
  write(event: AuditEvent): void | Promise<void>;
  /**
   * Write and resolve only once the event is durable (file fsync, PostgreSQL commit); reject when
   * that cannot happen. Routes with `audit: "required"` use it before allowing. Sinks without it
   * cannot serve such routes.
   */
  writeDurable?(event: AuditEvent): Promise<void>;
  /**
   * False while the sink knows a durable write cannot succeed (PostgreSQL unreachable, events
   * buffered): `audit: "required"` routes are then refused at once without recording an allow.
   */
  readonly durableAvailable?: boolean;
  /** Flush buffered events. */
  flush?(): Promise<void>;
  close?(): Promise<void>;
}

/** Keeps events in memory (tests, embedding). */
export class MemoryAuditSink implements AuditSink {
  readonly events: AuditEvent[] = [];
  write(event: AuditEvent): void {
    this.events.push(event);
  }
}

/** The reason code of a deny event, typed. */
export function auditReason(event: AuditEvent): ReasonCode | undefined {
  return event.reason as ReasonCode | undefined;
}
