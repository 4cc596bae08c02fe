import { TrustplaneError } from './errors.js';
import { ReplayKeyTable, parseHexKey } from './replay-key-table.js';
import type { ReplayStore } from './replay-store.js';

/** Options for {@link MemoryReplayStore}. */
export interface MemoryReplayStoreOptions {
  /** Most live entries held (default 1,000,000). When full of unexpired entries, consume fails closed. */
  readonly maxEntries?: number;
  /**
   * Most live entries one scope (one issuer + subject) may hold (default a quarter of
   * `maxEntries`): one caller cannot fill the store and turn it away for everyone else. Beyond it
   * consume fails with `replay_quota_exceeded` (429) for that caller only.
   */
  readonly maxEntriesPerScope?: number;
  /**
   * How long past its expiry an entry is kept, seconds (default 120): a clock stepped forward by
   * less than this and then back forgets nothing. For larger steps see {@link MemoryReplayStore.horizon}.
   */
  readonly sweepGraceSeconds?: number;
}

/** Default of {@link MemoryReplayStoreOptions.sweepGraceSeconds}. */
export const DEFAULT_SWEEP_GRACE_SECONDS = 120;

/** Slots one consume looks at during an incremental sweep (about a microsecond of work). */
const SWEEP_STEP_SLOTS = 256;
/** Seconds between the starts of two incremental sweeps. */
const SWEEP_INTERVAL_SECONDS = 30;
/** Largest expiry the compact table holds (uint32 epoch seconds: 2106-02-07). */
const MAX_COMPACT_EXPIRY = 0xffff_ffff;

/**
 * A bounded, expiring, single-process replay store. When it is full of unexpired jtis it refuses
 * (`replay_store_unavailable`) rather than evicting a live entry, which would re-open a replay.
 * For more than one process use a shared store (Redis).
 *
 * Memory: the verifier's keys (64 lowercase hex characters, a SHA-256) are held as 32 bytes in an
 * open-addressing table with a uint32 expiry and a scope number: 40 bytes a slot, at most 75 %
 * full, about 55 bytes per live entry at 1M entries (BENCHMARKS.md, "Memory"). Any other key (the
 * API takes any string up to 1,024 bytes), and an expiry that is not a whole number of seconds in
 * 1..2^32-1, is kept as it is in a `Map` instead, so nothing is truncated or hashed and
 * {@link MemoryReplayStore.entries} returns every key exactly as consumed. Scopes are held once
 * each with a count of their live entries.
 *
 * Expired entries are dropped a few hundred slots per consume, one pass every 30 s, so no single
 * call pauses for long; a full store or a caller at its quota triggers a full sweep first (skipped
 * when nothing can have expired since the last one). Its answers are those of the two-`Map` store
 * it replaced (test/authcore/memory-replay-store-compact.test.ts drives both with the same random
 * operations).
 *
 * @example
 * const store = new MemoryReplayStore({ maxEntries: 1_000_000 });
 * await store.consume(key, exp + skew, now, scope); // true once, then false until it expires
 */
export class MemoryReplayStore implements ReplayStore {
  readonly #table: ReplayKeyTable;
  /** Scratch for the parsed key of the call in progress. */
  readonly #probe = new Uint32Array(8);
  /** Keys that are not canonical (see the class comment): expiry, and scope number if any. */
  readonly #other = new Map<string, number>();
  readonly #otherScope = new Map<string, number>();
  /** Scope string → number (≥ 1); per number its string and live entries; numbers free for reuse. */
  readonly #scopeIds = new Map<string, number>();
  readonly #scopeNames: (string | undefined)[] = [undefined];
  readonly #scopeCounts: number[] = [0];
  readonly #freeScopeIds: number[] = [];
  readonly #releaseScope = (id: number): void => {
    const left = this.#scopeCounts[id]! - 1;
    this.#scopeCounts[id] = left;
    if (left > 0) return;
    const name = this.#scopeNames[id];
    if (name !== undefined) this.#scopeIds.delete(name);
    this.#scopeNames[id] = undefined;
    this.#freeScopeIds.push(id);
  };
  readonly #maxEntries: number;
  readonly #maxPerScope: number;
  readonly #grace: number;
  #nextSweep = 0;
  /** The next slot of the incremental sweep in progress, or -1 when none is. */
  #sweepCursor = -1;
  /** The horizon a full sweep last dropped everything up to. */
  #sweptTo = Number.NEGATIVE_INFINITY;
  /**
   * The latest time entries were dropped up to: a key that expires at or before it may have been
   * forgotten. A clock stepped forward sweeps early; once it is stepped back, a passport whose
   * entry was swept would be valid again, so such a key is refused instead of accepted.
   */
  #horizon = Number.NEGATIVE_INFINITY;

  constructor(options: MemoryReplayStoreOptions = {}) {
    const max = options.maxEntries ?? 1_000_000;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxEntries must be a positive integer');
    this.#maxEntries = max;
    const perScope = options.maxEntriesPerScope ?? Math.max(1, Math.floor(max / 4));
    if (!Number.isSafeInteger(perScope) || perScope < 1) {
      throw new RangeError('maxEntriesPerScope must be a positive integer');
    }
    this.#maxPerScope = perScope;
    const grace = options.sweepGraceSeconds ?? DEFAULT_SWEEP_GRACE_SECONDS;
    if (!Number.isFinite(grace) || grace < 0)
      throw new RangeError('sweepGraceSeconds must be a non-negative number');
    this.#grace = grace;
    this.#table = new ReplayKeyTable(max);
  }

  /** Number of entries currently held (expired ones may linger until the next sweep). */
  get size(): number {
    return this.#table.count + this.#other.size;
  }

  async consume(key: string, expiresAt: number, now: number, scope?: string): Promise<boolean> {
    return this.consumeSync(key, expiresAt, now, scope);
  }

  /** Synchronous consume (the memory store has no I/O). */
  consumeSync(key: string, expiresAt: number, now: number, scope?: string): boolean {
    // Its entry may have been swept when the clock was ahead: first use cannot be proven (fail closed).
    if (expiresAt <= this.#horizon) return false;
    const probe = this.#probe;
    const canonical = parseHexKey(key, probe);
    let slot = canonical ? this.#table.find(probe) : -1;
    let existing: number | undefined;
    if (slot >= 0) existing = this.#table.expiryAt(slot);
    else if (this.#other.size > 0) existing = this.#other.get(key);
    if (existing !== undefined && existing <= this.#horizon) {
      // Swept in all but fact (the sweep pass has not reached it yet): gone, as after a full sweep.
      this.#drop(key, slot);
      existing = undefined;
    }
    if (existing !== undefined && existing > now) return false;

    /** The expired entry being used again was swept just now (it loses its scope, as it always did). */
    let sweptNow = false;
    if (existing === undefined && this.size >= this.#maxEntries) {
      this.#sweepFull(now);
      if (this.size >= this.#maxEntries) {
        throw new TrustplaneError('replay_store_unavailable', 'replay store is full');
      }
    } else if (this.#sweepCursor >= 0 || now >= this.#nextSweep) {
      this.#sweepStep(now);
      if (existing !== undefined) {
        // The step may have moved it, or it may expire at or before the horizon just raised.
        slot = canonical ? this.#table.find(probe) : -1;
        if (existing <= this.#horizon) {
          if (slot >= 0 || this.#other.has(key)) this.#drop(key, slot);
          sweptNow = true;
        }
      }
    }

    let scopeId = 0;
    if (existing !== undefined) {
      // Expired but not yet swept: used again, keeping the scope it was first counted under.
      if (sweptNow) {
        // nothing to remove; no scope
      } else if (slot >= 0) {
        scopeId = this.#table.scopeAt(slot);
        this.#table.removeAt(slot);
      } else {
        scopeId = this.#otherScope.get(key) ?? 0;
        this.#other.delete(key);
        this.#otherScope.delete(key);
      }
    } else if (scope !== undefined) {
      scopeId = this.#admitScope(scope, now);
    }

    if (canonical && Number.isInteger(expiresAt) && expiresAt >= 1 && expiresAt <= MAX_COMPACT_EXPIRY) {
      const capacity = this.#table.capacity;
      this.#table.insert(probe, expiresAt, scopeId, this.#horizon, this.#releaseScope);
      // A growth rehash dropped everything at or before the horizon: a sweep pass is complete.
      if (this.#table.capacity !== capacity) this.#sweepCursor = -1;
    } else {
      this.#other.set(key, expiresAt);
      if (scopeId !== 0) this.#otherScope.set(key, scopeId);
    }
    return true;
  }

  /**
   * Count one more entry for `scope`: its number.
   * @throws TrustplaneError `replay_quota_exceeded` when it holds its share even after a sweep
   */
  #admitScope(scope: string, now: number): number {
    let id = this.#scopeIds.get(scope);
    if (id !== undefined && this.#scopeCounts[id]! >= this.#maxPerScope) {
      this.#sweepFull(now);
      id = this.#scopeIds.get(scope);
      if (id !== undefined && this.#scopeCounts[id]! >= this.#maxPerScope) {
        throw new TrustplaneError('replay_quota_exceeded', 'this caller holds its share of the replay store');
      }
    }
    if (id === undefined) {
      id = this.#freeScopeIds.pop() ?? this.#scopeCounts.length;
      this.#scopeIds.set(scope, id);
      this.#scopeNames[id] = scope;
      this.#scopeCounts[id] = 0;
    }
    this.#scopeCounts[id]!++;
    return id;
  }

  /** One step of the incremental sweep; starts a pass (and raises the horizon) when one is due. */
  #sweepStep(now: number): void {
    if (this.#sweepCursor < 0) {
      this.raiseHorizon(now - this.#grace);
      this.#sweepOther();
      this.#sweepCursor = 0;
      this.#nextSweep = now + SWEEP_INTERVAL_SECONDS;
    }
    const next = this.#table.sweepRange(
      this.#sweepCursor,
      this.#sweepCursor + SWEEP_STEP_SLOTS,
      this.#horizon,
      this.#releaseScope,
    );
    this.#sweepCursor = next >= this.#table.capacity ? -1 : next;
  }

  /**
   * A full sweep, unless one ran since the horizon last rose and this one's cutoff is not beyond
   * it: that one left only entries expiring after the horizon, and so did every consume since.
   */
  #sweepFull(now: number): void {
    if (Math.max(now - this.#grace, this.#horizon) > this.#sweptTo) this.sweep(now);
    else this.#nextSweep = now + SWEEP_INTERVAL_SECONDS;
  }

  /** Remove one entry as a sweep would (its scope loses it). */
  #drop(key: string, slot: number): void {
    if (slot >= 0) {
      const scope = this.#table.scopeAt(slot);
      this.#table.removeAt(slot);
      if (scope !== 0) this.#releaseScope(scope);
      return;
    }
    this.#other.delete(key);
    const scope = this.#otherScope.get(key);
    if (scope !== undefined) {
      this.#otherScope.delete(key);
      this.#releaseScope(scope);
    }
  }

  #sweepOther(): void {
    if (this.#other.size === 0) return;
    const limit = this.#horizon;
    for (const [k, exp] of this.#other) {
      if (exp > limit) continue;
      this.#other.delete(k);
      const scope = this.#otherScope.get(k);
      if (scope !== undefined) {
        this.#otherScope.delete(k);
        this.#releaseScope(scope);
      }
    }
  }

  /**
   * Drop entries expired for longer than the grace period, and remember that keys expiring by then
   * may be forgotten (the horizon). Entries expiring at or before the horizon are dropped too: a
   * consume of such a key is refused before any lookup.
   */
  sweep(now: number): void {
    const cutoff = now - this.#grace;
    this.raiseHorizon(cutoff);
    this.#sweepOther();
    this.#table.sweepRange(0, this.#table.capacity, this.#horizon, this.#releaseScope);
    this.#sweepCursor = -1;
    this.#sweptTo = this.#horizon;
    this.#nextSweep = now + SWEEP_INTERVAL_SECONDS;
  }

  /**
   * The time up to which expired keys may have been dropped: a consume whose `expiresAt` is at or
   * before it is refused (journals persist it across restarts).
   */
  get horizon(): number {
    return this.#horizon;
  }

  /** Raise the horizon (a journal restores the one it persisted, or the time it dropped entries at). */
  raiseHorizon(time: number): void {
    if (time > this.#horizon) this.#horizon = time;
  }

  /** The grace period of {@link MemoryReplayStore.sweep}, seconds. */
  get sweepGraceSeconds(): number {
    return this.#grace;
  }

  /**
   * Every live entry (for journals and snapshots), after a full sweep at `now`. Iterate it before
   * the next consume: a consume may move entries of the table.
   */
  entries(now: number): IterableIterator<[string, number]> {
    this.sweep(now);
    return this.#liveEntries();
  }

  *#liveEntries(): Generator<[string, number], void, undefined> {
    const table = this.#table;
    for (let slot = 0; slot < table.capacity; slot++) {
      const exp = table.expiryAt(slot);
      if (exp !== 0) yield [table.keyAt(slot), exp];
    }
    yield* this.#other;
  }

  async ping(): Promise<void> {}
}
