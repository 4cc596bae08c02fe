export {
  AUDIT_EVENT_SCHEMA,
  auditEventSchema,
  auditEventFromDecision,
  auditReason,
  MemoryAuditSink,
  type AuditEvent,
  type AuditSink,
  type AuditComponent,
  type AuditEventOptions,
  type AuditRequestInfo,
} from './event.js';
export { StreamAuditSink, openFileAuditSink, type StreamAuditSinkOptions } from './stream-sink.js';
