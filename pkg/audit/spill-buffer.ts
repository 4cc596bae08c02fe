import { constants, createReadStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { acquireFileLock, releaseFileLock, type FileLockHandle } from '../internal/node/file-lock.js';
import type { LedgerRecord } from './chain.js';

/** Options for {@link SpillBuffer.open}. */
export interface SpillBufferOptions {
  /** Refuse a file whose records belong to another chain (a spill file serves one chain). */
  readonly chainId?: string;
  /** Called when a background append or fsync fails (the records stay staged and are retried). */
  readonly onWriteError?: (error: Error) => void;
}

interface Staged {
  readonly record: LedgerRecord;
  readonly line: Buffer;
}

const NEWLINE = 0x0a;

/**
 * A first-in first-out queue of ledger records on disk: one JSON line per record, appended and
 * fsync'd before it counts as spilled, read back in the order written. The PostgreSQL ledger sink
 * moves records here when its memory buffer is full (PostgreSQL unreachable), so an outage longer
 * than memory allows loses nothing, not even across a restart.
 *
 * Consumed records are not erased one by one: the read position lives in memory and the file is
 * truncated once everything in it was consumed. After a crash the whole file is read again; the
 * sink skips what PostgreSQL already holds (by `seq`), so re-reading is harmless.
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
  /** Byte length of each unread line in the file (from `#lengthsHead` on). */
  #lengths: number[];
  #lengthsHead = 0;
  #readOffset: number;
  #fileSize: number;
  /** Pushed but not yet in the file (logically after every file record). */
  #staged: Staged[] = [];
  #last: LedgerRecord | undefined;
  /** Serializes file operations: appends, reads and truncation never interleave. */
  #queue: Promise<void> = Promise.resolve();
  #writing: Promise<void> | undefined;
  #writeError: Error | undefined;
  #closed = false;

  private constructor(
    path: string,
    file: FileHandle,
    lock: FileLockHandle,
    options: SpillBufferOptions,
    lengths: number[],
    size: number,
    last: LedgerRecord | undefined,
  ) {
    this.path = path;
    this.#file = file;
    this.#lock = lock;
    this.#chainId = options.chainId;
    this.#onWriteError = options.onWriteError;
    this.#lengths = lengths;
    this.#readOffset = 0;
    this.#fileSize = size;
    this.#last = last;
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
      const { lengths, size, last, validSize } = await scan(path, options.chainId);
      if (validSize < size) {
        await file.truncate(validSize);
        await file.sync();
      }
      await syncDirectory(dirname(path));
      return new SpillBuffer(path, file, lock, options, lengths, validSize, last);
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

  /** Records pushed but not yet written and fsync'd. */
  get stagedCount(): number {
    return this.#staged.length;
  }

  /** True after a background append or fsync failed, until one succeeds again. */
  get writeFailing(): boolean {
    return this.#writeError !== undefined;
  }

  /** The last record ever pushed and not truncated away (also after reopening). */
  get last(): LedgerRecord | undefined {
    return this.#last;
  }

  /**
   * Queue a record at the end. It is written and fsync'd in the background (several pushes share
   * one write); {@link sync} waits for that.
   */
  push(record: LedgerRecord): void {
    if (this.#closed) throw new Error('the spill buffer is closed');
    if (this.#chainId !== undefined && record.chain_id !== this.#chainId) {
      throw new TypeError('the record belongs to another chain than this spill file');
    }
    this.#staged.push({ record, line: Buffer.from(`${JSON.stringify(record)}\n`, 'utf8') });
    this.#last = record;
    this.#writing ??= this.#writeStaged();
  }

  /**
   * Wait until every record pushed so far is written and fsync'd.
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
  peek(n: number): Promise<LedgerRecord[]> {
    return this.#locked(async () => {
      const out: LedgerRecord[] = [];
      const inFile = Math.min(n, this.#lengths.length - this.#lengthsHead);
      if (inFile > 0) {
        let bytes = 0;
        for (let i = 0; i < inFile; i++) bytes += this.#lengths[this.#lengthsHead + i] ?? 0;
        const buffer = Buffer.alloc(bytes);
        let done = 0;
        while (done < bytes) {
          const { bytesRead } = await this.#file.read(buffer, done, bytes - done, this.#readOffset + done);
          if (bytesRead === 0) throw new Error('the spill file is shorter than its index');
          done += bytesRead;
        }
        let start = 0;
        for (let i = 0; i < inFile; i++) {
          const end = start + (this.#lengths[this.#lengthsHead + i] ?? 0);
          out.push(parseLine(buffer.subarray(start, end - 1), this.#chainId));
          start = end;
        }
      }
      for (let i = 0; out.length < n && i < this.#staged.length; i++) {
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
      }
    });
  }

  /** Write what is staged (best effort) and close the file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
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

  async #writeStaged(): Promise<void> {
    try {
      await this.#locked(async () => {
        const batch = this.#staged.slice();
        if (batch.length === 0) return;
        const data = Buffer.concat(batch.map((s) => s.line));
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
        for (const s of batch) this.#lengths.push(s.line.length);
        this.#staged.splice(0, batch.length);
        this.#writeError = undefined;
      });
    } catch (e) {
      this.#writeError = e instanceof Error ? e : new Error(String(e));
      this.#onWriteError?.(this.#writeError);
    } finally {
      this.#writing = undefined;
    }
    // Pushed while this write was in progress: write them too (after a failure, the next push or
    // sync retries instead, so a broken disk is not hammered).
    if (this.#writeError === undefined && this.#staged.length > 0 && !this.#closed) {
      this.#writing = this.#writeStaged();
    }
  }
}

function parseLine(line: Buffer, chainId: string | undefined): LedgerRecord {
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch {
    throw new Error('the spill file holds a line that is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('the spill file holds a line that is not a JSON object');
  }
  const record = value as LedgerRecord;
  if (typeof record.seq !== 'number' || typeof record.chain_id !== 'string') {
    throw new Error('the spill file holds a line that is not a ledger record');
  }
  if (chainId !== undefined && record.chain_id !== chainId) {
    throw new Error('the spill file holds records of another chain');
  }
  return record;
}

async function scan(
  path: string,
  chainId: string | undefined,
): Promise<{ lengths: number[]; size: number; validSize: number; last: LedgerRecord | undefined }> {
  const lengths: number[] = [];
  let size = 0;
  let validSize = 0;
  let last: LedgerRecord | undefined;
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
      try {
        last = parseLine(line, chainId);
      } catch (e) {
        throw new Error(`${(e as Error).message} (record ${lengths.length + 1} of ${path})`);
      }
      lengths.push(line.length + 1);
      validSize += line.length + 1;
      start = i + 1;
    }
    if (start < buffer.length) {
      pending.push(buffer.subarray(start));
      pendingBytes += buffer.length - start;
    }
  }
  return { lengths, size, validSize, last };
}

async function syncDirectory(dir: string): Promise<void> {
  // Makes the file's directory entry durable; some platforms cannot open a directory: best effort.
  try {
    const handle = await open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // ignore
  }
}
