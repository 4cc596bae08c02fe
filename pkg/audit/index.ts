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
export {
  signReceipt,
  verifyReceipt,
  responseBodyDigest,
  ReceiptError,
  RECEIPT_ERROR_CODES,
  RECEIPT_VERSION,
  MAX_RECEIPT_LENGTH,
  receiptPayloadSchema,
  type ReceiptPayload,
  type ReceiptHeader,
  type ReceiptTrust,
  type ReceiptVerifyKey,
  type VerifiedReceipt,
  type ReceiptErrorCode,
} from './receipt.js';
export {
  FileLedgerSink,
  StdoutLedgerSink,
  readLedgerFile,
  MAX_LEDGER_LINE_BYTES,
  type FileLedgerSinkOptions,
  type LedgerFsyncMode,
  type StdoutLedgerSinkOptions,
  type ReadLedgerFileOptions,
} from './file-ledger.js';
export {
  verifyLedgerStream,
  queryRecords,
  formatTable,
  type LedgerQuery,
  type QueriedRecord,
} from './query.js';
export {
  PostgresLedgerSink,
  verifyPostgresLedger,
  queryPostgresLedger,
  AuditUnavailableError,
  LedgerError,
  redactConnectionString,
  type PostgresLedgerSinkOptions,
  type PostgresLedgerVerification,
} from './postgres-ledger.js';
export { migrateLedger, LEDGER_TABLE, type MigrateLedgerResult } from './ledger-migrations.js';
export { openLedger, isPostgresLedger, type LedgerSpec } from './open-ledger.js';
