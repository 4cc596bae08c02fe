import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Encoder } from 'cbor-x';
import { HEALTHY, unhealthy, type ComponentHealth } from '../authcore/component-health.js';
import { TrustplaneError } from '../authcore/errors.js';
import { assertReplayArguments, type ReplayStore } from '../authcore/replay-store.js';
import { MemoryReplayStore } from '../authcore/memory-replay-store.js';
import { acquireFileLock, releaseFileLock, type FileLockHandle } from '../internal/node/file-lock.js';
import { DEFAULT_AMNESIA_WINDOW_SECONDS } from './amnesia.js';
import {
  encodeJournalRecord,
  JOURNAL_HEADER,
  META_FAIL_CLOSED_UNTIL,
  META_HORIZON,
  readJournal,
} from './journal-reader.js';

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
  /**
   * Clock in epoch seconds, used when loading the journal to drop expired entries and for the
   * fail-closed window (default: system clock).
   */
  readonly now?: () => number;
  /**
   * The longest time a consumed key can matter, seconds: the verifier's maximum passport lifetime
   * plus twice its skew (default 660: 600 + 2 × 30). It bounds what `open` may drop under a clock
   * stepped forward, and is how long the store fails closed after finding damaged records.
   */
  readonly amnesiaWindowSeconds?: number;
  /**
   * How often a background check makes sure the journal path still names the file the store appends
   * to (default 2,000 ms; `health()` and `close()` check too). A journal unlinked or replaced while the
   * store runs is rewritten at its path from memory.
   */
  readonly checkIntervalMs?: number;
  /**
   * Told about a fail-closed window opened at `open` (damaged records, an emptied journal, or one
   * journaled earlier) and its end, and about a journal file rewritten (or not) after it was lost.
   */
  readonly onEvent?: (event: JournalReplayStoreEvent) => void;
}

/** What a {@link JournalReplayStore} reports through `onEvent`. */
export type JournalReplayStoreEvent =
  /**
   * Keys that may predate `until` are refused until then: `damaged_records` (bytes of the journal that
   * are no record with a matching checksum: `bytes`, from byte `firstOffset`; also a file zero-filled
   * from its first byte or cut inside its header), `empty_journal` (the file exists but holds no byte:
   * the store never leaves one, so its contents were lost), or `restored` (a window an earlier life
   * opened and journaled).
   */
  | {
      readonly type: 'amnesia';
      readonly cause: 'damaged_records' | 'empty_journal' | 'restored';
      readonly until: number;
      readonly bytes?: number;
      readonly firstOffset?: number;
    }
  /** The window is over (reported by `health()`). */
  | { readonly type: 'recovered' }
  /**
   * The journal path no longer named the file the store appends to (`missing`: unlinked; `replaced`:
   * another file renamed over it) and the store rewrote the journal there from memory: nothing lost.
   */
  | { readonly type: 'journal_rewritten'; readonly cause: JournalPathProblem }
  /**
   * The same, but the rewrite failed (`error`: its errno code): consume fails closed
   * (`replay_store_unavailable`) and `health()` says `journal_write_failed` until a retry succeeds.
   * Reported once per loss.
   */
  | {
      readonly type: 'journal_rewrite_failed';
      readonly cause: JournalPathProblem;
      readonly error: string;
    };

/** Why the journal path no longer names the open journal: unlinked, or another file renamed over it. */
export type JournalPathProblem = 'missing' | 'replaced';

/** Background flush period for `fsync: 'interval'`. */
const SYNC_INTERVAL_MS = 100;
/** Below this many journal records, runtime compaction never runs. */
const COMPACT_MIN_RECORDS = 10_000;
const FSYNC_MODES: ReadonlySet<string> = new Set(['always', 'interval', 'never']);
/** Default period of the check that the journal path still names the open file. */
const DEFAULT_CHECK_INTERVAL_MS = 2_000;

/**
 * A single-process replay store that survives a restart: a {@link MemoryReplayStore} plus an
 * append-only journal (format 2: a header, then CBOR records `[key, expiresAt, crc32]`, each with
 * its own CRC-32; see `journal-reader.ts`).
 *
 * Every first-use `consume` appends its record with `write(2)` before resolving `true`; if the write
 * fails, `consume` rejects with `replay_store_unavailable` and never answers `true`. On a write
 * failure the key stays marked as used in memory (a retry of that jti is refused as a replay rather
 * than risking a double accept) and `health()` says `journal_write_failed` until a write succeeds.
 * If the failed write cannot be rolled back, or a flush fails, the store stays unavailable (every
 * `consume` and `ping` rejects) until it is reopened.
 *
 * `open` loads the unexpired entries and compacts the file. A damaged record (its checksum does not
 * match: a flipped byte in a key or an expiry), bytes that are no record, a torn last append or a
 * zero-filled tail never silently re-open a jti: the store opens, keeps every intact record, and
 * fails closed for one window (`amnesiaWindowSeconds`, counted from the later of now and the latest
 * expiry in the journal): a consume whose `expiresAt` falls in it is refused with
 * `replay_store_amnesia`, and `health()` says `amnesia`. The window is journaled, so a restart inside
 * it keeps it. A format-1 journal (before checksums) is still read, with its old rules, and rewritten
 * as format 2. An existing journal of zero bytes, one zero-filled from its first byte, or one cut
 * inside its header fails closed the same way: the store creates a journal atomically (header and
 * horizon written to `<path>.tmp`, flushed, renamed), so such a file only comes from a loss.
 *
 * The journal path must keep naming the file the store appends to: a periodic check
 * (`checkIntervalMs`), `health()`, the next `consume` after a failed check and `close()` compare the
 * open file with the path (missing, or another device/inode) and, if it was unlinked or replaced,
 * rewrite the journal at the path from memory (a compaction). While that fails, `consume` rejects
 * with `replay_store_unavailable` and `health()` says `journal_write_failed`.
 *
 * Not detected (nothing next to the journal could tell): a journal cut exactly at a record boundary,
 * or restored from an older copy, while the store was stopped; and a journal unlinked by someone
 * else when the process dies before the next check. Those re-open the jtis they lost.
 *
 * A clock stepped forward at `open` does not drop entries that could still be live: an entry is
 * dropped only when it expired (plus the 120 s sweep grace) before the later of what the journal
 * proves about the last life's clock (its latest expiry minus the window, its journaled horizon) and
 * before now. The journal is compacted again when it holds more than max(10,000, 2 × live entries)
 * records.
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
  readonly #now: () => number;
  readonly #onEvent: ((event: JournalReplayStoreEvent) => void) | undefined;
  readonly #encoder = new Encoder({ useRecords: false });
  /** Keys expiring at or before this are refused (`replay_store_amnesia`): the fail-closed window. */
  #until = Number.NEGATIVE_INFINITY;
  #windowReported = false;
  /**
   * The record of the last append that failed (its key stays used in memory), until it is written:
   * by `health()`, which retries it, or superseded by a later successful append.
   */
  #unwritten: Buffer | undefined;
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
  /** Set while the journal path no longer names the open file and rewriting it failed (or waits). */
  #detached: JournalPathProblem | undefined;
  #rewriteFailureReported = false;
  #checkTimer: NodeJS.Timeout | undefined;

  private constructor(
    path: string,
    memory: MemoryReplayStore,
    fsync: JournalFsyncMode,
    lock: FileLockHandle,
    clock: () => number,
    onEvent: ((event: JournalReplayStoreEvent) => void) | undefined,
  ) {
    this.path = path;
    this.#memory = memory;
    this.#fsync = fsync;
    this.#lock = lock;
    this.#now = clock;
    this.#onEvent = onEvent;
  }

  /**
   * Open (or create) a journal, load its unexpired entries, compact it and open it for appending.
   * Creates the parent directory when missing.
   * @param path the journal file; `<path>.lock` and `<path>.tmp` are used next to it
   * @param options `maxEntries`, `fsync` policy, the `now` clock (epoch seconds), the amnesia window,
   *   `checkIntervalMs`, `onEvent`
   * @returns the open store (close it with {@link JournalReplayStore.close}); failing closed for one
   *   window when the journal had damaged records or was emptied
   * @throws Error when another live process holds the journal, when a format-1 journal is corrupt
   *   (not just truncated at the end), when it has a record kind of a newer version, or when it holds
   *   more live entries than `maxEntries`; the message names the file
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
    const clock = options.now ?? systemNow;
    if (typeof clock !== 'function') throw new TypeError('now must be a function');
    const now = clock();
    if (!Number.isFinite(now)) throw new RangeError('now() must return a finite number of seconds');
    const window = options.amnesiaWindowSeconds ?? DEFAULT_AMNESIA_WINDOW_SECONDS;
    if (!Number.isSafeInteger(window) || window < 1) {
      throw new RangeError('amnesiaWindowSeconds must be a positive integer');
    }
    if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
      throw new TypeError('onEvent must be a function');
    }
    const checkIntervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    if (!Number.isSafeInteger(checkIntervalMs) || checkIntervalMs < 1) {
      throw new RangeError('checkIntervalMs must be a positive integer');
    }

    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const lock = acquireFileLock(path, {
      subject: `replay journal ${path}`,
      busyHint: 'a memory replay store serves one process only: run one worker or use the Redis store',
    });
    try {
      let data: Uint8Array;
      let exists = true;
      try {
        data = await readFile(path);
      } catch (e) {
        if (errorCode(e) !== 'ENOENT') throw e;
        data = new Uint8Array(0);
        exists = false;
      }
      // The store never leaves an empty journal (it creates one with a rename), so its bytes were lost.
      const emptied = exists && data.length === 0;
      const journal = readJournal(path, data);
      let latestExpiry = Number.NEGATIVE_INFINITY;
      for (const expiresAt of journal.entries.values()) latestExpiry = Math.max(latestExpiry, expiresAt);
      // What the journal proves about the last life's clock: a key expiring at E was consumed at or
      // after E - window, and a horizon H was journaled at H + grace. Entries are dropped only when
      // expired (plus the grace) both by now and by that time, so a clock stepped forward at open
      // keeps every entry that may still be live once it is corrected. A dropped key stays refused
      // (the horizon), also if the clock is later stepped back.
      const grace = memory.sweepGraceSeconds;
      const provenTime = Math.max(
        latestExpiry - window,
        (journal.horizon ?? Number.NEGATIVE_INFINITY) + grace,
      );
      const sweepTime = Math.min(now, provenTime);
      const cutoff = sweepTime - grace;
      memory.raiseHorizon(Math.max(cutoff, journal.horizon ?? Number.NEGATIVE_INFINITY));
      for (const [key, expiresAt] of journal.entries) {
        if (expiresAt <= cutoff) continue;
        try {
          // At sweepTime, not now: a sweep at a clock stepped forward would drop what is kept here.
          memory.consumeSync(key, expiresAt, sweepTime);
        } catch {
          throw new Error(`replay journal ${path} holds more live entries than maxEntries (${maxEntries})`);
        }
      }
      const store = new JournalReplayStore(path, memory, fsync, lock, clock, options.onEvent);
      if (journal.failClosedUntil !== undefined) {
        // Kept whatever the clock says now (the check is inert once every passport expires after it).
        store.#until = journal.failClosedUntil;
        if (store.#until > now) {
          store.#windowReported = true;
          store.#emit({ type: 'amnesia', cause: 'restored', until: store.#until });
        }
      }
      if (journal.damage !== undefined || emptied) {
        // A damaged record may have held any key consumed up to the last write: refuse every key that
        // may have been consumed by then (a clock stepped back at open is covered by the latest expiry).
        store.#until = Math.max(store.#until, Math.max(now, latestExpiry) + window);
        store.#windowReported = true;
        store.#emit(
          journal.damage === undefined
            ? { type: 'amnesia', cause: 'empty_journal', until: store.#until }
            : {
                type: 'amnesia',
                cause: 'damaged_records',
                until: store.#until,
                bytes: journal.damage.bytes,
                firstOffset: journal.damage.firstOffset,
              },
        );
      }
      store.#compact(sweepTime);
      store.#checkTimer = setInterval(() => store.#checkPath(), checkIntervalMs);
      store.#checkTimer.unref();
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
   * @throws TrustplaneError `replay_store_unavailable` when the journal cannot be written or flushed, its
   *   file was lost and cannot be rewritten, the store is closed or failed, or it is full of unexpired
   *   entries
   * @throws TrustplaneError `replay_store_amnesia` when `open` found damaged records and `expiresAt`
   *   falls in the fail-closed window
   * @throws TypeError or RangeError for a malformed key or non-finite times
   * @example
   * const first = await store.consume(sha256Hex(`${iss}\n${jti}`), exp + 60, Math.floor(Date.now() / 1000))
   */
  async consume(key: string, expiresAt: number, now: number, scope?: string): Promise<boolean> {
    assertReplayArguments(key, expiresAt, now);
    if (this.#detached !== undefined) await this.#restorePath();
    const fd = this.#usableFd();
    if (expiresAt <= this.#until) {
      throw new TrustplaneError('replay_store_amnesia', 'replay journal lost consumed jtis', {
        store: 'journal',
        until: this.#until,
      });
    }
    if (!this.#memory.consumeSync(key, expiresAt, now, scope)) return false;
    this.#append(fd, encodeJournalRecord(this.#encoder, key, expiresAt));
    this.#maybeCompact(now);
    return true;
  }

  /**
   * Readiness probe.
   * @returns a promise that resolves while the journal is open and healthy
   * @throws TrustplaneError `replay_store_unavailable` after `close` or an unrecoverable I/O failure, or
   *   while a journal file unlinked or replaced under the store cannot be rewritten
   * @example
   * await store.ping()
   */
  async ping(): Promise<void> {
    await this.#restorePath();
    this.#usableFd();
  }

  /**
   * Readiness: `unavailable` after `close`; `journal_write_failed` after a failed write or flush (a
   * failed write is retried here with a small record, so the store turns ready again once the disk
   * accepts writes; a failed flush or rollback lasts until the journal is reopened) or while a journal
   * file unlinked or replaced under the store cannot be rewritten (checked and retried here);
   * `amnesia` inside the fail-closed window; else healthy.
   * @returns the store's {@link ComponentHealth}; never rejects
   * @example
   * const { ok, reason } = await store.health()
   */
  async health(): Promise<ComponentHealth> {
    if (this.#fd === undefined) return unhealthy('unavailable');
    if (this.#failure !== undefined) return unhealthy('journal_write_failed');
    await this.#restorePath();
    const fd = this.#fd;
    if (fd === undefined) return unhealthy('unavailable');
    if (this.#failure !== undefined || this.#detached !== undefined) return unhealthy('journal_write_failed');
    const unwritten = this.#unwritten;
    if (unwritten !== undefined) {
      // Retry the failed record: once it fits, the journal agrees with memory (its key was kept as used).
      try {
        this.#append(fd, unwritten);
      } catch {
        // still failing
      }
      if (this.#unwritten !== undefined || this.#failure !== undefined) {
        return unhealthy('journal_write_failed');
      }
    }
    if (this.#now() < this.#until) return unhealthy('amnesia');
    if (this.#windowReported) {
      this.#windowReported = false;
      this.#emit({ type: 'recovered' });
    }
    return HEALTHY;
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
    if (this.#checkTimer !== undefined) clearInterval(this.#checkTimer);
    this.#checkTimer = undefined;
    await this.#syncInFlight;
    // A journal unlinked or replaced while the store ran would take every jti with it: put it back.
    let rewriteError: unknown;
    const problem = journalPathProblem(this.path, fd);
    if (problem !== undefined) {
      try {
        this.#writeSnapshot(this.#now());
        syncDirectory(dirname(this.path));
        this.#emit({ type: 'journal_rewritten', cause: problem });
      } catch (e) {
        rewriteError = e;
        this.#emit({ type: 'journal_rewrite_failed', cause: problem, error: errorCode(e) });
      }
    }
    let flushError: unknown;
    try {
      fdatasyncSync(fd);
    } catch (e) {
      flushError = e;
    }
    closeSync(fd);
    releaseFileLock(this.#lock);
    if (rewriteError !== undefined) {
      throw new TrustplaneError(
        'replay_store_unavailable',
        'replay journal file was lost and could not be rewritten',
        {
          store: 'journal',
          error: errorCode(rewriteError),
        },
      );
    }
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
    if (this.#detached !== undefined) {
      throw new TrustplaneError(
        'replay_store_unavailable',
        'replay journal file was lost and cannot be rewritten',
        {
          store: 'journal',
          cause: this.#detached,
        },
      );
    }
    return this.#fd;
  }

  /**
   * Make sure the journal path still names the open file; if it does not, rewrite the journal there
   * from memory (waiting for an in-flight background flush first, see `#checkPath`).
   */
  async #restorePath(): Promise<void> {
    this.#checkPath();
    if (this.#detached !== undefined && this.#syncInFlight !== undefined) {
      await this.#syncInFlight;
      this.#checkPath();
    }
  }

  /**
   * The periodic check: compare the open file with what the path names. Unlinked or replaced (an
   * operator's `rm`, a restore or a config tool renaming a file over it): every record appended from
   * then on would vanish with the process, so rewrite the journal at the path from memory, which holds
   * every entry the file did. Sets `#detached` while that fails.
   */
  #checkPath(): void {
    const fd = this.#fd;
    if (fd === undefined || this.#failure !== undefined) return;
    const problem = journalPathProblem(this.path, fd);
    if (problem === undefined) {
      this.#detached = undefined;
      return;
    }
    // Never swap the file under an in-flight background flush: the caller (or the next tick) retries.
    if (this.#syncInFlight !== undefined) {
      this.#detached = problem;
      return;
    }
    try {
      this.#compact(this.#now());
    } catch (e) {
      this.#detached = problem;
      if (!this.#rewriteFailureReported) {
        this.#rewriteFailureReported = true;
        this.#emit({ type: 'journal_rewrite_failed', cause: problem, error: errorCode(e) });
      }
      return;
    }
    this.#detached = undefined;
    this.#rewriteFailureReported = false;
    this.#emit({ type: 'journal_rewritten', cause: problem });
  }

  #fail(error: unknown): void {
    this.#failure ??= errorCode(error);
  }

  #emit(event: JournalReplayStoreEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // a failing log or metric callback must not break the store
    }
  }

  /** Append one record before answering (after the record of an earlier failed append, if any). */
  #append(fd: number, record: Buffer): void {
    if (this.#unwritten !== undefined && this.#unwritten !== record) this.#append(fd, this.#unwritten);
    try {
      writeAll(fd, record);
    } catch (e) {
      this.#unwritten = record;
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
    this.#unwritten = undefined;
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

  /**
   * Rewrite the journal with the live entries only (format 2): write a temp file, flush, rename over,
   * reopen. `now` is the time entries are swept at (at open, see `open`).
   */
  #compact(now: number): void {
    const { bytes, records } = this.#writeSnapshot(now);
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
    this.#bytes = bytes;
    this.#records = records;
    this.#dirty = false;
  }

  /**
   * Write the live entries to `<path>.tmp`, flush it and rename it over the journal. Throws with the
   * journal at the path unchanged when any step before the rename fails.
   * @returns the size and record count of the new journal
   */
  #writeSnapshot(now: number): { readonly bytes: number; readonly records: number } {
    const chunks: Uint8Array[] = [JOURNAL_HEADER];
    let count = 0;
    const live = this.#memory.entries(now);
    // The horizon first: the entries dropped here stay refused after a restart, even if the clock was
    // ahead and is stepped back (see MemoryReplayStore.horizon). Then an open fail-closed window.
    chunks.push(encodeJournalRecord(this.#encoder, META_HORIZON, horizonValue(this.#memory.horizon)));
    count++;
    // Until the horizon passes it: from then on the horizon refuses at least as much.
    if (Number.isFinite(this.#until) && this.#until > this.#memory.horizon) {
      chunks.push(encodeJournalRecord(this.#encoder, META_FAIL_CLOSED_UNTIL, this.#until));
      count++;
    }
    for (const [key, expiresAt] of live) {
      chunks.push(encodeJournalRecord(this.#encoder, key, expiresAt));
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
    return { bytes: data.length, records: count };
  }
}

/** A horizon as journaled: never below 0 (no passport expires before 1970), so always finite. */
function horizonValue(horizon: number): number {
  return Math.max(horizon, 0);
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

/**
 * Whether `path` still names the file open as `fd`: `missing` when it names nothing, `replaced` when
 * it names another file (device or inode differ).
 */
function journalPathProblem(path: string, fd: number): JournalPathProblem | undefined {
  let own;
  try {
    own = fstatSync(fd);
  } catch {
    return undefined; // the fd itself failing shows at the next write
  }
  try {
    const named = statSync(path);
    return named.dev === own.dev && named.ino === own.ino ? undefined : 'replaced';
  } catch {
    // ENOENT, or the directory itself gone or unreadable: the journal cannot be found at its path.
    return 'missing';
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
