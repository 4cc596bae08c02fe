import { LEDGER_TABLE } from './ledger-migrations.js';
import {
  cursorRows,
  poolConfig,
  positiveInt,
  type PostgresLedgerReadOptions,
} from './postgres-ledger-connection.js';
import { ledgerError } from './postgres-ledger-error.js';
import type { LedgerRow } from './postgres-ledger-rows.js';
import type { LedgerQuery } from './query-records.js';
import { loadPg } from './pg-module.js';

/**
 * Filter of {@link queryPostgresLedger} (the shape `trustplane audit query` uses for files): every
 * given member must match exactly.
 */
export interface PostgresLedgerQuery extends LedgerQuery {
  /** Only this chain. */
  readonly chainId?: string;
}

const QUERY_COLUMNS = [
  ['chainId', 'chain_id'],
  ['sub', 'sub'],
  ['iss', 'iss'],
  ['jti', 'jti'],
  ['routeId', 'route_id'],
  ['decision', 'decision'],
  ['reason', 'reason'],
  ['eventType', 'event_type'],
] as const satisfies readonly (readonly [keyof PostgresLedgerQuery, string])[];

/**
 * Select ledger records from PostgreSQL by subject, issuer, jti, route, decision, reason, event
 * type and time window, oldest first, streamed through a cursor. The filters map to indexed
 * columns (sub + time, jti, route_id + time, time). Records are returned as stored (`record`),
 * untrusted: this does not check the chain (run {@link verifyPostgresLedger}).
 * @param url connection URL
 * @param filter the conditions; an empty filter matches every record
 * @param options page size and timeouts
 * @returns the matching records in (time, chain_id, seq) order
 * @throws RangeError (eagerly) for a bad `limit` or date; {@link LedgerError} (`ledger_unavailable`,
 *   `ledger_error`) while reading
 * @example
 * for await (const r of queryPostgresLedger(url, { sub: 'spiffe://example.local/orders', decision: 'deny' })) console.log(r.reason)
 */
export function queryPostgresLedger(
  url: string,
  filter: PostgresLedgerQuery,
  options: PostgresLedgerReadOptions = {},
): AsyncIterable<Readonly<Record<string, unknown>>> {
  if (filter.limit !== undefined && (!Number.isSafeInteger(filter.limit) || filter.limit < 1)) {
    throw new RangeError('limit must be a positive integer');
  }
  for (const key of ['since', 'until'] as const) {
    const value = filter[key];
    if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
      throw new RangeError('since and until must be valid dates');
    }
  }
  const conditions: string[] = [];
  const params: unknown[] = [];
  for (const [option, column] of QUERY_COLUMNS) {
    const value = filter[option];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new TypeError(`${option} must be a string`);
    params.push(value);
    conditions.push(`${column} = $${params.length}`);
  }
  if (filter.since !== undefined) {
    params.push(filter.since.toISOString());
    conditions.push(`"time" >= $${params.length}`);
  }
  if (filter.until !== undefined) {
    params.push(filter.until.toISOString());
    conditions.push(`"time" < $${params.length}`);
  }
  const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
  const limit = filter.limit !== undefined ? ` LIMIT ${filter.limit}` : '';
  const sql = `SELECT record FROM ${LEDGER_TABLE} ${where} ORDER BY "time", chain_id, ${LEDGER_TABLE}.seq${limit}`;
  const pageSize = positiveInt('pageSize', options.pageSize, 1000, 100_000);
  const config = poolConfig(
    url,
    positiveInt('connectTimeoutMs', options.connectTimeoutMs, 5000, 600_000),
    positiveInt('statementTimeoutMs', options.statementTimeoutMs, 60_000, 3_600_000),
  );

  return {
    [Symbol.asyncIterator]: () =>
      (async function* (): AsyncGenerator<Readonly<Record<string, unknown>>> {
        const client = new (loadPg().Client)(config);
        client.on('error', () => undefined);
        try {
          try {
            await client.connect();
          } catch (e) {
            throw ledgerError('cannot query the PostgreSQL audit ledger', e, url);
          }
          const rows = cursorRows(client, sql, params, pageSize);
          for (;;) {
            let next: IteratorResult<LedgerRow>;
            try {
              next = await rows.next();
            } catch (e) {
              throw ledgerError('cannot query the PostgreSQL audit ledger', e, url);
            }
            if (next.done) return;
            const record = next.value.record;
            if (typeof record === 'object' && record !== null && !Array.isArray(record)) {
              yield record as Readonly<Record<string, unknown>>;
            }
          }
        } finally {
          await client.end().catch(() => undefined);
        }
      })(),
  };
}
