import type pg from 'pg';
import type { ClientBase } from 'pg';
import { ledgerError } from './postgres-ledger-error.js';
import type { LedgerRow } from './postgres-ledger-rows.js';
import { loadPg } from './pg-module.js';

/** An integer option from 1 to `max` (default `fallback`); RangeError otherwise. */
export function positiveInt(name: string, value: number | undefined, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) {
    throw new RangeError(`${name} must be an integer from 1 to ${max}`);
  }
  return v;
}

/** The pg pool/client configuration of the ledger: timeouts on both sides, keep-alive, a name. */
export function poolConfig(url: string, connectTimeoutMs: number, statementTimeoutMs: number): pg.PoolConfig {
  return {
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 1000,
    application_name: 'trustplane-ledger',
    keepAlive: true,
  };
}

/** Options for {@link verifyPostgresLedger} and {@link queryPostgresLedger}. */
export interface PostgresLedgerReadOptions {
  /** Rows fetched per round trip (default 1000). */
  readonly pageSize?: number;
  /** Connection timeout (default 5000 ms). */
  readonly connectTimeoutMs?: number;
  /** Timeout of each statement (default 60 000 ms). */
  readonly statementTimeoutMs?: number;
}

/** Run `run` on a fresh client; any failure becomes a {@link LedgerError} (redacted). */
export async function withClient<T>(
  url: string,
  options: PostgresLedgerReadOptions,
  what: string,
  run: (client: ClientBase) => Promise<T>,
): Promise<T> {
  const connectTimeoutMs = positiveInt('connectTimeoutMs', options.connectTimeoutMs, 5000, 600_000);
  const statementTimeoutMs = positiveInt('statementTimeoutMs', options.statementTimeoutMs, 60_000, 3_600_000);
  const client = new (loadPg().Client)(poolConfig(url, connectTimeoutMs, statementTimeoutMs));
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await run(client);
  } catch (e) {
    throw ledgerError(what, e, url);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Streams rows through a server-side cursor, inside a read-only repeatable-read transaction. */
export async function* cursorRows(
  client: ClientBase,
  sql: string,
  params: readonly unknown[],
  pageSize: number,
): AsyncGenerator<LedgerRow> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await client.query(`DECLARE trustplane_ledger_cursor NO SCROLL CURSOR FOR ${sql}`, [...params]);
  for (;;) {
    const page = await client.query<LedgerRow>(`FETCH FORWARD ${pageSize} FROM trustplane_ledger_cursor`);
    yield* page.rows;
    if (page.rows.length < pageSize) break;
  }
  await client.query('COMMIT');
}
