import type { AuditSink } from '../audit/audit-sink.js';
import { openLedger } from '../audit/open-ledger.js';
import type { AdapterConfig } from './config.js';
import type { Logger } from '../runtime/logger.js';
import type { AdapterMetrics } from '../runtime/metrics.js';

export { isPostgresLedger } from '../audit/open-ledger.js';

/** Environment variable carrying a cluster worker's stable slot (set by the primary). */
export const WORKER_SLOT_ENV = 'TRUSTPLANE_WORKER_SLOT';

/** `-worker-<slot>` in a cluster worker (each worker writes its own chain), '' otherwise. */
function workerSuffix(): string {
  const slot = process.env[WORKER_SLOT_ENV];
  return slot !== undefined && /^\d{1,4}$/.test(slot) ? `-worker-${slot}` : '';
}

/**
 * Open the adapter's ledger (`config.audit`: stdout, a file or PostgreSQL; see `openLedger`). In a
 * cluster worker the chain id, file and spill file get a `-worker-<slot>` suffix: every chain has
 * one writer.
 */
export async function openLedgerSink(
  config: AdapterConfig,
  deps: { log: Logger; metrics: AdapterMetrics; onError: (e: Error) => void },
): Promise<AuditSink> {
  const suffix = workerSuffix();
  const isFile = config.audit !== 'stdout' && !/^postgres(?:ql)?:\/\//.test(config.audit);
  return openLedger({
    audit: isFile ? `${config.audit}${suffix}` : config.audit,
    chainId: `${config.auditChainId ?? config.instance}${suffix}`,
    spillPath: `${config.auditSpill}${suffix}`,
    onError: deps.onError,
    bufferDepth: (n) => deps.metrics.auditBufferDepth.set(n),
  });
}
