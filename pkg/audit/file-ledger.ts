import { createReadStream } from 'node:fs';
import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TrustplaneError } from '../authcore/errors.js';
import { acquireFileLock, releaseFileLock, type FileLockHandle } from '../internal/node/file-lock.js';
import { GENESIS_HASH, HashChain, ledgerRecordHash, type ChainHead } from './chain.js';
import type { AuditEvent, AuditSink } from './event.js';
import { UnreadableRecord } from './query.js';
import { StreamAuditSink } from './stream-sink.js';

/** Longest ledger line, in bytes without its newline: longer records are refused, longer lines unreadable. */
export const MAX_LEDGER_LINE_BYTES = 1024 * 1024;

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
   * Failures nobody awaits: a `write` that could not be chained or written, a background flush that
   * failed, and the torn last line `open` dropped. Count and log them.
   */
  readonly onError?: (error: Error) => void;
}

const SYNC_INTERVAL_MS = 1000;
const FSYNC_MODES: ReadonlySet<string> = new Set(['always', 'interval', 'never']);
/** Bytes read at a time when scanning the tail backwards. */
const TAIL_CHUNK = 64 * 1024;
/** Records written with one `write(2)` at most. */
const MAX_BATCH = 1024;

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
   * @throws Error naming the file when another live process holds it, when it holds another chain,
   *   or when its last record is corrupt (check it with `trustplane audit verify --file`)
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
            new Error(
              `audit ledger ${path}: dropped a torn last line (${info.size - tail.keep} bytes without a newline, left by a crash)`,
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
      const batch = this.#queue.splice(0, MAX_BATCH);
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
    for (const pending of batch) {
      sync ||= pending.durable;
      if (pending.event === undefined) {
        accepted.push(pending);
        continue;
      }
      const head = this.#chain.head;
      try {
        const line = Buffer.from(`${JSON.stringify(this.#chain.append(pending.event))}\n`, 'utf8');
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
        return this.#settle(accepted, unavailable('audit ledger write failed', this.path, e));
      }
      this.#bytes += data.length;
      this.#written = this.#chain.head;
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
      const lost = unawaited === 1 ? '1 event' : `${unawaited} events`;
      this.#report(
        Object.assign(new Error(`${error.message} (${lost} not durably recorded)`), { cause: error }),
      );
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
    }, SYNC_INTERVAL_MS);
    this.#syncTimer.unref();
  }
}

/** Options for {@link StdoutLedgerSink}. */
export interface StdoutLedgerSinkOptions {
  /**
   * The chain id. A stream cannot be read back to resume a chain, so every start begins a new
   * chain (at seq 1, or after `from`): use an id unique to this process life, e.g.
   * `${instance}-${startTime}`, or a collector will see one chain restart.
   */
  readonly chainId: string;
  /** Where lines go (default `process.stdout`). */
  readonly stream?: NodeJS.WritableStream;
  /** Continue a known chain instead of starting at genesis. */
  readonly from?: ChainHead;
  /** Called when an event cannot be chained or the stream fails. */
  readonly onError?: (error: Error) => void;
}

/**
 * Chained ledger records as JSON lines on a stream (stdout by default), for a log collector. It
 * has no `writeDurable`: a stream cannot be made durable, so `audit: "required"` routes need the
 * file or PostgreSQL ledger.
 * @example
 * const sink = new StdoutLedgerSink({ chainId: `adapter-1-${Date.now()}` })
 * sink.write(event)
 */
export class StdoutLedgerSink implements AuditSink {
  readonly #inner: StreamAuditSink;
  #chain: HashChain;
  readonly #onError: ((error: Error) => void) | undefined;

  /**
   * @param options `chainId` (required), `stream`, `from`, `onError`
   * @throws TypeError for a missing chain id or a `from` of another chain
   */
  constructor(options: StdoutLedgerSinkOptions) {
    if (typeof options?.chainId !== 'string' || options.chainId === '' || options.chainId.length > 256) {
      throw new TypeError('chainId must be a string of 1 to 256 characters');
    }
    if (options.from !== undefined && options.from.chainId !== options.chainId) {
      throw new TypeError('from must be a head of the same chain');
    }
    this.#onError = options.onError;
    this.#chain = new HashChain(options.from ?? { chainId: options.chainId, seq: 0, hash: GENESIS_HASH });
    this.#inner = new StreamAuditSink(options.stream, options.onError ? { onError: options.onError } : {});
  }

  /** The chain head after the last record written. */
  get head(): ChainHead {
    return this.#chain.head;
  }

  /**
   * Chain `event` and write it as one line. Never throws; failures go to `onError`.
   * @param event the audit event (chain fields in it are replaced)
   * @example
   * sink.write(event)
   */
  write(event: AuditEvent): void {
    let line: AuditEvent;
    const head = this.#chain.head;
    try {
      line = this.#chain.append(event);
    } catch (e) {
      this.#chain = new HashChain(head);
      this.#onError?.(asError(e));
      return;
    }
    this.#inner.write(line);
  }

  /** Wait until everything written so far is handed to the stream. */
  flush(): Promise<void> {
    return this.#inner.flush();
  }

  /** Flush (the stream itself is left open). */
  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** Options for {@link readLedgerFile}. */
export interface ReadLedgerFileOptions {
  /** Longest line read, in bytes (default {@link MAX_LEDGER_LINE_BYTES}). */
  readonly maxLineBytes?: number;
}

/**
 * Stream a ledger file, one value per line, in bounded memory: the parsed JSON of each line, or an
 * {@link UnreadableRecord} for a line that is empty, longer than the bound, not UTF-8, not JSON,
 * or not in the form the ledger writes it (`JSON.stringify`: so duplicate members, which other
 * JSON readers might resolve differently, are caught). Feed it to `verifyLedgerStream` (positions
 * are line numbers) or `queryRecords`.
 * @param path the ledger file
 * @param options `maxLineBytes`
 * @returns the values, in file order
 * @throws Error (while iterating) when the file cannot be read, e.g. ENOENT; RangeError for a bad
 *   `maxLineBytes`
 * @example
 * const result = await verifyLedgerStream(readLedgerFile('/var/log/trustplane/ledger.jsonl'))
 */
export async function* readLedgerFile(
  path: string,
  options: ReadLedgerFileOptions = {},
): AsyncGenerator<unknown> {
  const max = options.maxLineBytes ?? MAX_LEDGER_LINE_BYTES;
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxLineBytes must be a positive integer');
  const stream = createReadStream(path, { highWaterMark: TAIL_CHUNK });
  let parts: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  const take = (): unknown => {
    const value = tooLong ? new UnreadableRecord(`line longer than ${max} bytes`) : parseLine(parts, size);
    parts = [];
    size = 0;
    tooLong = false;
    return value;
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (;;) {
        const newline = chunk.indexOf(0x0a, start);
        const end = newline === -1 ? chunk.length : newline;
        if (!tooLong) {
          if (size + end - start > max) {
            tooLong = true;
            parts = [];
            size = 0;
          } else if (end > start) {
            parts.push(chunk.subarray(start, end));
            size += end - start;
          }
        }
        if (newline === -1) break;
        yield take();
        start = newline + 1;
      }
    }
    // A last line without its newline (a torn write, or a file being written): read it as it is.
    if (size > 0 || tooLong) yield take();
  } finally {
    stream.destroy();
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function parseLine(parts: readonly Buffer[], size: number): unknown {
  if (size === 0) return new UnreadableRecord('empty line');
  let text: string;
  try {
    text = UTF8.decode(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size));
  } catch {
    return new UnreadableRecord('line is not UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return new UnreadableRecord('line is not JSON');
  }
  if (JSON.stringify(value) !== text) {
    return new UnreadableRecord('line is not in ledger form (duplicate members, or reformatted)');
  }
  return value;
}

// ---- tail ----------------------------------------------------------------------------------------

interface Tail {
  /** Bytes to keep: the file up to and including the last newline. */
  readonly keep: number;
  /** The last complete line (without its newline), if any. */
  readonly last: string | undefined;
}

/** Find the last complete line and any torn bytes after it, reading backwards from the end only. */
async function readTail(handle: FileHandle, size: number, path: string): Promise<Tail> {
  if (size === 0) return { keep: 0, last: undefined };
  const newline = await lastNewline(handle, size, MAX_LEDGER_LINE_BYTES + 1);
  if (newline === undefined) {
    throw new Error(
      `audit ledger ${path} ends with more than ${MAX_LEDGER_LINE_BYTES} bytes without a newline; ` +
        'it is not a ledger file, or is corrupt: check it with trustplane audit verify and move it aside',
    );
  }
  const keep = newline + 1;
  if (keep === 0) return { keep, last: undefined };
  const previous = await lastNewline(handle, newline, MAX_LEDGER_LINE_BYTES + 1);
  if (previous === undefined) {
    throw new Error(
      `audit ledger ${path} ends with a line longer than ${MAX_LEDGER_LINE_BYTES} bytes; ` +
        'check it with trustplane audit verify and move it aside',
    );
  }
  const start = previous + 1;
  const line = Buffer.alloc(newline - start);
  await readExactly(handle, line, start);
  let text: string;
  try {
    text = UTF8.decode(line);
  } catch {
    text = '';
  }
  return { keep, last: text };
}

/**
 * Offset of the last newline before `before`, looking back at most `limit` bytes: -1 when the
 * file start is reached without one, undefined when the limit is.
 */
async function lastNewline(handle: FileHandle, before: number, limit: number): Promise<number | undefined> {
  const floor = Math.max(0, before - limit);
  let end = before;
  while (end > floor) {
    const length = Math.min(TAIL_CHUNK, end - floor);
    const chunk = Buffer.alloc(length);
    await readExactly(handle, chunk, end - length);
    const at = chunk.lastIndexOf(0x0a);
    if (at !== -1) return end - length + at;
    end -= length;
  }
  return floor === 0 ? -1 : undefined;
}

/** The head the last record leaves, after checking it is a sound record of `chainId`. */
function tailHead(line: string, path: string, chainId: string): ChainHead {
  const corrupt = (why: string) =>
    new Error(
      `audit ledger ${path} ends with a corrupt record (${why}); run trustplane audit verify --file ${path}, ` +
        'then restore the file or move it aside (a new chain is never started in a file that holds one)',
    );
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw corrupt('not JSON');
  }
  if (JSON.stringify(value) !== line) throw corrupt('not in ledger form');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw corrupt('not a JSON object');
  const r = value as Record<string, unknown>;
  if (
    typeof r.chain_id !== 'string' ||
    typeof r.seq !== 'number' ||
    !Number.isSafeInteger(r.seq) ||
    r.seq < 1 ||
    typeof r.record_hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(r.record_hash) ||
    typeof r.prev_hash !== 'string'
  ) {
    throw corrupt('missing or invalid chain_id, seq, prev_hash or record_hash');
  }
  let hash: string;
  try {
    hash = ledgerRecordHash(r);
  } catch {
    throw corrupt('not canonicalizable JSON');
  }
  if (hash !== r.record_hash) throw corrupt(`record seq ${r.seq} was modified (its hash does not match)`);
  if (r.chain_id !== chainId) {
    throw new Error(
      `audit ledger ${path} holds chain ${JSON.stringify(r.chain_id)}, not ${JSON.stringify(chainId)}; ` +
        'use the same chain id, or another file for a new chain',
    );
  }
  return { chainId, seq: r.seq, hash };
}

// ---- I/O helpers ---------------------------------------------------------------------------------

async function readExactly(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const { bytesRead } = await handle.read(buffer, offset, buffer.length - offset, position + offset);
    if (bytesRead === 0) throw Object.assign(new Error('unexpected end of file'), { code: 'EIO' });
    offset += bytesRead;
  }
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    offset += bytesWritten;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function errorCode(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string') return e.code;
  return 'EIO';
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
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
