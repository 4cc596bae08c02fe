import type { LedgerEntry } from './chain.js';

/** Text columns copied from the record member of the same name. */
const TEXT_COLUMNS = [
  'event_type',
  'component',
  'instance',
  'decision',
  'reason',
  'route_id',
  'api_id',
  'audience',
  'iss',
  'sub',
  'trust_domain',
  'jti',
  'key_binding',
  'transcript_sha256',
  'receipt',
] as const;

/** Every column, in insert order. */
export const COLUMNS = [
  'chain_id',
  'seq',
  'prev_hash',
  'record_hash',
  'time',
  'status',
  ...TEXT_COLUMNS,
  'record',
];
/** The columns as an INSERT column list (`time` quoted). */
export const COLUMN_LIST = COLUMNS.map((c) => (c === 'time' ? '"time"' : c)).join(', ');
/** The columns as a SELECT list (`seq` as text: a bigint exceeds a JS number). */
export const SELECT_LIST = COLUMN_LIST.replace(/\bseq\b/, 'seq::text AS seq');

/** Most rows per INSERT: PostgreSQL takes at most 65535 parameters per statement. */
export const MAX_LEDGER_BATCH = Math.floor(65_535 / COLUMNS.length);

/** `time` column value: the record's time when it is a date PostgreSQL can hold, else null. */
function timeColumn(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return null;
  const date = new Date(ms);
  const year = date.getUTCFullYear();
  return year >= 1 && year <= 9999 ? date.toISOString() : null;
}

function statusColumn(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && Math.abs(value) <= 0x7fffffff ? value : null;
}

function textColumn(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** The row values of a record, in {@link COLUMNS} order (`record` as JSON text). */
export function rowValues(record: LedgerEntry): unknown[] {
  const r = record as unknown as Readonly<Record<string, unknown>>;
  return [
    record.chain_id,
    String(record.seq),
    record.prev_hash,
    record.record_hash,
    timeColumn(r.time),
    statusColumn(r.status),
    ...TEXT_COLUMNS.map((c) => textColumn(r[c])),
    JSON.stringify(record),
  ];
}

/** A row as read back (`seq` as text, `time` as a Date). */
export interface LedgerRow {
  readonly chain_id: string;
  readonly seq: string;
  readonly prev_hash: string;
  readonly record_hash: string;
  readonly time: Date | null;
  readonly status: number | null;
  readonly record: unknown;
  readonly [column: string]: unknown;
}

/** The first column of `row` that differs from what `record` says it must hold, if any. */
export function columnMismatch(
  row: LedgerRow,
  record: Readonly<Record<string, unknown>>,
): string | undefined {
  if (row.chain_id !== record.chain_id) return 'chain_id';
  if (typeof record.seq !== 'number' || row.seq !== String(record.seq)) return 'seq';
  if (row.prev_hash !== record.prev_hash) return 'prev_hash';
  if (row.record_hash !== record.record_hash) return 'record_hash';
  const time = timeColumn(record.time);
  if (
    (row.time === null) !== (time === null) ||
    (time !== null && row.time?.getTime() !== Date.parse(time))
  ) {
    return 'time';
  }
  if (row.status !== statusColumn(record.status)) return 'status';
  for (const column of TEXT_COLUMNS) {
    if (row[column] !== textColumn(record[column])) return column;
  }
  return undefined;
}

// With the `u` flag a surrogate range only matches unpaired surrogates.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const LONE_SURROGATES = /[\uD800-\uDFFF]/gu;

function storableString(value: string): string {
  if (!value.includes('\u0000') && !LONE_SURROGATE.test(value)) return value;
  return value.replaceAll('\u0000', '\uFFFD').replace(LONE_SURROGATES, '\uFFFD');
}

/**
 * The event as PostgreSQL can store it without changing it: `text` and `jsonb` refuse U+0000 and
 * unpaired surrogates (and the JCS hash refuses the latter), so both become U+FFFD before the
 * record is chained. Values are only copied when something changes.
 */
export function storable(value: unknown): unknown {
  if (typeof value === 'string') return storableString(value);
  if (Array.isArray(value)) {
    const items = value.map(storable);
    return items.some((item, i) => item !== value[i]) ? items : value;
  }
  if (typeof value === 'object' && value !== null) {
    let changed = false;
    const out: Record<string, unknown> = {};
    for (const [key, member] of Object.entries(value)) {
      const k = storableString(key);
      const v = storable(member);
      if (k !== key || v !== member) changed = true;
      out[k] = v;
    }
    return changed ? out : value;
  }
  return value;
}
