import { TrustplaneError } from './errors.js';
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

/**
 * A bounded, expiring, single-process replay store. When it is full of unexpired jtis it refuses
 * (`replay_store_unavailable`) rather than evicting a live entry, which would re-open a replay.
 * For more than one process use a shared store (Redis).
 */
export class MemoryReplayStore implements ReplayStore {
  readonly #entries = new Map<string, number>();
  /** The scope of each entry that has one, and the live entries per scope. */
  readonly #scopeOf = new Map<string, string>();
  readonly #perScope = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #maxPerScope: number;
  readonly #grace: number;
  #nextSweep = 0;
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
  }

  /** Number of entries currently held (expired ones may linger until the next sweep). */
  get size(): number {
    return this.#entries.size;
  }

  async consume(key: string, expiresAt: number, now: number, scope?: string): Promise<boolean> {
    return this.consumeSync(key, expiresAt, now, scope);
  }

  /** Synchronous consume (the memory store has no I/O). */
  consumeSync(key: string, expiresAt: number, now: number, scope?: string): boolean {
    // Its entry may have been swept when the clock was ahead: first use cannot be proven (fail closed).
    if (expiresAt <= this.#horizon) return false;
    const existing = this.#entries.get(key);
    if (existing !== undefined && existing > now) return false;
    if (existing === undefined && this.#entries.size >= this.#maxEntries) {
      this.sweep(now);
      if (this.#entries.size >= this.#maxEntries) {
        throw new TrustplaneError('replay_store_unavailable', 'replay store is full');
      }
    } else if (now >= this.#nextSweep) {
      this.sweep(now);
    }
    if (scope !== undefined && existing === undefined) {
      const held = this.#perScope.get(scope) ?? 0;
      if (held >= this.#maxPerScope) {
        this.sweep(now);
        if ((this.#perScope.get(scope) ?? 0) >= this.#maxPerScope) {
          throw new TrustplaneError(
            'replay_quota_exceeded',
            'this caller holds its share of the replay store',
          );
        }
      }
      this.#perScope.set(scope, (this.#perScope.get(scope) ?? 0) + 1);
      this.#scopeOf.set(key, scope);
    }
    this.#entries.set(key, expiresAt);
    return true;
  }

  /**
   * Drop entries expired for longer than the grace period, and remember that keys expiring by then
   * may be forgotten (the horizon).
   */
  sweep(now: number): void {
    const cutoff = now - this.#grace;
    for (const [k, exp] of this.#entries) {
      if (exp > cutoff) continue;
      this.#entries.delete(k);
      const scope = this.#scopeOf.get(k);
      if (scope !== undefined) {
        this.#scopeOf.delete(k);
        const left = (this.#perScope.get(scope) ?? 1) - 1;
        if (left > 0) this.#perScope.set(scope, left);
        else this.#perScope.delete(scope);
      }
    }
    this.raiseHorizon(cutoff);
    this.#nextSweep = now + 30;
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

  /** Every live entry (for journals and snapshots). */
  entries(now: number): IterableIterator<[string, number]> {
    this.sweep(now);
    return this.#entries.entries();
  }

  async ping(): Promise<void> {}
}
