import { verifyChain, type ChainHead, type ChainVerification } from './chain.js';

/**
 * What a ledger reader yields in place of an input it could not read as JSON (a line that is not
 * JSON, or longer than the line bound). It takes the record's position, so {@link verifyLedgerStream}
 * reports it there as `malformed_record` (and {@link verifyChain} too, as a record without chain
 * fields); {@link queryRecords} skips it. It is a class so that no JSON content can forge one.
 */
export class UnreadableRecord {
  /**
   * @param problem why the input was unreadable (no content of the input itself)
   */
  constructor(readonly problem: string) {}
}

/** Records handed to {@link verifyChain} at a time by {@link verifyLedgerStream}. */
const VERIFY_BATCH = 1024;

/**
 * {@link verifyChain} over a stream of records (a ledger file read line by line, database rows),
 * in bounded memory. The result is the one `verifyChain` gives for the same records in one array:
 * the first broken link with its 1-based position, or the verified head.
 * @param records records in ledger order (`unknown`: they are untrusted)
 * @param from a verified checkpoint to continue from (default: the chain starts at genesis)
 * @returns the verification; `firstBreak.problem` is `malformed_record` for an {@link UnreadableRecord}
 * @example
 * const result = await verifyLedgerStream(readLedgerFile('/var/log/trustplane/ledger.jsonl'))
 */
export async function verifyLedgerStream(
  records: AsyncIterable<unknown> | Iterable<unknown>,
  from?: ChainHead,
): Promise<ChainVerification> {
  let head = from;
  let offset = 0;
  let batch: unknown[] = [];
  const check = (): ChainVerification | undefined => {
    const result = verifyChain(batch, head);
    if (!result.ok && result.firstBreak !== undefined) {
      return {
        ok: false,
        count: offset + result.count,
        head: result.head,
        firstBreak: { ...result.firstBreak, position: offset + result.firstBreak.position },
      };
    }
    head = result.head;
    offset += batch.length;
    batch = [];
    return undefined;
  };
  for await (const raw of records) {
    if (raw instanceof UnreadableRecord) {
      const broken = check();
      if (broken) return broken;
      const position = offset + 1;
      return {
        ok: false,
        count: position,
        head,
        firstBreak: { position, seq: undefined, problem: 'malformed_record', message: raw.problem },
      };
    }
    batch.push(raw);
    if (batch.length >= VERIFY_BATCH) {
      const broken = check();
      if (broken) return broken;
    }
  }
  return check() ?? { ok: true, count: offset, head };
}

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

/** Options for {@link formatTable}. */
export interface FormatTableOptions {
  /** Widest a column gets; longer cells are cut with `…` (default 48). */
  readonly maxWidth?: number;
}

/**
 * A plain fixed-width text table (a header line, then one line per record; two spaces between
 * columns; no colours). Cells are the record's members as text (`-` when absent); control
 * and bidi-override characters are shown as `?`, so a hostile record cannot send terminal escape sequences.
 * @param records the rows
 * @param columns member names, in order; they are also the header
 * @param options `maxWidth`
 * @returns the table, each line ending with a newline
 * @throws RangeError for an empty column list or a `maxWidth` below 4
 * @example
 * process.stdout.write(formatTable(rows, ['time', 'decision', 'status', 'reason']))
 */
export function formatTable(
  records: readonly QueriedRecord[],
  columns: readonly string[],
  options: FormatTableOptions = {},
): string {
  const maxWidth = options.maxWidth ?? 48;
  if (columns.length === 0) throw new RangeError('formatTable needs at least one column');
  if (!Number.isSafeInteger(maxWidth) || maxWidth < 4)
    throw new RangeError('maxWidth must be an integer >= 4');
  const rows = [
    [...columns],
    ...records.map((record) => columns.map((column) => cellText(record[column], maxWidth))),
  ];
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => [...(row[i] ?? '')].length)));
  return rows
    .map(
      (row) =>
        `${row
          .map((cell, i) => cell + ' '.repeat((widths[i] ?? 0) - [...cell].length))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}

function cellText(value: unknown, maxWidth: number): string {
  let text: string;
  if (value === undefined || value === null || value === '') text = '-';
  else if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else text = JSON.stringify(value) ?? '-';
  // C0, DEL and C1 controls (ESC, CSI …) would let a record drive the terminal; bidi overrides and
  // line separators would let it disguise other cells.
  // eslint-disable-next-line no-control-regex
  text = text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g, '?');
  const chars = [...text];
  return chars.length > maxWidth ? `${chars.slice(0, maxWidth - 1).join('')}…` : text;
}
