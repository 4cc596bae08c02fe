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
export {
  HashChain,
  verifyChain,
  ledgerRecordHash,
  GENESIS_HASH,
  LEDGER_RECORD_PREFIX,
  type LedgerRecord,
  type ChainHead,
  type ChainBreak,
  type ChainVerification,
} from './chain.js';
