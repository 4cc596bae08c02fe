import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HEALTHY, unhealthy, type ComponentHealth } from '../authcore/component-health.js';
import { TrustplaneError } from '../authcore/errors.js';
import { acquireFileLock, releaseFileLock, type FileLockHandle } from '../internal/node/file-lock.js';
import { GENESIS_HASH, HashChain, type ChainHead } from './chain.js';
import type { AuditEvent } from './event.js';
import type { AuditSink } from './audit-sink.js';
import { readTail, tailHead } from './file-ledger-tail.js';
import { LedgerError } from './ledger-error.js';
import { ledgerGapEvent } from './ledger-gap.js';
import { asError, errorCode, syncDirectory, writeAll } from './ledger-file-io.js';
import { MAX_LEDGER_LINE_BYTES } from './read-ledger-file.js';

/**
 * When a {@link FileLedgerSink} flushes to stable storage (`writeDurable` and `flush` always do).
 * - `always`: `fdatasync` after every write (group commit: concurrent writes share one flush);
 * - `interval` (default): `fdatasync` in the background at most once a second; a process crash
 *   loses nothing written, a machine crash can lose the last second;
 * - `never`: leave flushing to the kernel.
 */
export type LedgerFsyncMode = 'always' | 'interval' | 'never';

/** Options for {@link FileLedgerSink.open}. */
export interface FileLedgerSinkOptions {
  /** The chain this file holds (e.g. the adapter instance name); at most 256 characters. */
  readonly chainId: string;
  /** Flush policy (default `interval`, once a second); see {@link LedgerFsyncMode}. */
  readonly fsync?: LedgerFsyncMode;
  /**
   * Failures nobody awaits: a `write` that could not be chained or written ({@link LedgerError}
   * `ledger_event_dropped` / `ledger_unavailable`), a background flush that failed
   * (`audit_unavailable`), and the torn last line `open` dropped (`ledger_records_lost`). Count
   * and log them.
   */
  readonly onError?: (error: Error) => void;
}

/** `fsync: interval`: the longest a written record waits for its `fdatasync`. */
export const FILE_LEDGER_SYNC_INTERVAL_MS = 1000;
const FSYNC_MODES: ReadonlySet<string> = new Set(['always', 'interval', 'never']);
/** Records written with one `write(2)` at most: what a process crash can lose, at most. */
export const FILE_LEDGER_MAX_BATCH = 1024;

/** Decisions that did not make it into the file, not yet recorded in a gap record. */
interface PendingGap {
  lost: number;
  readonly firstTime: string;
  lastTime: string;
}

/** A queued write; no `event` is a flush barrier. Unawaited entries report failures to `onError`. */
interface Pending {
  readonly event?: AuditEvent;
  readonly durable: boolean;
  readonly resolve?: () => void;
  readonly reject?: (error: Error) => void;
}

/**
 * An append-only ledger file: one JSON line per {@link LedgerRecord}, chained (see `chain.ts`),
 * for `trustplane audit verify`.
 *
 * `open` resumes the chain from the file's last record (reading only the tail), so restarts keep
 * one chain per file. It refuses a file holding another chain or ending with a corrupt record
 * rather than start a second chain in it; a torn last line without its newline (a crash
 * mid-append) is cut off and reported to `onError`.
 *
 * Records are chained and written strictly in call order, whatever the concurrency: calls are
 * queued, and one writer drains the queue in batches. `write` is buffered (failures go to
 * `onError`); `writeDurable` resolves only after its record is written and `fdatasync`ed, and
 * rejects with `audit_unavailable` otherwise. A failed write is cut back out of the file and the
 * chain rolled back, so the file stays one unbroken chain; after a failed flush (the kernel may
 * have dropped the written pages) or a failed cut, the sink refuses everything until reopened.
 * Events handed to `write` that never made it into the file (a failed write: disk full, an event
 * that cannot be chained) are not forgotten: the next successful write chains a gap record
 * (`trustplane-ledger-gap-v1`, reason `ledger_event_dropped`, `lost` = their count) before its
 * own records, so `trustplane audit verify` reports them.
 *
 * One process per file: `open` takes `<path>.lock` (pid and start time; a lock left by a dead
 * process is taken over).
 *
 * @example
 * const ledger = await FileLedgerSink.open('/var/log/trustplane/ledger.jsonl', { chainId: 'adapter-1', onError: (e) => log.error(e.message) })
 * ledger.write(event)
 * await ledger.writeDurable(allowEvent) // throws audit_unavailable when it cannot be made durable
 * await ledger.close()
 */
export class FileLedgerSink implements AuditSink {
  /** The ledger file. */
  readonly path: string;
  readonly #handle: FileHandle;
  readonly #lock: FileLockHandle;
  readonly #fsync: LedgerFsyncMode;
  readonly #onError: ((error: Error) => void) | undefined;
  /** False for a FIFO or device: nothing to cut back after a failed write. */
  readonly #regular: boolean;
  #chain: HashChain;
  /** Head of the last record in the file. */
  #written: ChainHead;
  /** File size: every byte up to here belongs to a complete record. */
  #bytes: number;
  readonly #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  #failure: TrustplaneError | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  #dirty = false;
  #syncTimer: NodeJS.Timeout | undefined;
  #pendingGap: PendingGap | undefined;
  /** The last write(2) failed (cut back out): set until one succeeds. */
  #lastWriteFailed = false;

  private constructor(
    path: string,
    handle: FileHandle,
    lock: FileLockHandle,
    options: FileLedgerSinkOptions,
    head: ChainHead,
    bytes: number,
    regular: boolean,
  ) {
    this.path = path;
    this.#handle = handle;
    this.#lock = lock;
    this.#fsync = options.fsync ?? 'interval';
    this.#onError = options.onError;
    this.#regular = regular;
    this.#chain = new HashChain(head);
    this.#written = head;
    this.#bytes = bytes;
  }

  /**
   * Open (or create, mode 0600, parent directories included) a ledger file and resume its chain.
   * A FIFO or device (no tail to read back) starts at genesis.
   * @param path the ledger file; `<path>.lock` is used next to it
   * @param options `chainId` (required), `fsync` policy, `onError`
   * @returns the open sink (close it with {@link FileLedgerSink.close})
   * @throws {@link LedgerError} `ledger_chain_mismatch` when the file holds another chain,
   *   `audit_chain_broken` when its last record is corrupt (check it with
   *   `trustplane audit verify --file`); Error naming the file when another live process holds it
   *   or it cannot be opened
   * @throws TypeError or RangeError for invalid options
   * @example
   * const ledger = await FileLedgerSink.open('data/ledger.jsonl', { chainId: 'adapter-1', fsync: 'always' })
   */
  static async open(path: string, options: FileLedgerSinkOptions): Promise<FileLedgerSink> {
    if (typeof path !== 'string' || path === '')
      throw new TypeError('ledger path must be a non-empty string');
    if (typeof options?.chainId !== 'string' || options.chainId === '' || options.chainId.length > 256) {
      throw new TypeError('chainId must be a string of 1 to 256 characters');
    }
    if (options.fsync !== undefined && !FSYNC_MODES.has(options.fsync)) {
      throw new RangeError("fsync must be 'always', 'interval' or 'never'");
    }
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new TypeError('onError must be a function');
    }
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const lock = acquireFileLock(path, {
      subject: `audit ledger ${path}`,
      busyHint: 'one process writes a ledger file: give each instance its own file',
    });
    let handle: FileHandle | undefined;
    try {
      const created = await stat(path).then(
        () => false,
        (e: unknown) => {
          if (errorCode(e) === 'ENOENT') return true;
          throw e;
        },
      );
      handle = await open(path, 'a+', 0o600);
      if (created) await syncDirectory(dirname(path));
      const info = await handle.stat();
      let head: ChainHead = { chainId: options.chainId, seq: 0, hash: GENESIS_HASH };
      let bytes = 0;
      if (info.isFile()) {
        const tail = await readTail(handle, info.size, path);
        if (tail.keep < info.size) {
          await handle.truncate(tail.keep);
          await handle.datasync();
          options.onError?.(
            new LedgerError(
              'ledger_records_lost',
              `audit ledger ${path}: dropped a torn last line (${info.size - tail.keep} bytes without a newline, left by a crash)`,
              { sink: 'file', path },
            ),
          );
        }
        if (tail.last !== undefined) head = tailHead(tail.last, path, options.chainId);
        bytes = tail.keep;
      }
      return new FileLedgerSink(path, handle, lock, options, head, bytes, info.isFile());
    } catch (e) {
      await handle?.close().catch(() => undefined);
      releaseFileLock(lock);
      throw e;
    }
  }

  /** The chain head of the last record written to the file. */
  get head(): ChainHead {
    return this.#written;
  }

  /** False once the sink is closed or failed (a durable write cannot succeed until reopened). */
  get durableAvailable(): boolean {
    return !this.#closed && this.#failure === undefined;
  }

  /** Events that did not make it into the file and wait for their gap record. */
  get pendingLost(): number {
    return this.#pendingGap?.lost ?? 0;
  }

  /**
   * Readiness: `write_failed` after a failed flush or cut (refusing everything until reopened) and
   * while the last write failed (disk full, I/O error: events are being lost, counted for the next
   * gap record).
   */
  health(): ComponentHealth {
    return this.#failure !== undefined || this.#lastWriteFailed ? unhealthy('write_failed') : HEALTHY;
  }

  /**
   * Chain and append `event` (buffered: written in the background, flushed by the `fsync` policy).
   * Never throws; a failure goes to `onError`.
   * @param event the audit event (chain fields in it are replaced)
   * @example
   * ledger.write(auditEventFromDecision(decision, { component: 'adapter' }))
   */
  write(event: AuditEvent): void {
    this.#enqueue({ event, durable: false });
  }

  /**
   * Chain and append `event`, then `fdatasync`: resolves once the record is on stable storage.
   * @param event the audit event (chain fields in it are replaced)
   * @returns a promise that resolves when the record is durable
   * @throws TrustplaneError `audit_unavailable` when the write or the flush failed, or the sink is
   *   closed or failed; TypeError when the event is not plain JSON
   * @example
   * await ledger.writeDurable(event)
   */
  writeDurable(event: AuditEvent): Promise<void> {
    return new Promise((resolve, reject) => this.#enqueue({ event, durable: true, resolve, reject }));
  }

  /**
   * Write everything handed over so far and `fdatasync` it.
   * @returns a promise that resolves when it is durable
   * @throws TrustplaneError `audit_unavailable` when that failed or the sink is closed or failed
   * @example
   * await ledger.flush()
   */
  flush(): Promise<void> {
    return new Promise((resolve, reject) => this.#enqueue({ durable: true, resolve, reject }));
  }

  /**
   * Flush, close the file and remove the lock. Idempotent; later writes fail.
   * @returns a promise that resolves once the file is closed
   * @throws TrustplaneError `audit_unavailable` when the final flush failed (the file and lock are
   *   released anyway)
   * @example
   * process.on('SIGTERM', () => void ledger.close())
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Refuse new writes, then write and flush everything queued before.
    this.#closed = true;
    if (this.#syncTimer !== undefined) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    const failedBefore = this.#failure !== undefined;
    let failure: unknown;
    await new Promise<void>((resolve, reject) => this.#push({ durable: true, resolve, reject })).catch(
      (e: unknown) => (failure = e),
    );
    while (this.#draining !== undefined) await this.#draining;
    await this.#handle.close().catch(() => undefined);
    releaseFileLock(this.#lock);
    if (failure !== undefined && !failedBefore) throw failure;
  }

  #enqueue(pending: Pending): void {
    if (this.#closed) this.#settle([pending], unavailable('audit ledger is closed', this.path));
    else this.#push(pending);
  }

  #push(pending: Pending): void {
    this.#queue.push(pending);
    this.#kick();
  }

  #kick(): void {
    if (this.#draining !== undefined || this.#queue.length === 0) return;
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined;
      this.#kick();
    });
  }

  async #drain(): Promise<void> {
    // Start after the caller's tick, so that writes made together share one write and one flush.
    await null;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, FILE_LEDGER_MAX_BATCH);
      try {
        await this.#writeBatch(batch);
      } catch (e) {
        this.#settle(batch, asError(e));
      }
    }
  }

  async #writeBatch(batch: Pending[]): Promise<void> {
    if (this.#failure !== undefined) return this.#settle(batch, this.#failure);
    const before = this.#chain.head;
    const lines: Buffer[] = [];
    const accepted: Pending[] = [];
    let sync = false;
    // Events lost earlier are recorded first, where they were lost: before anything written later
    // (at close even without an event to write: it is the last chance). Taken off the pending
    // count now, so that events failing in this batch start a new count.
    const gap = this.#closed || batch.some((p) => p.event !== undefined) ? this.#pendingGap : undefined;
    if (gap !== undefined) {
      this.#pendingGap = undefined;
      lines.push(
        Buffer.from(
          `${JSON.stringify(
            this.#chain.append(
              ledgerGapEvent({
                reason: 'ledger_event_dropped',
                lost: gap.lost,
                firstTime: gap.firstTime,
                lastTime: gap.lastTime,
                detail: `${gap.lost} audit events were not written to the ledger file (a failed write, or not chainable)`,
              }),
            ),
          )}\n`,
          'utf8',
        ),
      );
    }
    for (const pending of batch) {
      sync ||= pending.durable;
      if (pending.event === undefined) {
        accepted.push(pending);
        continue;
      }
      const head = this.#chain.head;
      try {
        const line = Buffer.from(`${this.#chain.appendLine(pending.event).line}\n`, 'utf8');
        if (line.length - 1 > MAX_LEDGER_LINE_BYTES) {
          throw new RangeError(`audit record longer than ${MAX_LEDGER_LINE_BYTES} bytes`);
        }
        lines.push(line);
        accepted.push(pending);
      } catch (e) {
        // Not chainable (not plain JSON, too long): refuse this event alone, keep the chain.
        this.#chain = new HashChain(head);
        this.#settle([pending], asError(e));
      }
    }
    if (lines.length > 0) {
      sync ||= this.#fsync === 'always';
      const data = Buffer.concat(lines);
      try {
        await writeAll(this.#handle, data);
      } catch (e) {
        this.#chain = new HashChain(before);
        // A partial line followed by later appends would break the chain for good: cut it off.
        let undone = false;
        if (this.#regular) {
          undone = await this.#handle.truncate(this.#bytes).then(
            () => true,
            () => false,
          );
        }
        if (!undone) this.#fail(e, 'audit ledger write failed and could not be undone');
        this.#lastWriteFailed = true;
        if (gap !== undefined) this.#countLost(gap.lost, gap.firstTime);
        return this.#settle(accepted, unavailable('audit ledger write failed', this.path, e));
      }
      this.#bytes += data.length;
      this.#written = this.#chain.head;
      this.#lastWriteFailed = false;
    }
    if (sync) {
      try {
        await this.#handle.datasync();
        this.#dirty = false;
      } catch (e) {
        // After a failed flush the kernel may have dropped the written pages: nothing written so
        // far can be trusted to be durable, so refuse until an operator reopens the ledger.
        return this.#settle(accepted, this.#fail(e, 'audit ledger flush failed'));
      }
    } else if (lines.length > 0 && this.#fsync === 'interval') {
      this.#dirty = true;
      this.#scheduleSync();
    }
    for (const pending of accepted) pending.resolve?.();
  }

  /** Reject the awaited entries; report the unawaited ones once to `onError`. */
  #settle(entries: readonly Pending[], error: Error): void {
    let unawaited = 0;
    for (const pending of entries) {
      if (pending.reject !== undefined) pending.reject(error);
      else if (pending.event !== undefined) unawaited++;
    }
    if (unawaited > 0) {
      this.#countLost(unawaited);
      const lost = unawaited === 1 ? '1 event' : `${unawaited} events`;
      // The sink could not write or flush (audit_unavailable), or the event itself cannot be chained.
      const reason = error instanceof TrustplaneError ? 'ledger_unavailable' : 'ledger_event_dropped';
      this.#report(
        Object.assign(
          new LedgerError(reason, `${error.message} (${lost} not durably recorded)`, {
            sink: 'file',
            path: this.path,
          }),
          { cause: error },
        ),
      );
    }
  }

  /** Count events that did not make it into the file, for the next gap record. */
  #countLost(lost: number, since?: string): void {
    const time = new Date().toISOString();
    const pending = this.#pendingGap;
    if (pending === undefined) {
      this.#pendingGap = { lost, firstTime: since ?? time, lastTime: time };
    } else {
      pending.lost += lost;
      pending.lastTime = time;
      if (since !== undefined && since < pending.firstTime)
        this.#pendingGap = { ...pending, firstTime: since };
    }
  }

  #report(error: Error): void {
    try {
      this.#onError?.(error);
    } catch {
      // a throwing error handler must not stop the writer
    }
  }

  #fail(cause: unknown, message: string): TrustplaneError {
    this.#failure ??= unavailable(message, this.path, cause);
    return this.#failure;
  }

  #scheduleSync(): void {
    if (this.#syncTimer !== undefined || this.#closed) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      if (!this.#dirty || this.#closed) return;
      // Through the queue, so the flush is ordered with the writes; failures go to onError.
      this.#enqueue({
        durable: true,
        resolve: () => undefined,
        reject: (e) => this.#report(e),
      });
    }, FILE_LEDGER_SYNC_INTERVAL_MS);
    this.#syncTimer.unref();
  }
}

function unavailable(message: string, path: string, cause?: unknown): TrustplaneError {
  const details: Record<string, string> = { sink: 'file', path };
  if (cause !== undefined) details.error = errorCode(cause);
  return new TrustplaneError(
    'audit_unavailable',
    cause !== undefined ? `${message} (${errorCode(cause)})` : message,
    details,
  );
}
