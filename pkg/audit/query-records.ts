import { UnreadableRecord } from './unreadable-record.js';

/** Filter of {@link queryRecords}: every given member must match (exact match on strings). */
export interface LedgerQuery {
  readonly sub?: string;
  readonly iss?: string;
  readonly jti?: string;
  readonly routeId?: string;
  readonly decision?: 'allow' | 'deny';
  readonly reason?: string;
  readonly eventType?: string;
  /** Records at or after this time (inclusive). */
  readonly since?: Date;
  /** Records before this time (exclusive). */
  readonly until?: Date;
  /** Stop after this many matches (a positive integer). */
  readonly limit?: number;
}

/** A record as read back from a ledger: an object, still untrusted (run a verify for integrity). */
export type QueriedRecord = Readonly<Record<string, unknown>>;

/** Options for {@link queryRecords}. */
export interface QueryRecordsOptions {
  /** Called for each input that is not a JSON object (it is skipped), with its 1-based position. */
  readonly onSkipped?: (position: number, problem: string) => void;
}

const STRING_FILTERS = [
  ['sub', 'sub'],
  ['iss', 'iss'],
  ['jti', 'jti'],
  ['routeId', 'route_id'],
  ['decision', 'decision'],
  ['reason', 'reason'],
  ['eventType', 'event_type'],
] as const satisfies readonly (readonly [keyof LedgerQuery, string])[];

/**
 * Select ledger records (audit events with chain fields) by subject, issuer, jti, route, decision,
 * reason, event type and time, streaming: only matches are kept, and reading stops at `limit`.
 * Inputs that are not JSON objects are skipped (reported through `onSkipped`). This does not check
 * the chain: run {@link verifyLedgerStream} for integrity.
 * @param records records in ledger order (e.g. `readLedgerFile(path)`)
 * @param filter the conditions; an empty filter matches every record
 * @param options `onSkipped` callback
 * @returns the matching records, in input order
 * @throws RangeError (eagerly) for a `limit` that is not a positive integer or an invalid date
 * @example
 * for await (const r of queryRecords(readLedgerFile(path), { sub: 'spiffe://example.local/orders', decision: 'deny' })) console.log(r.reason)
 */
export function queryRecords(
  records: AsyncIterable<unknown> | Iterable<unknown>,
  filter: LedgerQuery,
  options: QueryRecordsOptions = {},
): AsyncIterable<QueriedRecord> {
  if (filter.limit !== undefined && (!Number.isSafeInteger(filter.limit) || filter.limit < 1)) {
    throw new RangeError('limit must be a positive integer');
  }
  const since = filter.since?.getTime();
  const until = filter.until?.getTime();
  if ((since !== undefined && Number.isNaN(since)) || (until !== undefined && Number.isNaN(until))) {
    throw new RangeError('since and until must be valid dates');
  }
  const wanted = STRING_FILTERS.flatMap(([option, field]) => {
    const value = filter[option];
    return value === undefined ? [] : [[field, value] as const];
  });
  const limit = filter.limit ?? Infinity;
  return (async function* () {
    let position = 0;
    let found = 0;
    for await (const raw of records) {
      position++;
      if (raw instanceof UnreadableRecord || typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        options.onSkipped?.(position, raw instanceof UnreadableRecord ? raw.problem : 'not a JSON object');
        continue;
      }
      const record = raw as QueriedRecord;
      if (!wanted.every(([field, value]) => record[field] === value)) continue;
      if (since !== undefined || until !== undefined) {
        const time = typeof record.time === 'string' ? Date.parse(record.time) : NaN;
        if (Number.isNaN(time)) continue;
        if (since !== undefined && time < since) continue;
        if (until !== undefined && time >= until) continue;
      }
      yield record;
      if (++found >= limit) return;
    }
  })();
}
