import { z } from 'zod';
import { REASON_CODES, type ReasonCode } from '../authcore/reason-codes.js';

/** The audit event format every component writes, one event per decision. */
export const AUDIT_EVENT_SCHEMA = 'trustplane-auth-audit-event-v0.1';

/** Which enforcement point (or broker) made the decision. */
export type AuditComponent =
  | 'library'
  | 'middleware-hono'
  | 'middleware-node'
  | 'middleware-fastify'
  | 'adapter'
  | 'forward-auth'
  | 'broker';

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
  component: z.enum([
    'library',
    'middleware-hono',
    'middleware-node',
    'middleware-fastify',
    'adapter',
    'forward-auth',
    'broker',
  ]),
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
  /**
   * MCP routes: the JSON-RPC call this event records (one event per call; a batch writes one per
   * message, all with the batch's decision). Arguments only as a digest unless the route sets
   * `mcp.audit_arguments`.
   */
  mcp: z
    .strictObject({
      method: short(256),
      id: z.union([short(256), z.number()]).optional(),
      /** `tools/call`: the tool; `prompts/get`: the prompt. */
      tool: short(4096).optional(),
      /** `resources/read`: the URI. */
      uri: short(4096).optional(),
      /** SHA-256 (hex) of the RFC 8785 canonical `params.arguments`. */
      arguments_sha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .optional(),
      /** The canonical arguments (`mcp.audit_arguments` routes only; at most 4096 characters). */
      arguments: short(4096).optional(),
      batch_index: z.number().int().nonnegative().optional(),
      batch_size: z.number().int().positive().optional(),
    })
    .optional(),
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

/** The reason code of a deny event, typed. */
export function auditReason(event: AuditEvent): ReasonCode | undefined {
  return event.reason as ReasonCode | undefined;
}
