import { TrustplaneError } from './errors.js';

/**
 * A one-time-use store for passport jtis. `consume` must be atomic: of any number of concurrent
 * calls with the same key, exactly one resolves `true`. Errors must reject (the verifier then
 * fails closed with `replay_store_unavailable`); a store must never answer `true` when unsure.
 */
export interface ReplayStore {
  /**
   * Mark `key` used until `expiresAt` (epoch seconds).
   * @returns true on first use, false when the key was already consumed
   */
  consume(key: string, expiresAt: number, now: number): Promise<boolean>;
  /** Liveness probe for readiness checks. */
  ping?(): Promise<void>;
  /** Release resources. */
  close?(): Promise<void>;
}

/** Longest replay key a store accepts (UTF-8 bytes). The verifier's keys are 64 hex characters. */
export const MAX_REPLAY_KEY_BYTES = 1024;

/**
 * Caller-misuse checks every store applies to `consume` arguments.
 * @throws TypeError for an empty or non-string key; RangeError for an oversized key or a
 * non-finite time (the verifier turns either into `replay_store_unavailable`)
 */
export function assertReplayArguments(key: string, expiresAt: number, now: number): void {
  if (typeof key !== 'string' || key === '') throw new TypeError('replay key must be a non-empty string');
  if (key.length > MAX_REPLAY_KEY_BYTES || new TextEncoder().encode(key).length > MAX_REPLAY_KEY_BYTES) {
    throw new RangeError(`replay key must be at most ${MAX_REPLAY_KEY_BYTES} bytes`);
  }
  if (!Number.isFinite(expiresAt) || !Number.isFinite(now)) {
    throw new RangeError('expiresAt and now must be finite epoch seconds');
  }
}

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
