import type { AuditSink } from '../audit/event.js';
import { FileLedgerSink, StdoutLedgerSink } from '../audit/file-ledger.js';
import type { AdapterConfig } from './config.js';
import type { Logger } from './logger.js';
import type { AdapterMetrics } from './metrics.js';

const POSTGRES_URL = /^postgres(?:ql)?:\/\//;

/** True when `audit` names a PostgreSQL ledger. */
export function isPostgresLedger(audit: string): boolean {
  return POSTGRES_URL.test(audit);
}

/**
 * Open the ledger sink `config.audit` names: `stdout` (chained JSON lines; a new chain per start),
 * a file (chained, resumed across restarts, fsync for `audit: required`), or a PostgreSQL URL
 * (batched, buffered in memory and on disk while PostgreSQL is down).
 */
export async function openLedgerSink(
  config: AdapterConfig,
  deps: { log: Logger; metrics: AdapterMetrics; onError: (e: Error) => void },
): Promise<AuditSink> {
  const chainId = config.auditChainId ?? config.instance;
  if (config.audit === 'stdout') {
    // A stream cannot be read back: each start is a new chain, named by its start time.
    return new StdoutLedgerSink({ chainId: `${chainId}-${Date.now()}`, onError: deps.onError });
  }
  if (isPostgresLedger(config.audit)) {
    const { PostgresLedgerSink } = await import('../audit/postgres-ledger.js');
    return PostgresLedgerSink.open({
      url: config.audit,
      chainId,
      spillPath: config.auditSpill,
      onError: deps.onError,
      metrics: { bufferDepth: (n: number) => deps.metrics.auditBufferDepth.set(n) },
    });
  }
  return FileLedgerSink.open(config.audit, { chainId, onError: deps.onError });
}
