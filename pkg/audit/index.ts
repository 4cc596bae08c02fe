export {
  AUDIT_EVENT_SCHEMA,
  auditEventSchema,
  auditReason,
  type AuditEvent,
  type AuditComponent,
} from './event.js';
export {
  auditEventFromDecision,
  type AuditEventOptions,
  type AuditRequestInfo,
  type AuditMcpCall,
  type AuditDecision,
  type AuditAllowDecision,
  type AuditDenyDecision,
} from './event-from-decision.js';
export { MemoryAuditSink, type AuditSink } from './audit-sink.js';
export { StreamAuditSink, openFileAuditSink, type StreamAuditSinkOptions } from './stream-sink.js';
export {
  HashChain,
  verifyChain,
  ledgerRecordHash,
  GENESIS_HASH,
  LEDGER_RECORD_PREFIX,
  type LedgerRecord,
  type LedgerGapRecord,
  type LedgerEntry,
  type LedgerChainFields,
  type ChainHead,
  type ChainBreak,
  type ChainVerification,
} from './chain.js';
export {
  LEDGER_GAP_SCHEMA,
  LEDGER_GAP_EVENT_TYPE,
  MAX_LISTED_GAPS,
  ledgerGapEvent,
  chainGapOf,
  type LedgerGapEvent,
  type LedgerGapInput,
  type LedgerGapReason,
  type ChainGap,
  type ChainGaps,
} from './ledger-gap.js';
export { signReceipt } from './sign-receipt.js';
export {
  verifyReceipt,
  type ReceiptTrust,
  type ReceiptVerifyKey,
  type VerifyReceiptOptions,
  type VerifiedReceipt,
} from './verify-receipt.js';
export { responseBodyDigest } from './response-body-digest.js';
export { ReceiptError, RECEIPT_ERROR_CODES, type ReceiptErrorCode } from './receipt-error.js';
export {
  RECEIPT_VERSION,
  MAX_RECEIPT_LENGTH,
  receiptPayloadSchema,
  type ReceiptPayload,
  type ReceiptHeader,
} from './receipt-schema.js';
export { FileLedgerSink, type FileLedgerSinkOptions, type LedgerFsyncMode } from './file-ledger-sink.js';
export { StdoutLedgerSink, type StdoutLedgerSinkOptions } from './stdout-ledger-sink.js';
export { readLedgerFile, MAX_LEDGER_LINE_BYTES, type ReadLedgerFileOptions } from './read-ledger-file.js';
export { verifyLedgerStream } from './verify-ledger-stream.js';
export { queryRecords, type LedgerQuery, type QueriedRecord } from './query-records.js';
export { formatTable } from './format-table.js';
export {
  PostgresLedgerSink,
  DEFAULT_MAX_BUFFERED_EVENTS,
  DEFAULT_SPILL_AFTER_MS,
  type PostgresLedgerSinkOptions,
  type PostgresLedgerMetrics,
} from './postgres-ledger-sink.js';
export { verifyPostgresLedger, type PostgresLedgerVerification } from './postgres-ledger-verify.js';
export { queryPostgresLedger } from './postgres-ledger-query.js';
export { AuditUnavailableError } from './audit-unavailable-error.js';
export { LedgerError, type LedgerErrorCode } from './ledger-error.js';
export { redactConnectionString } from './connection-string.js';
export {
  migrateLedger,
  LEDGER_TABLE,
  type MigrateLedgerOptions,
  type MigrateLedgerResult,
} from './ledger-migrations.js';
export { migratePostgresLedger, type MigratePostgresLedgerOptions } from './postgres-ledger-migrate.js';
export { openLedger, isPostgresLedger, type LedgerSpec } from './open-ledger.js';
