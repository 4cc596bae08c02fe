import { migrateLedger, type MigrateLedgerOptions, type MigrateLedgerResult } from './ledger-migrations.js';
import { ledgerError } from './postgres-ledger-error.js';
import { loadPg } from './pg-module.js';

/** Options for {@link migratePostgresLedger}. */
export interface MigratePostgresLedgerOptions extends MigrateLedgerOptions {
  /** Connection timeout (default 10 000 ms). No statement timeout: an index build may take long. */
  readonly connectTimeoutMs?: number;
}

/**
 * Connect to the PostgreSQL ledger at `url`, bring its schema up to date ({@link migrateLedger}:
 * one transaction under an advisory lock, idempotent) and disconnect.
 * @param url `postgres://` / `postgresql://` connection URL (never echoed with its password)
 * @param options connection and lock timeouts
 * @returns the versions applied and the schema version
 * @throws TypeError for a URL that is not `postgres://`; {@link LedgerError} `ledger_unavailable`
 *   (unreachable, timed out) or `ledger_error` (refused: `details.sqlstate`), message redacted
 * @example
 * const { version, applied } = await migratePostgresLedger('postgresql://trustplane@db.internal/audit')
 */
export async function migratePostgresLedger(
  url: string,
  options: MigratePostgresLedgerOptions = {},
): Promise<MigrateLedgerResult> {
  if (typeof url !== 'string' || !/^postgres(?:ql)?:\/\//i.test(url)) {
    throw new TypeError('url must be a postgres:// or postgresql:// URL');
  }
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  if (!Number.isSafeInteger(connectTimeoutMs) || connectTimeoutMs < 1) {
    throw new RangeError('connectTimeoutMs must be a positive integer');
  }
  const pool = new (loadPg().Pool)({
    connectionString: url,
    max: 1,
    connectionTimeoutMillis: connectTimeoutMs,
  });
  // An idle connection dropped by the server must not become an unhandled 'error' event.
  pool.on('error', () => undefined);
  try {
    return await migrateLedger(
      pool,
      options.lockTimeoutMs !== undefined ? { lockTimeoutMs: options.lockTimeoutMs } : {},
    );
  } catch (e) {
    throw ledgerError('cannot migrate the ledger', e, url);
  } finally {
    await pool.end().catch(() => undefined);
  }
}
