import { constants, createReadStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { acquireFileLock, releaseFileLock, type FileLockHandle } from '../internal/node/file-lock.js';
import type { LedgerEntry } from './chain.js';
import { syncDirectoryBestEffort, writeAll } from './ledger-file-io.js';

/** Most records appended (and fsync'd) by one write: a failing write holds back at most these. */
export const SPILL_GROUP_RECORDS = 256;
/** Most bytes appended by one write (a single larger record still goes alone). */
export const SPILL_GROUP_BYTES = 256 * 1024;
/** First wait before retrying a failed append; it doubles up to {@link SPILL_MAX_RETRY_MS}. */
const SPILL_FIRST_RETRY_MS = 100;
const SPILL_MAX_RETRY_MS = 2_000;
/** Bytes read at a time when records are set aside. */
const COPY_CHUNK = 1 << 20;

/** Options for {@link SpillBuffer.open}. */
export interface SpillBufferOptions {
  /** Refuse a file whose records belong to another chain (a spill file serves one chain). */
  readonly chainId?: string;
  /** Called when a background append or fsync fails (the records stay staged and are retried). */
  readonly onWriteError?: (error: Error) => void;
  /** Called after a group was appended and fsync'd (after a failure too: the write recovered). */
  readonly onWritten?: () => void;
}

/** What {@link SpillBuffer.setAside} moved out of the spill file. */
export interface SetAsideResult {
  /** The file now holding the records (created 0600, fsync'd). */
  readonly path: string;
  readonly count: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly firstTime?: string;
  readonly lastTime?: string;
}

interface Staged {
  readonly record: LedgerEntry;
  readonly line: Buffer;
}

const NEWLINE = 0x0a;

/**
 * A first-in first-out queue of ledger records on disk: one JSON line per record, appended and
 * fsync'd before it counts as spilled, read back in the order written. The PostgreSQL ledger sink
 * moves records here as soon as PostgreSQL is unavailable (or slow), so an outage loses nothing,
 * not even across a crash or a restart.
 *
 * Appends are incremental: records are written in groups of at most {@link SPILL_GROUP_RECORDS}
 * records / {@link SPILL_GROUP_BYTES} bytes, each appended and fsync'd on its own, so a nearly full
 * disk still takes what fits. A failed group is cut back out of the file (no torn line is left in
 * the middle) and stays staged in memory; it is retried with a growing delay (100 ms to 2 s).
 *
 * Consumed records are not erased one by one: the read position lives in memory and the file is
 * truncated once everything in it was consumed. After a crash the whole file is read again; the
 * sink skips what PostgreSQL already holds (same `seq` and hash), so re-reading is harmless.
 *
 * One process per file. Not a general-purpose queue: it only holds JSON objects.
 * @example
 * const spill = await SpillBuffer.open('/var/lib/trustplane/ledger.spill', { chainId: 'adapter-1' })
 * spill.push(record); await spill.sync()
 * const batch = await spill.peek(200); ...; await spill.consume(batch.length)
 */
export class SpillBuffer {
  readonly path: string;
  readonly #file: FileHandle;
  readonly #chainId: string | undefined;
  readonly #lock: FileLockHandle;
  readonly #onWriteError: ((error: Error) => void) | undefined;
  readonly #onWritten: (() => void) | undefined;
  /** Byte length of each unread line in the file (from `#lengthsHead` on). */
  #lengths: number[];
  #lengthsHead = 0;
  #readOffset: number;
  #fileSize: number;
  /** Pushed but not yet in the file (logically after every file record). */
  #staged: Staged[] = [];
  #last: LedgerEntry | undefined;
  /** The seq of the last record in the file (written and fsync'd), 0 when it is empty. */
  #fileLastSeq: number;
  /** Index (in the file as opened) of the first record that does not link to the one before. */
  readonly #discontinuity: number | undefined;
  /** Serializes file operations: appends, reads and truncation never interleave. */
  #queue: Promise<void> = Promise.resolve();
  #writing: Promise<void> | undefined;
  #writeError: Error | undefined;
  #retryDelay = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(
    path: string,
    file: FileHandle,
    lock: FileLockHandle,
    options: SpillBufferOptions,
    scanned: ScanResult,
  ) {
    this.path = path;
    this.#file = file;
    this.#lock = lock;
    this.#chainId = options.chainId;
    this.#onWriteError = options.onWriteError;
    this.#onWritten = options.onWritten;
    this.#lengths = scanned.lengths;
    this.#readOffset = 0;
    this.#fileSize = scanned.validSize;
    this.#last = scanned.last;
    this.#fileLastSeq = scanned.last?.seq ?? 0;
    this.#discontinuity = scanned.discontinuity;
  }

  /**
   * Open (or create, mode 0600, parent directory created) a spill file and index the records it
   * already holds. A torn last line (a crash in the middle of an append that was never fsync'd
   * and acknowledged) is cut off; any other unreadable line is an error, so a damaged file stops
   * the sink instead of silently dropping records. The file is locked (`<path>.lock`) against a
   * second writer.
   * @param path the spill file
   * @returns the buffer, positioned at its first record
   * @throws Error when a line is not a JSON object or belongs to another chain, or another live
   *   process holds the file
   */
  static async open(path: string, options: SpillBufferOptions = {}): Promise<SpillBuffer> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const lock = acquireFileLock(path, {
      subject: `audit spill file ${path}`,
      busyHint: 'give each ledger sink its own spill file',
    });
    let file: FileHandle | undefined;
    try {
      file = await open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
      const scanned = await scan(path, options.chainId);
      if (scanned.validSize < scanned.size) {
        await file.truncate(scanned.validSize);
        await file.sync();
      }
      await syncDirectoryBestEffort(dirname(path));
      return new SpillBuffer(path, file, lock, options, scanned);
    } catch (e) {
      await file?.close();
      releaseFileLock(lock);
      throw e;
    }
  }

  /** Records not yet consumed (in the file and staged). */
  get size(): number {
    return this.#lengths.length - this.#lengthsHead + this.#staged.length;
  }

  /** Records in the file not yet consumed (the rest of {@link size} is staged). */
  get fileRecords(): number {
    return this.#lengths.length - this.#lengthsHead;
  }

  /** Records pushed but not yet written and fsync'd. */
  get stagedCount(): number {
    return this.#staged.length;
  }

  /** True while records wait for an append that failed (until one succeeds again). */
  get writeFailing(): boolean {
    return this.#writeError !== undefined && this.#staged.length > 0;
  }

  /**
   * The seq of the last record the file holds (appended and fsync'd; consumed ones included until
   * the file is emptied), 0 when it holds none: with the committed seq, what survives a crash.
   */
  get durableSeq(): number {
    return this.#fileLastSeq;
  }

  /** The oldest record pushed and not yet in the file. */
  get firstStaged(): LedgerEntry | undefined {
    return this.#staged[0]?.record;
  }

  /** The last record ever pushed and not truncated away (also after reopening). */
  get last(): LedgerEntry | undefined {
    return this.#last;
  }

  /**
   * As opened, before anything was consumed: the index of the first record whose `seq` or
   * `prev_hash` does not continue the record before it (records appended by another life of the
   * chain, or damage), or undefined when the file is one run.
   */
  get discontinuity(): number | undefined {
    return this.#discontinuity;
  }

  /**
   * Queue a record at the end. It is written and fsync'd in the background, in groups; {@link sync}
   * waits for that. After a failed append the next attempt waits for the retry delay.
   */
  push(record: LedgerEntry): void {
    if (this.#closed) throw new Error('the spill buffer is closed');
    if (this.#chainId !== undefined && record.chain_id !== this.#chainId) {
      throw new TypeError('the record belongs to another chain than this spill file');
    }
    this.#staged.push({ record, line: Buffer.from(`${JSON.stringify(record)}\n`, 'utf8') });
    this.#last = record;
    if (this.#writeError === undefined) this.#writing ??= this.#writeStaged();
    else this.#scheduleRetry();
  }

  /**
   * Wait until every record pushed so far is written and fsync'd (trying at once, also right after
   * a failure).
   * @throws Error when the write or fsync failed (the records stay staged and are retried)
   */
  async sync(): Promise<void> {
    while (this.#staged.length > 0) {
      this.#writing ??= this.#writeStaged();
      await this.#writing;
      if (this.#writeError) throw this.#writeError;
    }
  }

  /** The first `n` records in order, without removing them. */
  peek(n: number): Promise<LedgerEntry[]> {
    return this.peekAt(0, n);
  }

  /** `n` records from the `index`-th unconsumed one on, without removing them. */
  peekAt(index: number, n: number): Promise<LedgerEntry[]> {
    return this.#locked(async () => {
      const inFileLeft = this.#lengths.length - this.#lengthsHead;
      const out = index < inFileLeft ? await this.#readFile(index, Math.min(n, inFileLeft - index)) : [];
      for (let i = Math.max(0, index - inFileLeft); out.length < n && i < this.#staged.length; i++) {
        const staged = this.#staged[i];
        if (staged) out.push(staged.record);
      }
      return out;
    });
  }

  /**
   * Remove the first `n` records (after they were committed elsewhere). When nothing is left, the
   * file is truncated to zero.
   */
  consume(n: number): Promise<void> {
    return this.#locked(async () => {
      let left = n;
      while (left > 0 && this.#lengthsHead < this.#lengths.length) {
        this.#readOffset += this.#lengths[this.#lengthsHead] ?? 0;
        this.#lengthsHead++;
        left--;
      }
      if (left > 0) this.#staged.splice(0, left);
      if (this.#lengthsHead > 4096 && this.#lengthsHead * 2 > this.#lengths.length) {
        this.#lengths = this.#lengths.slice(this.#lengthsHead);
        this.#lengthsHead = 0;
      }
      if (this.#lengthsHead === this.#lengths.length && this.#staged.length === 0 && this.#fileSize > 0) {
        await this.#file.truncate(0);
        await this.#file.sync();
        this.#lengths = [];
        this.#lengthsHead = 0;
        this.#readOffset = 0;
        this.#fileSize = 0;
        this.#last = undefined;
        this.#fileLastSeq = 0;
      }
    });
  }

  /**
   * Move every file record from the `index`-th unconsumed one on into a new file `path` (created
   * 0600, exclusive, fsync'd with its directory), then cut them from the spill file. Used for
   * records that cannot join the committed chain (a fork loser's): they are kept, never dropped.
   * Only while nothing is staged (at open).
   * @returns what was moved, or undefined when there was nothing from `index` on
   * @throws Error when records are staged or a write fails (the spill file is then left as it was)
   */
  setAside(index: number, path: string): Promise<SetAsideResult | undefined> {
    return this.#locked(async () => {
      if (this.#staged.length > 0) throw new Error('records are staged: set aside only at open');
      const count = this.#lengths.length - this.#lengthsHead - index;
      if (index < 0 || count <= 0) return undefined;
      const [first] = await this.#readFile(index, 1);
      const [lastRecord] = await this.#readFile(index + count - 1, 1);
      const before = index > 0 ? (await this.#readFile(index - 1, 1))[0] : undefined;
      let offset = this.#readOffset;
      for (let i = 0; i < index; i++) offset += this.#lengths[this.#lengthsHead + i] ?? 0;
      const out = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        const buffer = Buffer.alloc(Math.min(COPY_CHUNK, this.#fileSize - offset));
        for (let at = offset; at < this.#fileSize;) {
          const want = Math.min(buffer.length, this.#fileSize - at);
          const { bytesRead } = await this.#file.read(buffer, 0, want, at);
          if (bytesRead === 0) throw new Error('the spill file is shorter than its index');
          await writeAll(out, buffer.subarray(0, bytesRead));
          at += bytesRead;
        }
        await out.sync();
      } finally {
        await out.close();
      }
      await syncDirectoryBestEffort(dirname(path));
      await this.#file.truncate(offset);
      await this.#file.sync();
      this.#lengths.splice(this.#lengthsHead + index);
      this.#fileSize = offset;
      this.#last = before;
      this.#fileLastSeq = before?.seq ?? 0;
      if (first === undefined || lastRecord === undefined) throw new Error('the spill file index is wrong');
      const firstTime = typeof first.time === 'string' ? first.time : undefined;
      const lastTime = typeof lastRecord.time === 'string' ? lastRecord.time : undefined;
      return {
        path,
        count,
        firstSeq: first.seq,
        lastSeq: lastRecord.seq,
        ...(firstTime !== undefined ? { firstTime } : {}),
        ...(lastTime !== undefined ? { lastTime } : {}),
      };
    });
  }

  /** Write what is staged (best effort) and close the file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    try {
      await this.sync();
    } finally {
      this.#closed = true;
      try {
        await this.#locked(() => this.#file.close());
      } finally {
        releaseFileLock(this.#lock);
      }
    }
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** `n` file records from the `index`-th unconsumed one (call it inside `#locked`). */
  async #readFile(index: number, n: number): Promise<LedgerEntry[]> {
    if (n <= 0) return [];
    let position = this.#readOffset;
    for (let i = 0; i < index; i++) position += this.#lengths[this.#lengthsHead + i] ?? 0;
    let bytes = 0;
    for (let i = 0; i < n; i++) bytes += this.#lengths[this.#lengthsHead + index + i] ?? 0;
    const buffer = Buffer.alloc(bytes);
    let done = 0;
    while (done < bytes) {
      const { bytesRead } = await this.#file.read(buffer, done, bytes - done, position + done);
      if (bytesRead === 0) throw new Error('the spill file is shorter than its index');
      done += bytesRead;
    }
    const out: LedgerEntry[] = [];
    let start = 0;
    for (let i = 0; i < n; i++) {
      const end = start + (this.#lengths[this.#lengthsHead + index + i] ?? 0);
      out.push(parseLine(buffer.subarray(start, end - 1), this.#chainId));
      start = end;
    }
    return out;
  }

  async #writeStaged(): Promise<void> {
    try {
      while (await this.#locked(() => this.#writeGroup())) {
        // next group
      }
    } catch (e) {
      this.#writeError = e instanceof Error ? e : new Error(String(e));
      this.#retryDelay = Math.min(SPILL_MAX_RETRY_MS, Math.max(SPILL_FIRST_RETRY_MS, this.#retryDelay * 2));
      this.#onWriteError?.(this.#writeError);
    } finally {
      this.#writing = undefined;
    }
    if (this.#writeError !== undefined) {
      this.#scheduleRetry();
    } else if (this.#staged.length > 0 && !this.#closed) {
      // Pushed while the last group was being written.
      this.#writing = this.#writeStaged();
    }
  }

  /** Append and fsync the next group; true when more is staged. */
  async #writeGroup(): Promise<boolean> {
    let count = 0;
    let bytes = 0;
    for (const s of this.#staged) {
      if (count > 0 && (count >= SPILL_GROUP_RECORDS || bytes + s.line.length > SPILL_GROUP_BYTES)) break;
      count++;
      bytes += s.line.length;
    }
    if (count === 0) return false;
    const group = this.#staged.slice(0, count);
    const data = group.length === 1 ? group[0]!.line : Buffer.concat(group.map((s) => s.line));
    let written = 0;
    try {
      while (written < data.length) {
        const { bytesWritten } = await this.#file.write(data, written, data.length - written);
        written += bytesWritten;
      }
      await this.#file.sync();
    } catch (e) {
      // A partial append would leave a torn line in the middle of the file: cut it off.
      if (written > 0) await this.#file.truncate(this.#fileSize).catch(() => undefined);
      throw e;
    }
    this.#fileSize += data.length;
    for (const s of group) this.#lengths.push(s.line.length);
    this.#fileLastSeq = group[group.length - 1]?.record.seq ?? this.#fileLastSeq;
    this.#staged.splice(0, count);
    this.#writeError = undefined;
    this.#retryDelay = 0;
    this.#onWritten?.();
    return this.#staged.length > 0;
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || this.#closed || this.#staged.length === 0) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (!this.#closed && this.#staged.length > 0) this.#writing ??= this.#writeStaged();
    }, this.#retryDelay || SPILL_FIRST_RETRY_MS);
    this.#retryTimer.unref();
  }
}

function parseLine(line: Buffer, chainId: string | undefined): LedgerEntry {
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch {
    throw new Error('the spill file holds a line that is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('the spill file holds a line that is not a JSON object');
  }
  const record = value as LedgerEntry;
  if (
    typeof record.seq !== 'number' ||
    typeof record.chain_id !== 'string' ||
    typeof record.prev_hash !== 'string' ||
    typeof record.record_hash !== 'string'
  ) {
    throw new Error('the spill file holds a line that is not a ledger record');
  }
  if (chainId !== undefined && record.chain_id !== chainId) {
    throw new Error('the spill file holds records of another chain');
  }
  return record;
}

interface ScanResult {
  readonly lengths: number[];
  readonly size: number;
  readonly validSize: number;
  readonly last: LedgerEntry | undefined;
  readonly discontinuity: number | undefined;
}

async function scan(path: string, chainId: string | undefined): Promise<ScanResult> {
  const lengths: number[] = [];
  let size = 0;
  let validSize = 0;
  let last: LedgerEntry | undefined;
  let discontinuity: number | undefined;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    let start = 0;
    for (let i = buffer.indexOf(NEWLINE); i !== -1; i = buffer.indexOf(NEWLINE, start)) {
      const piece = buffer.subarray(start, i);
      const line = pendingBytes > 0 ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      pendingBytes = 0;
      let record: LedgerEntry;
      try {
        record = parseLine(line, chainId);
      } catch (e) {
        throw new Error(`${(e as Error).message} (record ${lengths.length + 1} of ${path})`);
      }
      if (
        discontinuity === undefined &&
        last !== undefined &&
        (record.seq !== last.seq + 1 || record.prev_hash !== last.record_hash)
      ) {
        discontinuity = lengths.length;
      }
      last = record;
      lengths.push(line.length + 1);
      validSize += line.length + 1;
      start = i + 1;
    }
    if (start < buffer.length) {
      pending.push(buffer.subarray(start));
      pendingBytes += buffer.length - start;
    }
  }
  return { lengths, size, validSize, last, discontinuity };
}
