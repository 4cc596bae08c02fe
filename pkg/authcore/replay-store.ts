import type { ComponentHealth } from './component-health.js';

/**
 * A one-time-use store for passport jtis. `consume` must be atomic: of any number of concurrent
 * calls with the same key, exactly one resolves `true`. Errors must reject (the verifier then
 * fails closed with `replay_store_unavailable`); a store must never answer `true` when unsure.
 */
export interface ReplayStore {
  /**
   * Mark `key` used until `expiresAt` (epoch seconds).
   * @param scope who the key belongs to (the verifier passes a digest of issuer and subject), for
   *   stores that bound how much of their capacity one caller may hold
   * @returns true on first use, false when the key was already consumed
   * @throws TrustplaneError `replay_quota_exceeded` when `scope` holds its share already
   */
  consume(key: string, expiresAt: number, now: number, scope?: string): Promise<boolean>;
  /** Liveness probe for readiness checks. */
  ping?(): Promise<void>;
  /**
   * Readiness: whether the store can still guarantee one-time use (reachable, not out of memory,
   * has not lost consumed keys, can write its journal). Preferred over `ping` when present.
   */
  health?(): Promise<ComponentHealth>;
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
