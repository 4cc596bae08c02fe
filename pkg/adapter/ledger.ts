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
 * one writer. A PostgreSQL ledger always has a spill file (`auditSpill`, by default
 * `./trustplane-state/audit-spill.jsonl`, next to the replay journal): the adapter never runs the
 * configuration whose crash loses a whole outage (docs/ledger.md, loss windows). Spilled records
 * set aside at open (a fork loser's) count in `trustplane_audit_conflicts_total`.
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
    conflicts: (n) => deps.metrics.auditConflicts.inc(n),
  });
}
