import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Encoder } from 'cbor-x';
import { TrustplaneError } from '../authcore/errors.js';
import { assertReplayArguments, type ReplayStore } from '../authcore/replay-store.js';
import { MemoryReplayStore } from '../authcore/memory-replay-store.js';
import { acquireFileLock, releaseFileLock, type FileLockHandle } from '../internal/node/file-lock.js';
import { readJournal } from './journal-reader.js';

/**
 * When the journal is flushed to stable storage.
 * - `always`: `fdatasync` before every `consume` resolves `true` (survives a machine crash; costs a
 *   disk flush per request).
 * - `interval` (default): `fdatasync` in the background at most every 100 ms. A process crash loses
 *   nothing (the record is in the kernel page cache once `write` returns); a machine crash or power
 *   loss can lose the last ~100 ms of consumed jtis.
 * - `never`: leave flushing to the kernel (process crashes are still covered; machine crashes are not).
 */
export type JournalFsyncMode = 'always' | 'interval' | 'never';

/** Options for {@link JournalReplayStore.open}. */
export interface JournalReplayStoreOptions {
  /** Most live entries held (default 1,000,000); when full of unexpired entries, consume fails closed. */
  readonly maxEntries?: number;
  /**
   * Most live entries one scope (issuer + subject) may hold (default a quarter of `maxEntries`;
   * entries reloaded from the journal are not attributed to a scope).
   */
  readonly maxEntriesPerScope?: number;
  /** Flush policy (default `interval`); see {@link JournalFsyncMode}. */
  readonly fsync?: JournalFsyncMode;
  /** Clock in epoch seconds, used when loading the journal to drop expired entries (default: system clock). */
  readonly now?: () => number;
}

/**
 * The key of the horizon record (`['', horizon]`): real keys are never empty. It carries the time up
 * to which the store dropped expired keys (see `MemoryReplayStore.horizon`).
 */
const HORIZON_KEY = '';

/** Background flush period for `fsync: 'interval'`. */
const SYNC_INTERVAL_MS = 100;
/** Below this many journal records, runtime compaction never runs. */
const COMPACT_MIN_RECORDS = 10_000;
const FSYNC_MODES: ReadonlySet<string> = new Set(['always', 'interval', 'never']);

/**
 * A single-process replay store that survives a restart: a {@link MemoryReplayStore} plus an
 * append-only journal of CBOR records `[key, expiresAt]` (a CBOR sequence, RFC 8742).
 *
 * Every first-use `consume` appends its record with `write(2)` before resolving `true`; if the write
 * fails, `consume` rejects with `replay_store_unavailable` and never answers `true`. On a write
 * failure the key stays marked as used in memory (a retry of that jti is refused as a replay rather
 * than risking a double accept). If the failed write cannot be rolled back, or a flush fails, the
 * store stays unavailable (every `consume` and `ping` rejects) until it is reopened.
 *
 * `open` loads the unexpired entries, tolerates a truncated last record (a crash mid-append) or a
 * zero-filled tail (a machine crash on some filesystems), refuses a journal corrupt anywhere else,
 * and compacts the file. The journal is compacted again when it
 * holds more than max(10,000, 2 × live entries) records.
 *
 * One process per journal: `open` takes a lock file (`<path>.lock`, holding the pid) and refuses
 * while its holder is alive, which is how an adapter refuses to run several workers on one memory
 * store. A lock left by a dead process is taken over.
 *
 * @example
 * const store = await JournalReplayStore.open('/var/lib/trustplane/replay.cbor')
 * if (!(await store.consume(key, exp + skew, nowSeconds))) throw new TrustplaneError('jti_replay', 'passport jti already used')
 * await store.close()
 */
export class JournalReplayStore implements ReplayStore {
  /** The journal file. */
  readonly path: string;
  readonly #memory: MemoryReplayStore;
  readonly #fsync: JournalFsyncMode;
  readonly #lock: FileLockHandle;
  readonly #encoder = new Encoder({ useRecords: false });
  #fd: number | undefined;
  /** Size of the journal: every byte up to here belongs to a complete record. */
  #bytes = 0;
  /** Records in the journal file (live, expired and superseded). */
  #records = 0;
  #compactRetryAt = 0;
  /** Why the store refuses every operation (set after an unrecoverable I/O failure). */
  #failure: string | undefined;
  #dirty = false;
  #syncTimer: NodeJS.Timeout | undefined;
  #syncInFlight: Promise<void> | undefined;
  #lastSyncAt = 0;
  #closing: Promise<void> | undefined;

  private constructor(
    path: string,
    memory: MemoryReplayStore,
    fsync: JournalFsyncMode,
    lock: FileLockHandle,
  ) {
    this.path = path;
    this.#memory = memory;
    this.#fsync = fsync;
    this.#lock = lock;
  }

  /**
   * Open (or create) a journal, load its unexpired entries, compact it and open it for appending.
   * Creates the parent directory when missing.
   * @param path the journal file; `<path>.lock` and `<path>.tmp` are used next to it
   * @param options `maxEntries`, `fsync` policy, and the `now` clock (epoch seconds) used for loading
   * @returns the open store (close it with {@link JournalReplayStore.close})
   * @throws Error when another live process holds the journal, when the journal is corrupt (not just
   *   truncated at the end), or when it holds more live entries than `maxEntries`; the message names
   *   the file
   * @throws RangeError or TypeError for invalid options
   * @example
   * const store = await JournalReplayStore.open('data/replay.cbor', { fsync: 'always' })
   */
  static async open(path: string, options: JournalReplayStoreOptions = {}): Promise<JournalReplayStore> {
    if (typeof path !== 'string' || path === '')
      throw new TypeError('journal path must be a non-empty string');
    const fsync = options.fsync ?? 'interval';
    if (!FSYNC_MODES.has(fsync)) throw new RangeError("fsync must be 'always', 'interval' or 'never'");
    const maxEntries = options.maxEntries ?? 1_000_000;
    const memory = new MemoryReplayStore({
      maxEntries,
      ...(options.maxEntriesPerScope !== undefined ? { maxEntriesPerScope: options.maxEntriesPerScope } : {}),
    });
    const now = (options.now ?? systemNow)();
    if (!Number.isFinite(now)) throw new RangeError('now() must return a finite number of seconds');

    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const lock = acquireFileLock(path, {
      subject: `replay journal ${path}`,
      busyHint: 'a memory replay store serves one process only: run one worker or use the Redis store',
    });
    try {
      let data: Uint8Array;
      try {
        data = await readFile(path);
      } catch (e) {
        if (errorCode(e) !== 'ENOENT') throw e;
        data = new Uint8Array(0);
      }
      const latest = readJournal(path, data);
      // Entries expired for longer than the grace period are dropped below: they may not be accepted
      // again if the clock is later stepped back, nor may those an earlier life dropped (its
      // persisted horizon).
      const cutoff = now - memory.sweepGraceSeconds;
      memory.raiseHorizon(Math.max(cutoff, latest.get(HORIZON_KEY) ?? Number.NEGATIVE_INFINITY));
      latest.delete(HORIZON_KEY);
      for (const [key, expiresAt] of latest) {
        if (expiresAt <= cutoff) continue;
        try {
          memory.consumeSync(key, expiresAt, now);
        } catch {
          throw new Error(`replay journal ${path} holds more live entries than maxEntries (${maxEntries})`);
        }
      }
      const store = new JournalReplayStore(path, memory, fsync, lock);
      store.#compact(now);
      return store;
    } catch (e) {
      releaseFileLock(lock);
      throw e;
    }
  }

  /** Number of entries held in memory (expired ones may linger until the next sweep). */
  get size(): number {
    return this.#memory.size;
  }

  /**
   * Atomically mark `key` used until `expiresAt`, journaling it before answering `true`.
   * @param key the replay key (at most 1,024 UTF-8 bytes)
   * @param expiresAt epoch seconds after which the key may be used again
   * @param now the current time in epoch seconds
   * @returns true on first use, false when the key was already consumed and has not expired
   * @throws TrustplaneError `replay_store_unavailable` when the journal cannot be written or flushed, the
   *   store is closed or failed, or it is full of unexpired entries
   * @throws TypeError or RangeError for a malformed key or non-finite times
   * @example
   * const first = await store.consume(sha256Hex(`${iss}\n${jti}`), exp + 60, Math.floor(Date.now() / 1000))
   */
  async consume(key: string, expiresAt: number, now: number, scope?: string): Promise<boolean> {
    assertReplayArguments(key, expiresAt, now);
    const fd = this.#usableFd();
    if (!this.#memory.consumeSync(key, expiresAt, now, scope)) return false;
    this.#append(fd, key, expiresAt);
    this.#maybeCompact(now);
    return true;
  }

  /**
   * Readiness probe.
   * @returns a promise that resolves while the journal is open and healthy
   * @throws TrustplaneError `replay_store_unavailable` after `close` or an unrecoverable I/O failure
   * @example
   * await store.ping()
   */
  async ping(): Promise<void> {
    this.#usableFd();
  }

  /**
   * Flush and close the journal and remove the lock file. Idempotent.
   * @returns a promise that resolves once the journal is durable and closed
   * @throws TrustplaneError `replay_store_unavailable` when the final flush failed (the file and lock
   *   are released anyway)
   * @example
   * process.on('SIGTERM', () => void store.close())
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) return;
    // From here on consume and ping reject; a background flush still in flight finishes first.
    this.#fd = undefined;
    if (this.#syncTimer !== undefined) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    await this.#syncInFlight;
    let flushError: unknown;
    try {
      fdatasyncSync(fd);
    } catch (e) {
      flushError = e;
    }
    closeSync(fd);
    releaseFileLock(this.#lock);
    if (flushError !== undefined) {
      throw new TrustplaneError('replay_store_unavailable', 'replay journal flush failed', {
        store: 'journal',
        error: errorCode(flushError),
      });
    }
  }

  #usableFd(): number {
    if (this.#fd === undefined) {
      throw new TrustplaneError('replay_store_unavailable', 'replay journal is closed', { store: 'journal' });
    }
    if (this.#failure !== undefined) {
      throw new TrustplaneError('replay_store_unavailable', 'replay journal is unavailable', {
        store: 'journal',
        error: this.#failure,
      });
    }
    return this.#fd;
  }

  #fail(error: unknown): void {
    this.#failure ??= errorCode(error);
  }

  #append(fd: number, key: string, expiresAt: number): void {
    const record = this.#encoder.encode([key, expiresAt]);
    try {
      writeAll(fd, record);
    } catch (e) {
      // A partial record followed by later appends would read as corruption on the next open, so
      // cut the file back to its last complete record; if that fails too, stop using the file.
      try {
        ftruncateSync(fd, this.#bytes);
      } catch {
        this.#fail(e);
      }
      throw new TrustplaneError('replay_store_unavailable', 'replay journal write failed', {
        store: 'journal',
        error: errorCode(e),
      });
    }
    this.#bytes += record.length;
    this.#records++;
    if (this.#fsync === 'always') {
      try {
        fdatasyncSync(fd);
      } catch (e) {
        // After a failed flush the kernel may have dropped the dirty pages: nothing written so far
        // can be trusted to be durable, so fail closed until an operator reopens the journal.
        this.#fail(e);
        throw new TrustplaneError('replay_store_unavailable', 'replay journal flush failed', {
          store: 'journal',
          error: errorCode(e),
        });
      }
    } else if (this.#fsync === 'interval') {
      this.#dirty = true;
      this.#scheduleSync();
    }
  }

  #scheduleSync(): void {
    if (this.#syncTimer !== undefined || this.#syncInFlight !== undefined || this.#fd === undefined) return;
    const wait = Math.max(0, this.#lastSyncAt + SYNC_INTERVAL_MS - performance.now());
    this.#syncTimer = setTimeout(() => this.#backgroundSync(), wait);
    this.#syncTimer.unref();
  }

  #backgroundSync(): void {
    this.#syncTimer = undefined;
    const fd = this.#fd;
    if (fd === undefined || !this.#dirty) return;
    this.#dirty = false;
    this.#syncInFlight = new Promise((resolve) => {
      fdatasync(fd, (err) => {
        this.#syncInFlight = undefined;
        this.#lastSyncAt = performance.now();
        if (err !== null) this.#fail(err);
        else if (this.#dirty) this.#scheduleSync();
        resolve();
      });
    });
  }

  #maybeCompact(now: number): void {
    if (this.#records <= Math.max(COMPACT_MIN_RECORDS, 2 * this.#memory.size)) return;
    // Never swap the file under an in-flight background flush; the next consume retries.
    if (this.#records < this.#compactRetryAt || this.#syncInFlight !== undefined) return;
    try {
      this.#compact(now);
    } catch {
      // The old journal is intact (or the store is marked failed); the record of this consume is
      // already written, so the answer stays `true`. Back off before trying again.
      this.#compactRetryAt = this.#records + COMPACT_MIN_RECORDS;
    }
  }

  /** Rewrite the journal with the live entries only: write a temp file, flush, rename over, reopen. */
  #compact(now: number): void {
    const chunks: Uint8Array[] = [];
    let count = 0;
    const live = this.#memory.entries(now);
    // The horizon first (key ''): the entries dropped here stay refused after a restart, even if the
    // clock was ahead and is stepped back (see MemoryReplayStore.horizon).
    chunks.push(Buffer.from(this.#encoder.encode([HORIZON_KEY, this.#memory.horizon])));
    count++;
    for (const [key, expiresAt] of live) {
      // The encoder reuses its buffer: copy each record out.
      chunks.push(Buffer.from(this.#encoder.encode([key, expiresAt])));
      count++;
    }
    const data = Buffer.concat(chunks);
    const tmp = `${this.path}.tmp`;
    try {
      const tfd = openSync(tmp, 'w', 0o600);
      try {
        writeAll(tfd, data);
        fdatasyncSync(tfd);
      } finally {
        closeSync(tfd);
      }
      renameSync(tmp, this.path);
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        // best effort: the temp file is rewritten on the next compaction
      }
      throw e;
    }
    try {
      syncDirectory(dirname(this.path));
      const fd = openSync(this.path, 'a', 0o600);
      const old = this.#fd;
      this.#fd = fd;
      if (old !== undefined) closeSync(old);
    } catch (e) {
      // The file was swapped but cannot be appended to: refuse rather than run unjournaled.
      this.#fail(e);
      throw e;
    }
    this.#bytes = data.length;
    this.#records = count;
    this.#dirty = false;
  }
}

function systemNow(): number {
  return Math.floor(Date.now() / 1000);
}

function errorCode(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string') return e.code;
  return 'EIO';
}

function writeAll(fd: number, data: Uint8Array): void {
  let offset = 0;
  while (offset < data.length) {
    const written = writeSync(fd, data, offset, data.length - offset);
    if (written <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    offset += written;
  }
}

function syncDirectory(dir: string): void {
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
