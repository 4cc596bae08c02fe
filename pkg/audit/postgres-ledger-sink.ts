import type pg from 'pg';
import type { PoolClient } from 'pg';
import { HEALTHY, unhealthy, type ComponentHealth } from '../authcore/component-health.js';
import { AuditUnavailableError } from './audit-unavailable-error.js';
import { GENESIS_HASH, HashChain, ledgerRecordHash, type ChainHead, type LedgerEntry } from './chain.js';
import { redactConnectionString } from './connection-string.js';
import type { AuditEvent } from './event.js';
import type { AuditSink } from './audit-sink.js';
import { LedgerError } from './ledger-error.js';
import { ledgerGapEvent, type LedgerGapInput } from './ledger-gap.js';
import { gapFromNote, LedgerGapNote, type GapNoteRecord, type GapNoteState } from './ledger-gap-note.js';
import { LEDGER_TABLE, migrateLedger } from './ledger-migrations.js';
import { poolConfig, positiveInt } from './postgres-ledger-connection.js';
import { ledgerError } from './postgres-ledger-error.js';
import { reconcileSpill } from './postgres-ledger-reconcile.js';
import { COLUMNS, COLUMN_LIST, MAX_LEDGER_BATCH, rowValues, storable } from './postgres-ledger-rows.js';
import { SpillBuffer } from './spill-buffer.js';
import { loadPg } from './pg-module.js';

/** Records kept in memory while uncommitted, by default (`maxBufferedEvents`). */
export const DEFAULT_MAX_BUFFERED_EVENTS = 10_000;
/**
 * How long a record may wait for its COMMIT in memory only, by default (`spillAfterMs`): older
 * uncommitted records go to the spill file. With a spill file, a crash loses at most this window
 * (plus the spill group being written).
 */
export const DEFAULT_SPILL_AFTER_MS = 250;

/** Where the sink reports what it does (e.g. prom-client metrics). */
export interface PostgresLedgerMetrics {
  /** Records chained but not yet committed (memory and spill file), after every change. */
  readonly bufferDepth?: (depth: number) => void;
  /**
   * Spilled records that conflict with the committed chain (a fork loser's, found at open), moved
   * to a `<spill>.conflict-<ms>.jsonl` file: called with their count.
   */
  readonly conflicts?: (count: number) => void;
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
  /**
   * The backlog limit (default 10 000): records kept in memory while uncommitted, and records
   * waiting for a spill write that fails (twice that many behind a slow spill file). Beyond it,
   * events are dropped before chaining and counted in a gap record; the sink's health says
   * `backlog_over_limit`.
   */
  readonly maxBufferedEvents?: number;
  /**
   * The spill file (fsync'd JSON lines, appended in small groups, replayed after a restart). Every
   * uncommitted record goes there from the moment PostgreSQL fails a write, a record waits longer
   * than `spillAfterMs`, or memory is full. Without it, uncommitted records live in memory only: a
   * crash loses them all, undetectably (see docs/ledger.md, loss windows). Next to it, the gap note
   * `<spillPath>.gaps` (4 KiB, pre-allocated) records what a stop or crash would lose while spill
   * writes fail; the next open chains it as a gap record.
   */
  readonly spillPath?: string;
  /**
   * With a spill file: the longest a record stays uncommitted in memory only (default
   * {@link DEFAULT_SPILL_AFTER_MS} ms); then the sink starts spilling.
   */
  readonly spillAfterMs?: number;
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
  /**
   * Failures, as {@link LedgerError}s: PostgreSQL unreachable or refusing (`ledger_unavailable`,
   * `ledger_error`), a spill write error (`ledger_unavailable`), a dropped event
   * (`ledger_event_dropped`), lost records (`ledger_records_lost`), a fork (`ledger_chain_fork`,
   * also for spilled records set aside at open, with `details.set_aside` and `details.count`), a
   * corrupt last row (`audit_chain_broken`). Never throws back.
   */
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

/** Decisions dropped before chaining, not yet recorded in a gap record. */
interface PendingGap {
  lost: number;
  readonly firstTime: string;
  lastTime: string;
}

/**
 * The PostgreSQL audit ledger sink. Each event is chained the moment it is written (its `seq` and
 * hashes are fixed then, in write order), buffered, and committed by a background loop in batches:
 * one multi-row `INSERT … ON CONFLICT (chain_id, seq) DO NOTHING` per transaction, in seq order, so
 * a batch retried after an ambiguous failure (the connection dropped during COMMIT) is never
 * duplicated. `write` never waits.
 *
 * With a spill file, uncommitted records are written to disk from the moment the sink knows
 * PostgreSQL is unavailable (a failed write) or slow (a record uncommitted for `spillAfterMs`),
 * in small fsync'd groups, and the loop retries with bounded backoff; when PostgreSQL is back
 * everything is written in order, none lost, none duplicated, also across a crash. What the sink
 * cannot keep is never forgotten silently: decisions dropped before chaining (backlog over its
 * limit) are counted in a chained gap record, and spilled records that conflict with the committed
 * chain at open (a fork loser's) are moved to `<spill>.conflict-<ms>.jsonl` and described by a gap
 * record; `trustplane audit verify` reports both.
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
  readonly #spillAfterMs: number;
  readonly #durableTimeoutMs: number;
  readonly #flushTimeoutMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #reportDepth: ((depth: number) => void) | undefined;

  /** Uncommitted records in order; the front may be in flight. */
  #memory: LedgerEntry[] = [];
  /** When each memory record was chained (`performance.now()`), for `spillAfterMs`. */
  #memoryAt: number[] = [];
  /**
   * True from the first failed write, slow commit or overflow until the spill file is drained: new
   * records go there (and memory only holds records already copied to it).
   */
  #spilling: boolean;
  /** The spill batch in flight (kept across retries; the front of the file does not change). */
  #spillBatch: LedgerEntry[] | undefined;
  #spillTimer: NodeJS.Timeout | undefined;
  #committedSeq: number;
  #durable: DurableWaiter[] = [];
  #flushes: FlushWaiter[] = [];
  #dropped = 0;
  #pendingGap: PendingGap | undefined;
  #failing = false;
  #forked = false;
  #gapReported = 0;
  readonly #note: LedgerGapNote | undefined;
  /** Gap records chained and not yet durable: what they count is lost with them. */
  #gapRecords: GapNoteRecord[] = [];
  /** The `time` of the last record chained. */
  #lastTime: string | undefined;
  /** What the note holds now (as written, or as found at open). */
  #noteHolds: GapNoteState | undefined;
  #noteDirty = false;
  #noteWriting: Promise<void> | undefined;
  #noteFailing = false;
  #noteError: Error | undefined;

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
    note: LedgerGapNote | undefined,
    started: Promise<void> = Promise.resolve(),
  ) {
    this.chainId = options.chainId;
    this.#url = options.url;
    this.#pool = pool;
    this.#chain = new HashChain(head);
    this.#committedSeq = committedSeq;
    this.#spill = spill;
    this.#note = note;
    this.#noteHolds = note?.previous;
    this.#spilling = spill !== undefined && spill.size > 0;
    this.#batchSize = options.batchSize ?? 200;
    this.#flushIntervalMs = options.flushIntervalMs ?? 50;
    this.#maxBuffered = options.maxBufferedEvents ?? DEFAULT_MAX_BUFFERED_EVENTS;
    this.#spillAfterMs = options.spillAfterMs ?? DEFAULT_SPILL_AFTER_MS;
    this.#durableTimeoutMs = options.durableTimeoutMs ?? 2000;
    this.#flushTimeoutMs = options.flushTimeoutMs ?? 10_000;
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 1000;
    this.#onError = options.onError;
    this.#reportDepth = options.metrics?.bufferDepth;
    this.#report();
    this.#loop = started.then(() => this.#run());
  }

  /**
   * Connect, migrate the schema (unless `migrate: false`), and resume the chain: its head is the
   * last row of `chainId` in PostgreSQL, or the last record of the spill file when that is newer
   * (records spilled before a restart are replayed first, in order). Spilled records that do not
   * continue the committed chain (a fork loser's, or records after a hole) are moved to
   * `<spill>.conflict-<ms>.jsonl`, reported (`ledger_chain_fork` or `ledger_records_lost` with
   * `details.set_aside`, and `metrics.conflicts`), and a gap record describing them is chained
   * first.
   * @param options connection, chain id, batching, buffering and timeouts
   * @returns the open sink
   * @throws TypeError/RangeError for bad options; {@link LedgerError} `ledger_unavailable` when
   *   PostgreSQL cannot be reached (the chain head cannot be known without it), `ledger_error` when
   *   it refuses (authentication, permission, migration: `details.sqlstate`) or the spill file is
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
    positiveInt('maxBufferedEvents', options.maxBufferedEvents, DEFAULT_MAX_BUFFERED_EVENTS, 10_000_000);
    positiveInt('spillAfterMs', options.spillAfterMs, DEFAULT_SPILL_AFTER_MS, 600_000);
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

    const pool = new (loadPg().Pool)({
      ...poolConfig(options.url, connectTimeoutMs, statementTimeoutMs),
      max: 1,
    });
    // An idle connection dropped by the server (restart, failover) is expected: the next batch
    // reconnects and reports if that fails.
    pool.on('error', () => undefined);
    let spill: SpillBuffer | undefined;
    let note: LedgerGapNote | undefined;
    let sink: PostgresLedgerSink | undefined;
    let abort: (() => Promise<void>) | undefined;
    // The spill's callbacks reach the sink once it exists (nothing is written before that).
    const spillEvent = (): void => {
      if (sink !== undefined) sink.#noteEvent();
    };
    try {
      if (options.migrate !== false) await migrateLedger(pool);
      const stored = await readHead(pool, options.chainId, options.onError, options.url);
      if (options.spillPath !== undefined) {
        spill = await SpillBuffer.open(options.spillPath, {
          chainId: options.chainId,
          onWriteError: (e) => {
            options.onError?.(
              new LedgerError('ledger_unavailable', `audit spill write failed: ${e.message}`),
            );
            spillEvent();
          },
          onWritten: spillEvent,
        }).catch((e: unknown) => {
          // A damaged or busy spill file needs an operator, unlike an unreachable PostgreSQL.
          throw ledgerError('cannot open the PostgreSQL audit ledger', e, options.url, 'ledger_error');
        });
      }
      let head = stored;
      let gap: LedgerGapInput | undefined;
      let setAsideLast = 0;
      if (spill !== undefined) {
        const reconciled = await reconcileSpill(pool, options.chainId, stored, spill);
        head = reconciled.head;
        gap = reconciled.gap;
        setAsideLast = reconciled.setAside?.lastSeq ?? 0;
        if (reconciled.setAside !== undefined && gap !== undefined) {
          options.metrics?.conflicts?.(reconciled.setAside.count);
          options.onError?.(
            new LedgerError(gap.reason, `audit chain ${options.chainId}: ${gap.detail}`, {
              count: reconciled.setAside.count,
              set_aside: reconciled.setAside.path,
            }),
          );
        }
      }
      let noteGap: LedgerGapInput | undefined;
      if (spill !== undefined) {
        note = await LedgerGapNote.open(`${spill.path}.gaps`, options.chainId).catch((e: unknown) => {
          throw ledgerError(
            'cannot open the gap note of the audit spill file',
            e,
            options.url,
            'ledger_error',
          );
        });
        const previous = note.previous;
        if (previous !== undefined) {
          // Set-aside records are counted by the reconciliation's own gap record.
          noteGap = gapFromNote(previous, Math.max(head.seq, setAsideLast));
        }
      }
      // The commit loop waits until the note carries any loss found in it (below).
      let start: () => void = () => undefined;
      const started = new Promise<void>((resolve) => (start = resolve));
      sink = new PostgresLedgerSink(options, pool, head, stored.seq, spill, note, started);
      const opened = sink;
      abort = async () => {
        opened.#stopping = true;
        start();
        await opened.#loop;
      };
      if (gap !== undefined) sink.#appendGap(gap);
      if (noteGap !== undefined) {
        sink.#appendGap(noteGap);
        options.onError?.(
          new LedgerError('ledger_records_lost', `audit chain ${options.chainId}: ${noteGap.detail}`, {
            count: noteGap.lost,
          }),
        );
      }
      if (note !== undefined && !note.empty) {
        // The earlier note is replaced by one that carries its loss (the gap record just chained)
        // before anything else happens: if this fails, the loss could later be counted twice or
        // not at all, so the sink does not start.
        try {
          await sink.#settleNote();
          if (sink.#noteFailing) throw sink.#noteError ?? new Error('the gap note write failed');
        } catch (e) {
          throw ledgerError(
            'cannot update the gap note of the audit spill file',
            e,
            options.url,
            'ledger_error',
          );
        }
      }
      start();
      return sink;
    } catch (e) {
      // Nothing of a sink that did not open is committed (its gap record would count the loss
      // a second time next to the note left as it was).
      await abort?.();
      await note?.close().catch(() => undefined);
      await spill?.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
      throw ledgerError('cannot open the PostgreSQL audit ledger', e, options.url);
    }
  }

  /** Records chained but not yet committed (in memory and in the spill file). */
  get bufferDepth(): number {
    return this.#chain.head.seq - this.#committedSeq;
  }

  /**
   * Events refused since open (backlog over its limit, after close, not JSON): they were never
   * chained. Except after close, each is counted in a gap record chained when there is room.
   */
  get droppedEvents(): number {
    return this.#dropped;
  }

  /** True while new records go to the spill file (PostgreSQL failing or slow, or memory full). */
  get spilling(): boolean {
    return this.#spilling;
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
   * Readiness. PostgreSQL unreachable is not by itself a reason: with a spill file every record is
   * on disk and written later. Not ready (in this order): `chain_fork` (another writer holds the
   * chain id: nothing is committed until an operator acts), `backlog_over_limit` (events are being
   * dropped before chaining), `spill_failed` (spill writes fail: records wait in memory only),
   * `unavailable` (PostgreSQL failing and no spill file: records wait in memory only).
   */
  health(): ComponentHealth {
    if (this.#forked) return unhealthy('chain_fork');
    if (this.#full()) return unhealthy('backlog_over_limit');
    if (this.#spill?.writeFailing === true) return unhealthy('spill_failed');
    if (this.#failing && this.#spill === undefined) return unhealthy('unavailable');
    return HEALTHY;
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
   * Chain the event and queue it; returns at once. Failures (backlog over its limit, after close)
   * are reported through `onError`, never thrown.
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
   * @throws {@link LedgerError} `ledger_unavailable` when that does not happen within
   *   `flushTimeoutMs` (the records stay queued)
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
              'ledger_unavailable',
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
    // From now on what is not durable is noted (a kill during the wait below leaves the note).
    this.#scheduleNote();
    // Drops not yet recorded are chained now, over the limit if need be: one record.
    this.#recordGap(true);
    try {
      await this.flush();
    } catch (e) {
      this.#onError?.(e as Error);
    }
    this.#stopping = true;
    this.#kick(true);
    await this.#loop;
    if (this.#spillTimer !== undefined) clearTimeout(this.#spillTimer);
    this.#spillTimer = undefined;
    const left = this.bufferDepth;
    if (left > 0) {
      const spill = this.#spill;
      if (spill !== undefined) {
        // While spilling, memory only holds records already copied to the spill file.
        if (!this.#spilling) for (const record of this.#memory) spill.push(record);
        try {
          await spill.sync();
        } catch (e) {
          this.#onError?.(
            new LedgerError(
              'ledger_unavailable',
              `audit spill write failed at close: ${(e as Error).message}`,
            ),
          );
        }
      } else {
        this.#onError?.(
          new LedgerError(
            'ledger_records_lost',
            `${left} audit records were not committed before close and are lost (no spill file)`,
          ),
        );
      }
    }
    const closed = new AuditUnavailableError('the audit ledger sink was closed');
    for (const w of this.#durable.splice(0)) settle(w, closed);
    for (const w of this.#flushes.splice(0)) settle(w, closed);
    await this.#spill?.close().catch((e: Error) => this.#onError?.(e));
    // Whatever is still not durable is in the note now; the next open chains it as a gap record.
    await this.#settleNote();
    await this.#note?.close().catch((e: Error) => this.#onError?.(e));
    await this.#pool.end().catch(() => undefined);
  }

  #accept(event: AuditEvent): LedgerEntry | undefined {
    if (this.#closing) {
      // Nothing can be chained after close: reported only.
      this.#drop(
        new LedgerError(
          'ledger_event_dropped',
          'audit event written after the ledger sink was closed; dropped',
        ),
        false,
      );
      return undefined;
    }
    this.#recordGap(false);
    if (this.#full()) {
      this.#drop(
        new LedgerError(
          'ledger_event_dropped',
          `audit backlog over its limit (${this.bufferDepth} records not committed` +
            `${this.#spill === undefined ? ', no spill file' : ', spill writes failing or behind'}); ` +
            'event dropped before chaining (counted in the next gap record)',
        ),
        true,
      );
      return undefined;
    }
    let record: LedgerEntry;
    try {
      record = this.#chain.append(storable(event) as AuditEvent);
    } catch (e) {
      this.#drop(
        new LedgerError('ledger_event_dropped', `audit event is not JSON (${(e as Error).message}); dropped`),
        true,
      );
      return undefined;
    }
    this.#enqueue(record);
    return record;
  }

  /**
   * No room for another record: without a spill file, memory holds `maxBufferedEvents`; with one,
   * that many records wait for a spill write that fails, or twice that many for a spill file that
   * is only behind (the memory backlog copied at once when spilling starts must fit).
   */
  #full(): boolean {
    const spill = this.#spill;
    if (spill === undefined) return this.#memory.length >= this.#maxBuffered;
    if (!this.#spilling) return false;
    return spill.stagedCount >= (spill.writeFailing ? this.#maxBuffered : 2 * this.#maxBuffered);
  }

  /** Queue a chained record: into the spill file while spilling, else into memory. */
  #enqueue(record: LedgerEntry): void {
    const spill = this.#spill;
    if (typeof record.time === 'string') this.#lastTime = record.time;
    if (this.#spilling && spill !== undefined) {
      spill.push(record);
    } else {
      this.#memory.push(record);
      this.#memoryAt.push(performance.now());
      if (spill !== undefined && this.#memory.length >= this.#maxBuffered) this.#startSpilling();
      else this.#armSpillTimer();
    }
    this.#report();
    this.#noteEvent();
    this.#kick(false);
  }

  /**
   * From now on every uncommitted record is in the spill file: memory is copied to it (the flusher
   * later skips, by seq, the copies committed from memory meanwhile) and new records go there.
   */
  #startSpilling(): void {
    const spill = this.#spill;
    if (spill === undefined || this.#spilling || this.#stopping) return;
    for (const r of this.#memory) spill.push(r);
    this.#spilling = true;
    if (this.#spillTimer !== undefined) clearTimeout(this.#spillTimer);
    this.#spillTimer = undefined;
  }

  /** Spill once the oldest record in memory has waited `spillAfterMs` for its COMMIT. */
  #armSpillTimer(): void {
    if (this.#spillTimer !== undefined || this.#spill === undefined || this.#spilling) return;
    const oldest = this.#memoryAt[0];
    if (oldest === undefined) return;
    const wait = Math.max(0, this.#spillAfterMs - (performance.now() - oldest));
    this.#spillTimer = setTimeout(() => {
      this.#spillTimer = undefined;
      const front = this.#memoryAt[0];
      if (front === undefined || this.#spilling) return;
      if (performance.now() - front >= this.#spillAfterMs) this.#startSpilling();
      else this.#armSpillTimer();
    }, wait);
    this.#spillTimer.unref();
  }

  #drop(error: LedgerError, recordable: boolean): void {
    this.#dropped++;
    if (recordable) {
      const time = new Date().toISOString();
      if (this.#pendingGap === undefined) this.#pendingGap = { lost: 1, firstTime: time, lastTime: time };
      else {
        this.#pendingGap.lost++;
        this.#pendingGap.lastTime = time;
      }
      this.#noteEvent();
    }
    this.#onError?.(error);
  }

  /**
   * Chain the gap record of the events dropped so far, where they were dropped (before anything
   * chained later), once there is room again (or `force`: at close).
   */
  #recordGap(force: boolean): void {
    const pending = this.#pendingGap;
    if (pending === undefined || (!force && this.#full())) return;
    this.#pendingGap = undefined;
    this.#appendGap({
      reason: 'ledger_event_dropped',
      lost: pending.lost,
      firstTime: pending.firstTime,
      lastTime: pending.lastTime,
      detail:
        `${pending.lost} audit events were dropped before chaining: the backlog was over its limit ` +
        `(${this.#maxBuffered} records${this.#spill === undefined ? ', no spill file' : ' waiting for the spill file'})`,
    });
  }

  #appendGap(gap: LedgerGapInput): void {
    const record = this.#chain.append(ledgerGapEvent(gap));
    if (this.#note !== undefined) this.#gapRecords.push({ seq: record.seq, lost: gap.lost });
    this.#enqueue(record);
  }

  /** The last seq that survives a crash now: committed, or in the spill file. */
  #durableSeq(): number {
    return Math.max(this.#committedSeq, this.#spill?.durableSeq ?? 0);
  }

  /**
   * True while a stop or a crash would lose records beyond the documented window: spill writes
   * fail (records wait in memory only), the sink is closing, or drops and gap records are not
   * durable yet.
   */
  #atRisk(): boolean {
    return (
      this.#spill?.writeFailing === true ||
      this.#closing ||
      this.#pendingGap !== undefined ||
      this.#gapRecords.length > 0
    );
  }

  /** Something changed that the note may have to follow (cheap when nothing is at risk). */
  #noteEvent(): void {
    const note = this.#note;
    if (note !== undefined && (!note.empty || this.#atRisk())) this.#scheduleNote();
  }

  /** What the note should hold now: a state, `undefined` (nothing at risk: cleared), or `keep`. */
  #noteTarget(): GapNoteState | undefined | 'keep' {
    const durable = this.#durableSeq();
    if (this.#gapRecords.length > 0) this.#gapRecords = this.#gapRecords.filter((g) => g.seq > durable);
    const head = this.#chain.head.seq;
    const dropped = this.#pendingGap?.lost ?? 0;
    if (head <= durable && dropped === 0 && this.#gapRecords.length === 0) return undefined;
    if (this.#atRisk()) {
      const firstTime = this.#firstTimeAfter(durable);
      return {
        chainedTo: head,
        gapRecords: [...this.#gapRecords],
        dropped,
        ...(firstTime !== undefined ? { firstTime } : {}),
        ...(this.#lastTime !== undefined ? { lastTime: this.#lastTime } : {}),
      };
    }
    // Records wait for their commit or spill write as usual (the loss window of docs/ledger.md).
    // A note already written stays until what it names is durable: it never over-counts (only
    // records past the durable head are counted at the next open).
    const holds = this.#noteHolds;
    return holds !== undefined && durable >= holds.chainedTo ? undefined : 'keep';
  }

  /** The `time` of the first record past `durable`, when known. */
  #firstTimeAfter(durable: number): string | undefined {
    const staged = this.#spill?.firstStaged;
    const record =
      staged !== undefined && staged.seq === durable + 1
        ? staged
        : (this.#memory.find((r) => r.seq > durable) ?? staged);
    const time = record?.time;
    return typeof time === 'string' ? time : undefined;
  }

  /** Write the note's target now (nothing when it already holds it). */
  async #writeNote(): Promise<void> {
    const note = this.#note;
    if (note === undefined) return;
    const target = this.#noteTarget();
    if (target === 'keep') return;
    if (target === undefined ? note.empty : JSON.stringify(target) === JSON.stringify(this.#noteHolds)) {
      return;
    }
    await note.write(target);
    this.#noteHolds = target;
  }

  /** Bring the note up to date in the background: one write at a time, the latest state wins. */
  #scheduleNote(): void {
    if (this.#note === undefined) return;
    this.#noteDirty = true;
    if (this.#noteWriting !== undefined) return;
    this.#noteWriting = (async () => {
      while (this.#noteDirty) {
        this.#noteDirty = false;
        try {
          await this.#writeNote();
          this.#noteFailing = false;
        } catch (e) {
          this.#noteError = e as Error;
          // Reported once per failing streak; the next change tries again.
          if (!this.#noteFailing) {
            this.#onError?.(
              new LedgerError(
                'ledger_unavailable',
                `audit gap note write failed (a stop or crash now would lose records silently): ${(e as Error).message}`,
              ),
            );
          }
          this.#noteFailing = true;
          return;
        }
      }
    })().finally(() => {
      this.#noteWriting = undefined;
    });
  }

  /** Bring the note up to date and wait for it (bounded: a few writes at most); failures in `#noteFailing`. */
  async #settleNote(): Promise<void> {
    if (this.#note === undefined) return;
    this.#scheduleNote();
    for (let i = 0; i < 8 && this.#noteWriting !== undefined; i++) await this.#noteWriting;
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
      this.#recordGap(false);
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
        this.#forked = false;
        failures = 0;
      } catch (e) {
        failures++;
        this.#failing = true;
        const error = ledgerError('audit ledger write failed', e, this.#url);
        // PostgreSQL is known to be unavailable: from now on every uncommitted record is on disk.
        this.#startSpilling();
        this.#forked = error.reason === 'ledger_chain_fork';
        this.#onError?.(error);
        const unavailable = new AuditUnavailableError('the audit ledger is unavailable', true);
        for (const w of this.#durable.splice(0)) settle(w, unavailable);
        // A fork does not heal by waiting: flushes fail at once instead of at their timeout.
        if (this.#forked) for (const w of this.#flushes.splice(0)) settle(w, error);
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
      this.#memoryAt.splice(0, batch.length);
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

  #committed(batch: readonly LedgerEntry[]): void {
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
    this.#noteEvent();
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
  async #insert(batch: readonly LedgerEntry[]): Promise<void> {
    const first = batch[0];
    if (first === undefined) return;
    if (first.seq !== this.#committedSeq + 1 && this.#gapReported !== first.seq) {
      this.#gapReported = first.seq;
      this.#onError?.(
        new LedgerError(
          'ledger_records_lost',
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
  async #checkExisting(client: PoolClient, batch: readonly LedgerEntry[]): Promise<void> {
    const existing = await client.query<{ seq: string; record_hash: string }>(
      `SELECT seq::text AS seq, record_hash FROM ${LEDGER_TABLE} WHERE chain_id = $1 AND seq = ANY($2::bigint[])`,
      [this.chainId, batch.map((r) => String(r.seq))],
    );
    const hashes = new Map(existing.rows.map((r) => [r.seq, r.record_hash]));
    for (const record of batch) {
      const stored = hashes.get(String(record.seq));
      if (stored !== undefined && stored !== record.record_hash) {
        throw new LedgerError(
          'ledger_chain_fork',
          `audit chain ${this.chainId} forked: seq ${record.seq} already holds another record ` +
            '(two writers use this chain id?); not committing until resolved',
          { seq: record.seq },
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
        'audit_chain_broken',
        `audit chain ${chainId}: the last stored record (seq ${seq}) does not match its hash; ` +
          `continuing after it (run trustplane audit verify --postgres ${redactConnectionString(url)})`,
      ),
    );
  }
  return { chainId, seq, hash: row.record_hash };
}
