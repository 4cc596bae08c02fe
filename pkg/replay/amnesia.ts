import { DEFAULT_MAX_LIFETIME_SECONDS, DEFAULT_SKEW_SECONDS } from '../authcore/verify-passport.js';

/**
 * How long after a replay store lost consumed keys a key that may predate the loss must be refused,
 * in seconds: the longest time a consumed key can matter. The verifier accepts a passport whose
 * `iat` is up to one skew ahead of its clock and until one skew past its `exp`, and passes
 * `exp + skew` as the key's expiry, so a key consumed at `t` expires by `t + maxLifetime + 2 × skew`
 * and the passport is refused as expired from then on.
 * @param maxLifetimeSeconds the verifier's maximum passport lifetime (`exp - iat`)
 * @param skewSeconds the verifier's clock skew allowance
 * @returns `maxLifetimeSeconds + 2 × skewSeconds`
 * @throws RangeError for a negative or non-integer argument
 * @example
 * amnesiaWindowSeconds(600, 30) // 660
 */
export function amnesiaWindowSeconds(maxLifetimeSeconds: number, skewSeconds: number): number {
  if (!Number.isSafeInteger(maxLifetimeSeconds) || maxLifetimeSeconds < 1) {
    throw new RangeError('maxLifetimeSeconds must be a positive integer');
  }
  if (!Number.isSafeInteger(skewSeconds) || skewSeconds < 0) {
    throw new RangeError('skewSeconds must be a non-negative integer');
  }
  return maxLifetimeSeconds + 2 * skewSeconds;
}

/** The window for the verifier's defaults: 600 s lifetime, 30 s skew, i.e. 660 s. */
export const DEFAULT_AMNESIA_WINDOW_SECONDS = amnesiaWindowSeconds(
  DEFAULT_MAX_LIFETIME_SECONDS,
  DEFAULT_SKEW_SECONDS,
);
