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
