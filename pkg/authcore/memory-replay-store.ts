import { TrustplaneError } from './errors.js';
import type { ReplayStore } from './replay-store.js';

/** Options for {@link MemoryReplayStore}. */
export interface MemoryReplayStoreOptions {
  /** Most live entries held (default 1,000,000). When full of unexpired entries, consume fails closed. */
  readonly maxEntries?: number;
}

/**
 * A bounded, expiring, single-process replay store. When it is full of unexpired jtis it refuses
 * (`replay_store_unavailable`) rather than evicting a live entry, which would re-open a replay.
 * For more than one process use a shared store (Redis).
 */
export class MemoryReplayStore implements ReplayStore {
  readonly #entries = new Map<string, number>();
  readonly #maxEntries: number;
  #nextSweep = 0;

  constructor(options: MemoryReplayStoreOptions = {}) {
    const max = options.maxEntries ?? 1_000_000;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxEntries must be a positive integer');
    this.#maxEntries = max;
  }

  /** Number of entries currently held (expired ones may linger until the next sweep). */
  get size(): number {
    return this.#entries.size;
  }

  async consume(key: string, expiresAt: number, now: number): Promise<boolean> {
    return this.consumeSync(key, expiresAt, now);
  }

  /** Synchronous consume (the memory store has no I/O). */
  consumeSync(key: string, expiresAt: number, now: number): boolean {
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
    this.#entries.set(key, expiresAt);
    return true;
  }

  /** Drop expired entries. */
  sweep(now: number): void {
    for (const [k, exp] of this.#entries) if (exp <= now) this.#entries.delete(k);
    this.#nextSweep = now + 30;
  }

  /** Every live entry (for journals and snapshots). */
  entries(now: number): IterableIterator<[string, number]> {
    this.sweep(now);
    return this.#entries.entries();
  }

  async ping(): Promise<void> {}
}
