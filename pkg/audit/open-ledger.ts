import type { AuditSink } from './audit-sink.js';
import { FileLedgerSink } from './file-ledger-sink.js';
import { StdoutLedgerSink } from './stdout-ledger-sink.js';

const POSTGRES_URL = /^postgres(?:ql)?:\/\//;

/** True when an audit destination names a PostgreSQL ledger. */
export function isPostgresLedger(audit: string): boolean {
  return POSTGRES_URL.test(audit);
}

/** Where a component's ledger goes. */
export interface LedgerSpec {
  /** `stdout`, a file path, or a `postgres://` / `postgresql://` URL. */
  readonly audit: string;
  /** The chain this sink writes (one writer per chain). */
  readonly chainId: string;
  /** PostgreSQL: the disk buffer used while PostgreSQL is unreachable. */
  readonly spillPath?: string;
  readonly onError: (error: Error) => void;
  /** PostgreSQL: told the buffer depth as it changes. */
  readonly bufferDepth?: (depth: number) => void;
  /** PostgreSQL: told how many spilled records conflicting with the chain were set aside at open. */
  readonly conflicts?: (count: number) => void;
}

/**
 * Open the hash-chained ledger sink an audit destination names: `stdout` (chained JSON lines; a
 * stream cannot be read back, so each start is a new chain named `<chainId>-<start ms>`), a file
 * (chained, resumed across restarts, `writeDurable` = fdatasync), or PostgreSQL (batched; records
 * go to the spill file from the moment PostgreSQL fails or is slow, `writeDurable` = commit).
 * @example
 * const sink = await openLedger({ audit: 'postgresql://ledger@db/audit', chainId: 'edge-1', onError })
 */
export async function openLedger(spec: LedgerSpec): Promise<AuditSink> {
  if (spec.audit === 'stdout') {
    return new StdoutLedgerSink({ chainId: `${spec.chainId}-${Date.now()}`, onError: spec.onError });
  }
  if (isPostgresLedger(spec.audit)) {
    const { PostgresLedgerSink } = await import('./postgres-ledger-sink.js');
    return PostgresLedgerSink.open({
      url: spec.audit,
      chainId: spec.chainId,
      ...(spec.spillPath !== undefined ? { spillPath: spec.spillPath } : {}),
      onError: spec.onError,
      metrics: {
        ...(spec.bufferDepth ? { bufferDepth: spec.bufferDepth } : {}),
        ...(spec.conflicts ? { conflicts: spec.conflicts } : {}),
      },
    });
  }
  return FileLedgerSink.open(spec.audit, { chainId: spec.chainId, onError: spec.onError });
}
