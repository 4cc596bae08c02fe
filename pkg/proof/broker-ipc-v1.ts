import { z } from 'zod';
import { keyBindingSchema } from '../authcore/claims.js';

/** broker-ipc-v1 protocol constants. */
export const BROKER_IPC_VERSION = 'trustplane-broker-ipc-v1';
/** Largest IPC message (one JSON line), bytes. */
export const BROKER_IPC_MAX_MESSAGE_BYTES = 1024 * 1024;
/** IPC request timeout, milliseconds. */
export const BROKER_IPC_TIMEOUT_MS = 30_000;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const str = z.string().min(1).max(4096);

/** The HTTP request a broker is asked to bind a passport to. */
export const brokerHttpSchema = z.strictObject({
  method: z.string().regex(/^[A-Z]{1,16}$/),
  scheme: z.enum(['https', 'http']),
  authority: str,
  path: z.string().min(1).max(4096).startsWith('/'),
  content_encoding: z.string().min(1).max(64),
  query: z.strictObject({
    raw: z.string().max(8192),
    normalization: z.literal('rfc3986-sort-keys-values'),
    normalized: z.string().max(16384),
    sha256: hex64,
  }),
  headers: z.strictObject({
    allow_list: z.array(z.string().min(1).max(256)).max(32),
    selected: z.array(z.strictObject({ name: z.string().min(1).max(256), value_sha256: hex64 })).max(32),
  }),
  audience: str,
  route_id: str,
  body_sha256: hex64,
  nonce: z.string().min(1).max(256),
});

/** broker-ipc-v1 request (`issue_request_bound_passport`). */
export const brokerIpcRequestSchema = z.strictObject({
  request_id: z.string().min(1).max(256),
  protocol: z.literal('local-json-ipc'),
  operation: z.literal('issue_request_bound_passport'),
  http: brokerHttpSchema,
  key_binding: z.strictObject({
    intent: z.literal('route_policy_minimum'),
    requested_key_binding: keyBindingSchema,
    acceptable_key_bindings: z.array(keyBindingSchema).min(1).max(4),
    allow_software_fallback: z.boolean(),
  }),
  ctx: z
    .strictObject({
      selected_fields: z.array(
        z.enum(['actor_type', 'purpose', 'tool_name', 'workflow_id', 'max_txn_value']),
      ),
      values: z.record(z.string(), z.string().max(256)),
    })
    .optional(),
});

const artifactsSchema = z.strictObject({
  passport: z.strictObject({ format: str, value: z.string().min(1).max(16384), jti: str }),
  stamp: z.strictObject({ format: str, value: z.string().min(1).max(4096), transcript_sha256: hex64 }),
});

/** broker-ipc-v1 response: allow with artifacts, or deny with a structured error. */
export const brokerIpcResponseSchema = z.discriminatedUnion('accepted', [
  z.strictObject({
    request_id: z.string().min(1).max(256),
    accepted: z.literal(true),
    status: z.literal('allow'),
    reason_code: z.literal('broker_passport_issued'),
    issued_at: z.number().int().positive(),
    expires_at: z.number().int().positive(),
    artifacts: artifactsSchema,
    error: z.null(),
  }),
  z.strictObject({
    request_id: z.string().min(1).max(256),
    accepted: z.literal(false),
    status: z.literal('deny'),
    reason_code: z.string().min(1).max(128),
    issued_at: z.literal(0),
    expires_at: z.literal(0),
    artifacts: z.null(),
    error: z.strictObject({
      code: z.string().min(1).max(128),
      message: z.string().max(1024),
      retryable: z.boolean(),
      details: z.record(z.string(), z.string()).optional(),
    }),
  }),
]);

/** A broker-ipc-v1 request. */
export type BrokerIpcRequest = z.infer<typeof brokerIpcRequestSchema>;
/** A broker-ipc-v1 response. */
export type BrokerIpcResponse = z.infer<typeof brokerIpcResponseSchema>;
