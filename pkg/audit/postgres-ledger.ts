import pg from 'pg';
import type { ClientBase, PoolClient } from 'pg';
import { TrustplaneError } from '../authcore/errors.js';
import {
  GENESIS_HASH,
  HashChain,
  ledgerRecordHash,
  verifyChain,
  type ChainBreak,
  type ChainHead,
  type ChainVerification,
  type LedgerRecord,
} from './chain.js';
import type { LedgerQuery } from './query.js';
import type { AuditEvent, AuditSink } from './event.js';
import { LEDGER_TABLE, migrateLedger } from './ledger-migrations.js';
import { SpillBuffer } from './spill-buffer.js';

// ---------------------------------------------------------------------------------------------
// Errors and connection strings
// ---------------------------------------------------------------------------------------------

/**
 * A PostgreSQL ledger operation failed. The message names the database by its redacted URL (no
 * password) and never holds record content; `code` is the PostgreSQL SQLSTATE or Node error code
 * when there is one.
 */
export class LedgerError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = 'LedgerError';
    this.code = code;
  }
}

/**
 * A durable audit write could not be confirmed (PostgreSQL unreachable, the commit failed or did
 * not happen in time). Reason `audit_unavailable` (503): a route that requires a durable audit
 * write denies. The record stays queued and is written once PostgreSQL is back.
 */
export class AuditUnavailableError extends TrustplaneError {
  /**
   * True when the event was chained and stays queued (it will be written when PostgreSQL is
   * back): the caller must not record the decision a second time.
   */
  readonly queued: boolean;

  constructor(message: string, queued = false) {
    super('audit_unavailable', message);
    this.queued = queued;
  }
}

/**
 * A connection URL fit for messages: the password (in the userinfo or a `password` parameter) is
 * replaced by `***`; something that is not a URL is not echoed at all.
 * @param url a `postgres://` / `postgresql://` URL
 * @returns the URL without its password
 * @example
 * redactConnectionString('postgresql://app:s3cret@db:5432/ledger') // 'postgresql://app:***@db:5432/ledger'
 */
export function redactConnectionString(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '<connection string>';
  }
  if (parsed.password !== '') parsed.password = '***';
  for (const key of [...parsed.searchParams.keys()]) {
    if (/pass/i.test(key)) parsed.searchParams.set(key, '***');
  }
  return parsed.toString();
}

/** The secrets a message must not repeat: the raw URL and its password (raw and decoded). */
function secretsOf(url: string): string[] {
  const secrets = [url];
  try {
    const parsed = new URL(url);
    const values = [
      parsed.password,
      ...[...parsed.searchParams].filter(([k]) => /pass/i.test(k)).map(([, v]) => v),
    ];
    for (const value of values) {
      if (value === '') continue;
      secrets.push(value);
      try {
        secrets.push(decodeURIComponent(value));
      } catch {
        // not percent-encoded
      }
    }
  } catch {
    // not a URL: the whole string is the secret
  }
  return secrets.filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    return error.code;
  }
  return undefined;
}

/** Wrap any failure as a {@link LedgerError} naming the redacted database, with secrets scrubbed. */
function ledgerError(what: string, error: unknown, url: string): LedgerError {
  if (error instanceof LedgerError) return error;
  let detail = error instanceof Error ? error.message : String(error);
  for (const secret of secretsOf(url)) detail = detail.split(secret).join('***');
  return new LedgerError(`${what} (${redactConnectionString(url)}): ${detail}`, errorCode(error));
}

// ---------------------------------------------------------------------------------------------
// Records and rows
// ---------------------------------------------------------------------------------------------

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
const COLUMNS = ['chain_id', 'seq', 'prev_hash', 'record_hash', 'time', 'status', ...TEXT_COLUMNS, 'record'];
const COLUMN_LIST = COLUMNS.map((c) => (c === 'time' ? '"time"' : c)).join(', ');
const SELECT_LIST = COLUMN_LIST.replace(/\bseq\b/, 'seq::text AS seq');

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
function rowValues(record: LedgerRecord): unknown[] {
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
interface LedgerRow {
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
function columnMismatch(row: LedgerRow, record: Readonly<Record<string, unknown>>): string | undefined {
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
function storable(value: unknown): unknown {
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

// ---------------------------------------------------------------------------------------------
// The sink
// ---------------------------------------------------------------------------------------------

/** Where the sink reports its buffer depth (e.g. a prom-client Gauge's `set`). */
export interface PostgresLedgerMetrics {
  /** Records chained but not yet committed (memory and spill file), after every change. */
  readonly bufferDepth?: (depth: number) => void;
}

/** Options for {@link PostgresLedgerSink.open}. */
export interface PostgresLedgerSinkOptions {
  /** `postgres://` / `postgresql://` connection URL (never echoed with its password). */
  readonly url: string;
  /** This sink's chain (one writer per chain: e.g. the adapter instance name). */
  readonly chainId: string;
  /** Most records per INSERT/transaction (default 200, at most {@link MAX_LEDGER_BATCH}). */
  readonly batchSize?: number;
  /** How long a partial batch waits for more records (default 50 ms). */
  readonly flushIntervalMs?: number;
  /** Records kept in memory while uncommitted (default 10 000); beyond, they go to `spillPath`. */
  readonly maxBufferedEvents?: number;
  /**
   * Disk spill file for records beyond `maxBufferedEvents` (fsync'd JSON lines, replayed after a
   * restart). Without it, events beyond the memory bound are dropped (and reported) unchained.
   */
  readonly spillPath?: string;
  /** How long `writeDurable` waits for its commit (default 2000 ms). */
  readonly durableTimeoutMs?: number;
  /** How long `flush` (and `close`) wait for everything buffered to be committed (default 10 000 ms). */
  readonly flushTimeoutMs?: number;
  /** Longest wait between retries while PostgreSQL fails (default 1000 ms; the first is 50 ms). */
  readonly maxRetryDelayMs?: number;
  /** Connection timeout (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /** Statement timeout, server and client side (default 10 000 ms). */
  readonly statementTimeoutMs?: number;
  /** Apply the schema migrations at open (default true). */
  readonly migrate?: boolean;
  /** Failures (PostgreSQL unreachable, a dropped event, a spill write error). Never throws back. */
  readonly onError?: (error: Error) => void;
  readonly metrics?: PostgresLedgerMetrics;
}

interface DurableWaiter {
  readonly seq: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
  done: boolean;
}

interface FlushWaiter {
  readonly target: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
  done: boolean;
}

type WaitMode = 'idle' | 'coalesce' | 'backoff';

const FIRST_RETRY_MS = 50;

function positiveInt(name: string, value: number | undefined, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) {
    throw new RangeError(`${name} must be an integer from 1 to ${max}`);
  }
  return v;
}

function poolConfig(url: string, connectTimeoutMs: number, statementTimeoutMs: number): pg.PoolConfig {
  return {
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 1000,
    application_name: 'trustplane-ledger',
    keepAlive: true,
  };
}

/**
 * The PostgreSQL audit ledger sink. Each event is chained the moment it is written (its `seq` and
 * hashes are fixed then, in write order), buffered, and committed by a background loop in batches:
 * one multi-row `INSERT … ON CONFLICT (chain_id, seq) DO NOTHING` per transaction, in seq order, so
 * a batch retried after an ambiguous failure (the connection dropped during COMMIT) is never
 * duplicated. `write` never waits. While PostgreSQL is unreachable the records wait in memory (up
 * to `maxBufferedEvents`), then in the fsync'd spill file, and the loop retries with bounded
 * backoff; when PostgreSQL is back everything is written in order, none lost, none duplicated.
 *
 * One writer per chain: two sinks with the same `chainId` would fork it (detected and reported,
 * and the sink stops committing until an operator intervenes).
 * @example
 * const sink = await PostgresLedgerSink.open({ url, chainId: 'adapter-1', spillPath: './state/audit-spill.jsonl' })
 * sink.write(event)                 // returns at once
 * await sink.writeDurable(event)    // resolves after the COMMIT that holds it; rejects audit_unavailable
 * await sink.close()
 */
export class PostgresLedgerSink implements AuditSink {
  readonly chainId: string;
  readonly #url: string;
  readonly #pool: pg.Pool;
  readonly #chain: HashChain;
  readonly #spill: SpillBuffer | undefined;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #maxBuffered: number;
  readonly #durableTimeoutMs: number;
  readonly #flushTimeoutMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #reportDepth: ((depth: number) => void) | undefined;

  /** Uncommitted records in order; the front may be in flight. */
  #memory: LedgerRecord[] = [];
  /** True from the first overflow until the spill file is drained: new records go there. */
  #spilling: boolean;
  /** The spill batch in flight (kept across retries; the front of the file does not change). */
  #spillBatch: LedgerRecord[] | undefined;
  #committedSeq: number;
  #durable: DurableWaiter[] = [];
  #flushes: FlushWaiter[] = [];
  #dropped = 0;
  #failing = false;
  #gapReported = 0;

  #waitMode: WaitMode | undefined;
  #wakeup: (() => void) | undefined;
  #urgent = false;
  #closing = false;
  #stopping = false;
  #closed: Promise<void> | undefined;
  readonly #loop: Promise<void>;
  readonly #insertSql = new Map<number, string>();

  private constructor(
    options: PostgresLedgerSinkOptions,
    pool: pg.Pool,
    head: ChainHead,
    committedSeq: number,
    spill: SpillBuffer | undefined,
  ) {
    this.chainId = options.chainId;
    this.#url = options.url;
    this.#pool = pool;
    this.#chain = new HashChain(head);
    this.#committedSeq = committedSeq;
    this.#spill = spill;
    this.#spilling = spill !== undefined && spill.size > 0;
    this.#batchSize = options.batchSize ?? 200;
    this.#flushIntervalMs = options.flushIntervalMs ?? 50;
    this.#maxBuffered = options.maxBufferedEvents ?? 10_000;
    this.#durableTimeoutMs = options.durableTimeoutMs ?? 2000;
    this.#flushTimeoutMs = options.flushTimeoutMs ?? 10_000;
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 1000;
    this.#onError = options.onError;
    this.#reportDepth = options.metrics?.bufferDepth;
    this.#report();
    this.#loop = this.#run();
  }

  /**
   * Connect, migrate the schema (unless `migrate: false`), and resume the chain: its head is the
   * last row of `chainId` in PostgreSQL, or the last record of the spill file when that is newer
   * (records spilled before a restart are replayed first, in order).
   * @param options connection, chain id, batching, buffering and timeouts
   * @returns the open sink
   * @throws TypeError/RangeError for bad options; {@link LedgerError} when PostgreSQL cannot be
   *   reached or migrated (the chain head cannot be known without it), or the spill file is
   *   damaged or in use
   * @example
   * const sink = await PostgresLedgerSink.open({ url: process.env.LEDGER_URL!, chainId: 'adapter-1' })
   */
  static async open(options: PostgresLedgerSinkOptions): Promise<PostgresLedgerSink> {
    if (typeof options.url !== 'string' || !/^postgres(?:ql)?:\/\//i.test(options.url)) {
      throw new TypeError('url must be a postgres:// or postgresql:// URL');
    }
    if (typeof options.chainId !== 'string' || options.chainId === '' || options.chainId.length > 256) {
      throw new TypeError('chainId must be a non-empty string of at most 256 characters');
    }
    positiveInt('batchSize', options.batchSize, 200, MAX_LEDGER_BATCH);
    positiveInt('flushIntervalMs', options.flushIntervalMs, 50, 60_000);
    positiveInt('maxBufferedEvents', options.maxBufferedEvents, 10_000, 10_000_000);
    positiveInt('durableTimeoutMs', options.durableTimeoutMs, 2000, 600_000);
    positiveInt('flushTimeoutMs', options.flushTimeoutMs, 10_000, 3_600_000);
    positiveInt('maxRetryDelayMs', options.maxRetryDelayMs, 1000, 600_000);
    const connectTimeoutMs = positiveInt('connectTimeoutMs', options.connectTimeoutMs, 2000, 600_000);
    const statementTimeoutMs = positiveInt(
      'statementTimeoutMs',
      options.statementTimeoutMs,
      10_000,
      3_600_000,
    );
    if (
      options.spillPath !== undefined &&
      (typeof options.spillPath !== 'string' || options.spillPath === '')
    ) {
      throw new TypeError('spillPath must be a non-empty path');
    }

    const pool = new pg.Pool({ ...poolConfig(options.url, connectTimeoutMs, statementTimeoutMs), max: 1 });
    // An idle connection dropped by the server (restart, failover) is expected: the next batch
    // reconnects and reports if that fails.
    pool.on('error', () => undefined);
    let spill: SpillBuffer | undefined;
    try {
      if (options.migrate !== false) await migrateLedger(pool);
      const stored = await readHead(pool, options.chainId, options.onError, options.url);
      if (options.spillPath !== undefined) {
        spill = await SpillBuffer.open(options.spillPath, {
          chainId: options.chainId,
          onWriteError: (e) => options.onError?.(new LedgerError(`audit spill write failed: ${e.message}`)),
        });
      }
      const spilled = spill?.last;
      const head =
        spilled !== undefined && spilled.seq > stored.seq
          ? { chainId: options.chainId, seq: spilled.seq, hash: spilled.record_hash }
          : stored;
      return new PostgresLedgerSink(options, pool, head, stored.seq, spill);
    } catch (e) {
      await spill?.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
      throw ledgerError('cannot open the PostgreSQL audit ledger', e, options.url);
    }
  }

  /** Records chained but not yet committed (in memory and in the spill file). */
  get bufferDepth(): number {
    return this.#chain.head.seq - this.#committedSeq;
  }

  /** Events refused since open (buffer full, after close, not JSON): they were never chained. */
  get droppedEvents(): number {
    return this.#dropped;
  }

  /** The chain head: the last record written (committed or not). */
  get head(): ChainHead {
    return this.#chain.head;
  }

  /** False while PostgreSQL writes fail (from the first failed attempt to the next commit). */
  get healthy(): boolean {
    return !this.#failing;
  }

  /**
   * For `audit: "required"` routes: false while PostgreSQL writes fail, so the adapter refuses at
   * once (503) instead of recording an allow that could only be committed later.
   */
  get durableAvailable(): boolean {
    return !this.#failing;
  }

  /** The seq of the last committed record. */
  get committedSeq(): number {
    return this.#committedSeq;
  }

  /**
   * Chain the event and queue it; returns at once. Failures (buffer full without a spill file,
   * after close) are reported through `onError`, never thrown.
   */
  write(event: AuditEvent): void {
    this.#accept(event);
  }

  /**
   * Chain the event, queue it, and resolve once the COMMIT that holds it succeeded.
   * @throws {@link AuditUnavailableError} (`audit_unavailable`, 503) when PostgreSQL is unreachable,
   *   the commit fails, or it does not happen within `durableTimeoutMs`. The record stays queued
   *   and is written later: it is not lost.
   */
  writeDurable(event: AuditEvent): Promise<void> {
    const record = this.#accept(event);
    if (record === undefined) {
      return Promise.reject(new AuditUnavailableError('the audit event could not be queued'));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: DurableWaiter = {
        seq: record.seq,
        resolve,
        reject,
        done: false,
        timer: setTimeout(() => {
          if (waiter.done) return;
          waiter.done = true;
          reject(new AuditUnavailableError('the durable audit write was not committed in time', true));
        }, this.#durableTimeoutMs),
      };
      this.#durable.push(waiter);
      this.#kick(true);
    });
  }

  /**
   * Wait until every record written so far is committed.
   * @throws {@link LedgerError} when that does not happen within `flushTimeoutMs` (the records stay
   *   queued)
   */
  flush(): Promise<void> {
    const target = this.#chain.head.seq;
    if (this.#committedSeq >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: FlushWaiter = {
        target,
        resolve,
        reject,
        done: false,
        timer: setTimeout(() => {
          if (waiter.done) return;
          waiter.done = true;
          reject(
            new LedgerError(
              `audit ledger flush timed out with ${this.bufferDepth} records not yet committed ` +
                `(${redactConnectionString(this.#url)})`,
            ),
          );
        }, this.#flushTimeoutMs),
      };
      this.#flushes.push(waiter);
      this.#kick(true);
    });
  }

  /**
   * Stop accepting events, try to commit what is buffered (up to `flushTimeoutMs`), then close the
   * connection. Records still uncommitted are kept in the spill file for the next open; without a
   * spill file they are lost and reported through `onError`. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    try {
      await this.flush();
    } catch (e) {
      this.#onError?.(e as Error);
    }
    this.#stopping = true;
    this.#kick(true);
    await this.#loop;
    const left = this.bufferDepth;
    if (left > 0) {
      const spill = this.#spill;
      if (spill !== undefined) {
        // While spilling, memory only holds records already copied to the spill file.
        if (!this.#spilling) for (const record of this.#memory) spill.push(record);
        try {
          await spill.sync();
        } catch (e) {
          this.#onError?.(new LedgerError(`audit spill write failed at close: ${(e as Error).message}`));
        }
      } else {
        this.#onError?.(
          new LedgerError(
            `${left} audit records were not committed before close and are lost (no spill file)`,
          ),
        );
      }
    }
    const closed = new AuditUnavailableError('the audit ledger sink was closed');
    for (const w of this.#durable.splice(0)) settle(w, closed);
    for (const w of this.#flushes.splice(0)) settle(w, closed);
    await this.#spill?.close().catch((e: Error) => this.#onError?.(e));
    await this.#pool.end().catch(() => undefined);
  }

  #accept(event: AuditEvent): LedgerRecord | undefined {
    if (this.#closing) {
      this.#drop(new LedgerError('audit event written after the ledger sink was closed; dropped'));
      return undefined;
    }
    const toMemory = !this.#spilling && this.#memory.length < this.#maxBuffered;
    const spill = this.#spill;
    // Records wait in memory for their (batched) append; they pile up only when the disk fails.
    if (
      !toMemory &&
      (spill === undefined || (spill.writeFailing && spill.stagedCount >= this.#maxBuffered))
    ) {
      this.#drop(
        new LedgerError(
          `audit buffer full (${this.bufferDepth} records not committed); event dropped before chaining`,
        ),
      );
      return undefined;
    }
    let record: LedgerRecord;
    try {
      record = this.#chain.append(storable(event) as AuditEvent);
    } catch (e) {
      this.#drop(new LedgerError(`audit event is not JSON (${(e as Error).message}); dropped`));
      return undefined;
    }
    if (toMemory) {
      this.#memory.push(record);
    } else if (spill !== undefined) {
      if (!this.#spilling) {
        // Memory joins the spill too: from now on the file holds every uncommitted record, so a
        // crash loses none of them (the flusher skips those committed meanwhile, by seq).
        for (const r of this.#memory) spill.push(r);
        this.#spilling = true;
      }
      spill.push(record);
    }
    this.#report();
    this.#kick(false);
    return record;
  }

  #drop(error: LedgerError): void {
    this.#dropped++;
    this.#onError?.(error);
  }

  #report(): void {
    this.#reportDepth?.(this.bufferDepth);
  }

  /** Wake the loop: always when idle or `urgent`; from coalescing once a batch is full. */
  #kick(urgent: boolean): void {
    if (urgent) this.#urgent = true;
    const wake = this.#wakeup;
    if (wake === undefined) return;
    if (
      urgent ||
      this.#waitMode === 'idle' ||
      (this.#waitMode === 'coalesce' && (this.#memory.length >= this.#batchSize || this.#spilling))
    ) {
      wake();
    }
  }

  /** Sleep `ms` (forever when undefined) or until {@link #kick} wakes this mode. Unref'd. */
  #wait(mode: WaitMode, ms: number | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.#wakeup = undefined;
        this.#waitMode = undefined;
        resolve();
      };
      this.#wakeup = done;
      this.#waitMode = mode;
      if (ms !== undefined) {
        timer = setTimeout(done, ms);
        timer.unref();
      }
    });
  }

  async #run(): Promise<void> {
    let failures = 0;
    for (;;) {
      if (this.#stopping) return;
      if (this.#memory.length === 0 && (this.#spill?.size ?? 0) === 0) {
        await this.#wait('idle', undefined);
        continue;
      }
      if (
        failures === 0 &&
        !this.#urgent &&
        !this.#closing &&
        !this.#spilling &&
        this.#memory.length < this.#batchSize
      ) {
        await this.#wait('coalesce', this.#flushIntervalMs);
        if (this.#stopping) return;
      }
      this.#urgent = false;
      const started = Date.now();
      try {
        await this.#commitNext();
        this.#failing = false;
        failures = 0;
      } catch (e) {
        failures++;
        this.#failing = true;
        const error = ledgerError('audit ledger write failed', e, this.#url);
        this.#onError?.(error);
        const unavailable = new AuditUnavailableError('the audit ledger is unavailable', true);
        for (const w of this.#durable.splice(0)) settle(w, unavailable);
        if (this.#stopping) return;
        const delay = Math.min(this.#maxRetryDelayMs, FIRST_RETRY_MS * 2 ** Math.min(failures - 1, 16));
        await this.#wait('backoff', delay);
        // Woken early by a durable write or flush: still keep retries at least FIRST_RETRY_MS apart.
        const since = Date.now() - started;
        if (since < FIRST_RETRY_MS && !this.#stopping) {
          await new Promise((resolve) => setTimeout(resolve, FIRST_RETRY_MS - since).unref());
        }
      }
    }
  }

  /** Commit the next batch: from memory first (older), else from the spill file. */
  async #commitNext(): Promise<void> {
    if (this.#memory.length > 0) {
      const batch = this.#memory.slice(0, this.#batchSize);
      await this.#insert(batch);
      this.#memory.splice(0, batch.length);
      this.#committed(batch);
      return;
    }
    const spill = this.#spill;
    if (spill === undefined || spill.size === 0) return;
    const batch = (this.#spillBatch ??= await spill.peek(this.#batchSize));
    // The spill file may start with records committed meanwhile (memory copied at the overflow,
    // or a crash after the commit and before the file was truncated).
    const fresh = batch.filter((r) => r.seq > this.#committedSeq);
    if (fresh.length > 0) await this.#insert(fresh);
    await spill.consume(batch.length);
    this.#spillBatch = undefined;
    if (spill.size === 0 && this.#memory.length === 0) this.#spilling = false;
    this.#committed(fresh);
  }

  #committed(batch: readonly LedgerRecord[]): void {
    const last = batch[batch.length - 1];
    if (last !== undefined && last.seq > this.#committedSeq) this.#committedSeq = last.seq;
    const seq = this.#committedSeq;
    while (this.#durable.length > 0 && (this.#durable[0]?.seq ?? Infinity) <= seq) {
      const w = this.#durable.shift();
      if (w) settle(w);
    }
    this.#durable = this.#durable.filter((w) => !w.done);
    if (this.#flushes.length > 0) {
      for (const w of this.#flushes) if (w.target <= seq) settle(w);
      this.#flushes = this.#flushes.filter((w) => !w.done);
    }
    this.#report();
  }

  #sql(rows: number): string {
    let sql = this.#insertSql.get(rows);
    if (sql === undefined) {
      const tuples: string[] = [];
      for (let i = 0; i < rows; i++) {
        const base = i * COLUMNS.length;
        tuples.push(
          `(${COLUMNS.map((c, j) => `$${base + j + 1}${c === 'record' ? '::jsonb' : ''}`).join(', ')})`,
        );
      }
      sql =
        `INSERT INTO ${LEDGER_TABLE} (${COLUMN_LIST}) VALUES ${tuples.join(', ')} ` +
        'ON CONFLICT (chain_id, seq) DO NOTHING';
      this.#insertSql.set(rows, sql);
    }
    return sql;
  }

  /** One transaction: the multi-row INSERT, a fork check when rows already existed, COMMIT. */
  async #insert(batch: readonly LedgerRecord[]): Promise<void> {
    const first = batch[0];
    if (first === undefined) return;
    if (first.seq !== this.#committedSeq + 1 && this.#gapReported !== first.seq) {
      this.#gapReported = first.seq;
      this.#onError?.(
        new LedgerError(
          `audit chain ${this.chainId}: records ${this.#committedSeq + 1}..${first.seq - 1} are missing ` +
            '(lost before they reached the spill file); the ledger will show the gap',
        ),
      );
    }
    const client = await this.#pool.connect();
    // Checked out, the client has no pool error listener; a connection dropped between two queries
    // must not become an unhandled 'error' event (the next query fails and the batch is retried).
    const ignore = (): void => undefined;
    client.on('error', ignore);
    let ok = false;
    try {
      await client.query('BEGIN');
      const result = await client.query(this.#sql(batch.length), batch.flatMap(rowValues));
      if (result.rowCount !== batch.length) await this.#checkExisting(client, batch);
      await client.query('COMMIT');
      ok = true;
    } finally {
      client.off('error', ignore);
      // A connection that failed mid-transaction is discarded (that also rolls the transaction back).
      client.release(!ok);
    }
  }

  /** Rows already present must be these very records (a retry), not another writer's (a fork). */
  async #checkExisting(client: PoolClient, batch: readonly LedgerRecord[]): Promise<void> {
    const existing = await client.query<{ seq: string; record_hash: string }>(
      `SELECT seq::text AS seq, record_hash FROM ${LEDGER_TABLE} WHERE chain_id = $1 AND seq = ANY($2::bigint[])`,
      [this.chainId, batch.map((r) => String(r.seq))],
    );
    const hashes = new Map(existing.rows.map((r) => [r.seq, r.record_hash]));
    for (const record of batch) {
      const stored = hashes.get(String(record.seq));
      if (stored !== undefined && stored !== record.record_hash) {
        throw new LedgerError(
          `audit chain ${this.chainId} forked: seq ${record.seq} already holds another record ` +
            '(two writers use this chain id?); not committing until resolved',
          'chain_fork',
        );
      }
    }
  }
}

function settle(waiter: DurableWaiter | FlushWaiter, error?: Error): void {
  if (waiter.done) return;
  waiter.done = true;
  clearTimeout(waiter.timer);
  if (error === undefined) waiter.resolve();
  else waiter.reject(error);
}

async function readHead(
  pool: pg.Pool,
  chainId: string,
  onError: ((error: Error) => void) | undefined,
  url: string,
): Promise<ChainHead> {
  const result = await pool.query<{ seq: string; record_hash: string; record: unknown }>(
    `SELECT seq::text AS seq, record_hash, record FROM ${LEDGER_TABLE} WHERE chain_id = $1 ORDER BY ${LEDGER_TABLE}.seq DESC LIMIT 1`,
    [chainId],
  );
  const row = result.rows[0];
  if (row === undefined) return { chainId, seq: 0, hash: GENESIS_HASH };
  const seq = Number(row.seq);
  let intact = false;
  try {
    intact = ledgerRecordHash(row.record as Record<string, unknown>) === row.record_hash;
  } catch {
    intact = false;
  }
  if (!intact) {
    onError?.(
      new LedgerError(
        `audit chain ${chainId}: the last stored record (seq ${seq}) does not match its hash; ` +
          `continuing after it (run trustplane audit verify --postgres ${redactConnectionString(url)})`,
      ),
    );
  }
  return { chainId, seq, hash: row.record_hash };
}

// ---------------------------------------------------------------------------------------------
// Verify and query
// ---------------------------------------------------------------------------------------------

/** Options for {@link verifyPostgresLedger} and {@link queryPostgresLedger}. */
export interface PostgresLedgerReadOptions {
  /** Rows fetched per round trip (default 1000). */
  readonly pageSize?: number;
  /** Connection timeout (default 5000 ms). */
  readonly connectTimeoutMs?: number;
  /** Timeout of each statement (default 60 000 ms). */
  readonly statementTimeoutMs?: number;
}

/** A chain break in PostgreSQL: an edited indexed column reports `record_hash_mismatch` with `column`. */
export interface PostgresChainBreak extends ChainBreak {
  /** The column whose value differs from the hashed record (when that is the break). */
  readonly column?: string;
}

/** The verification of one chain. */
export interface PostgresChainVerification extends ChainVerification {
  readonly chainId: string;
  /** Rows of this chain read (all of them, also past a break). */
  readonly rows: number;
  readonly firstBreak?: PostgresChainBreak;
}

/**
 * Result of {@link verifyPostgresLedger}: the per-chain results, and (so it reads like a single
 * {@link ChainVerification}) `ok` when every chain verifies, `count` the rows read, `head` the head of
 * the only (or first broken) chain, and `firstBreak` the first break of the first broken chain.
 */
export interface PostgresLedgerVerification extends ChainVerification {
  readonly chains: readonly PostgresChainVerification[];
  readonly firstBreak?: PostgresChainBreak;
}

async function withClient<T>(
  url: string,
  options: PostgresLedgerReadOptions,
  what: string,
  run: (client: ClientBase) => Promise<T>,
): Promise<T> {
  const connectTimeoutMs = positiveInt('connectTimeoutMs', options.connectTimeoutMs, 5000, 600_000);
  const statementTimeoutMs = positiveInt('statementTimeoutMs', options.statementTimeoutMs, 60_000, 3_600_000);
  const client = new pg.Client(poolConfig(url, connectTimeoutMs, statementTimeoutMs));
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
async function* cursorRows(
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

class ChainChecker {
  readonly chainId: string;
  #head: ChainHead | undefined;
  #rows = 0;
  #break: PostgresChainBreak | undefined;

  constructor(chainId: string) {
    this.chainId = chainId;
  }

  add(row: LedgerRow): void {
    this.#rows++;
    if (this.#break !== undefined) return;
    const position = this.#rows;
    const record = row.record;
    const result = verifyChain([record], this.#head);
    if (!result.ok) {
      const b = result.firstBreak;
      this.#break = {
        position,
        seq: b?.seq ?? undefined,
        problem: b?.problem ?? 'malformed_record',
        message: b?.message ?? 'the record does not verify',
      };
      return;
    }
    const column = columnMismatch(row, record as Readonly<Record<string, unknown>>);
    if (column !== undefined) {
      this.#break = {
        position,
        seq: Number(row.seq),
        problem: 'record_hash_mismatch',
        message: `row seq ${row.seq} was modified: column ${column} differs from its hashed record`,
        column,
      };
      return;
    }
    this.#head = result.head;
  }

  result(): PostgresChainVerification {
    const b = this.#break;
    return b === undefined
      ? { chainId: this.chainId, ok: true, count: this.#rows, rows: this.#rows, head: this.#head }
      : {
          chainId: this.chainId,
          ok: false,
          count: b.position,
          rows: this.#rows,
          head: this.#head,
          firstBreak: b,
        };
  }
}

/**
 * Verify the chains stored in PostgreSQL: rows are streamed in (chain_id, seq) order through a
 * cursor (bounded memory, one consistent snapshot); each record is rebuilt from its `record`
 * column and walked with {@link verifyChain}, and its indexed columns must equal the record (an
 * edited column is a break too). Positions are 1-based within each chain, in seq order.
 * @param url connection URL (the password never appears in errors)
 * @param chainId verify only this chain (default: every chain)
 * @param options page size and timeouts
 * @returns per-chain results, and the overall verdict
 * @throws {@link LedgerError} when PostgreSQL cannot be read
 * @example
 * const result = await verifyPostgresLedger(url, 'adapter-1')
 * if (!result.ok) console.error(`broken at ${result.firstBreak?.position}: ${result.firstBreak?.message}`)
 */
export async function verifyPostgresLedger(
  url: string,
  chainId?: string,
  options: PostgresLedgerReadOptions = {},
): Promise<PostgresLedgerVerification> {
  const pageSize = positiveInt('pageSize', options.pageSize, 1000, 100_000);
  const chains = await withClient(
    url,
    options,
    'cannot verify the PostgreSQL audit ledger',
    async (client) => {
      const where = chainId === undefined ? '' : 'WHERE chain_id = $1';
      const sql = `SELECT ${SELECT_LIST} FROM ${LEDGER_TABLE} ${where} ORDER BY chain_id, ${LEDGER_TABLE}.seq`;
      const done: PostgresChainVerification[] = [];
      let current: ChainChecker | undefined;
      for await (const row of cursorRows(client, sql, chainId === undefined ? [] : [chainId], pageSize)) {
        if (current?.chainId !== row.chain_id) {
          if (current) done.push(current.result());
          current = new ChainChecker(row.chain_id);
        }
        current.add(row);
      }
      if (current) done.push(current.result());
      return done;
    },
  );
  if (chainId !== undefined && chains.length === 0) {
    chains.push({ chainId, ok: true, count: 0, rows: 0, head: undefined });
  }
  const broken = chains.find((c) => !c.ok);
  const rows = chains.reduce((n, c) => n + c.rows, 0);
  if (broken === undefined) {
    return { ok: true, count: rows, head: chains.length === 1 ? chains[0]?.head : undefined, chains };
  }
  const b = broken.firstBreak;
  return {
    ok: false,
    count: broken.count,
    head: broken.head,
    chains,
    ...(b !== undefined
      ? { firstBreak: chains.length > 1 ? { ...b, message: `chain ${broken.chainId}: ${b.message}` } : b }
      : {}),
  };
}

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
 * @throws RangeError (eagerly) for a bad `limit` or date; {@link LedgerError} while reading
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
        const client = new pg.Client(config);
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
