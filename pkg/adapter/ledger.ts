import type { AuditSink } from '../audit/event.js';
import { FileLedgerSink, StdoutLedgerSink } from '../audit/file-ledger.js';
import type { AdapterConfig } from './config.js';
import type { Logger } from './logger.js';
import type { AdapterMetrics } from './metrics.js';

const POSTGRES_URL = /^postgres(?:ql)?:\/\//;

/** Environment variable carrying a cluster worker's stable slot (set by the primary). */
export const WORKER_SLOT_ENV = 'TRUSTPLANE_WORKER_SLOT';

/** `-worker-<slot>` in a cluster worker (each worker writes its own chain), '' otherwise. */
function workerSuffix(): string {
  const slot = process.env[WORKER_SLOT_ENV];
  return slot !== undefined && /^\d{1,4}$/.test(slot) ? `-worker-${slot}` : '';
}

/** True when `audit` names a PostgreSQL ledger. */
export function isPostgresLedger(audit: string): boolean {
  return POSTGRES_URL.test(audit);
}

/**
 * Open the ledger sink `config.audit` names: `stdout` (chained JSON lines; a new chain per start),
 * a file (chained, resumed across restarts, fsync for `audit: required`), or a PostgreSQL URL
 * (batched, buffered in memory and on disk while PostgreSQL is down). In a cluster worker the
 * chain id, file and spill file get a `-worker-<slot>` suffix: every chain has one writer.
 */
export async function openLedgerSink(
  config: AdapterConfig,
  deps: { log: Logger; metrics: AdapterMetrics; onError: (e: Error) => void },
): Promise<AuditSink> {
  // One writer per chain: cluster workers each get their own chain (and file, and spill file).
  const suffix = workerSuffix();
  const chainId = `${config.auditChainId ?? config.instance}${suffix}`;
  if (config.audit === 'stdout') {
    // A stream cannot be read back: each start is a new chain, named by its start time.
    return new StdoutLedgerSink({ chainId: `${chainId}-${Date.now()}`, onError: deps.onError });
  }
  if (isPostgresLedger(config.audit)) {
    const { PostgresLedgerSink } = await import('../audit/postgres-ledger.js');
    return PostgresLedgerSink.open({
      url: config.audit,
      chainId,
      spillPath: `${config.auditSpill}${suffix}`,
      onError: deps.onError,
      metrics: { bufferDepth: (n: number) => deps.metrics.auditBufferDepth.set(n) },
    });
  }
  return FileLedgerSink.open(`${config.audit}${suffix}`, { chainId, onError: deps.onError });
}
