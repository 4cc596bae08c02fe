import { TrustplaneError } from '../authcore/errors.js';
import { DEFAULT_SKEW_SECONDS } from '../authcore/verify-passport.js';
import type { LoadedPolicy } from './load-policy-bundle.js';
import type { FreshnessClass, PolicyRoute } from './policy-bundle-schema.js';

/** Default freshness class when neither the route nor the bundle names one. */
export const DEFAULT_FRESHNESS_CLASS: FreshnessClass = 'bounded';
/** Default maximum bundle age for `bounded`, seconds. */
export const DEFAULT_BOUNDED_MAX_STALENESS_SECONDS = 300;
/** Maximum bundle age for `realtime`, seconds (a route may ask for less, never more). */
export const REALTIME_MAX_STALENESS_SECONDS = 30;

/** Outcome of a passing {@link checkFreshness}. */
export interface FreshnessResult {
  /** The effective class. */
  readonly freshnessClass: FreshnessClass;
  /** `now - issued_at`, seconds (undefined when the bundle has no `issued_at`). */
  readonly ageSeconds: number | undefined;
  /** The largest age allowed (undefined for `offline-ok`). */
  readonly maxAgeSeconds: number | undefined;
}

/**
 * Check that the policy bundle is fresh enough for a route.
 *
 * The class is `route.freshness_class ?? bundle.default_freshness_class ?? "bounded"`.
 * - `offline-ok`: no age limit.
 * - `bounded`: age at most `route.max_staleness_seconds ?? bundle.default_max_staleness_seconds ?? 300`.
 * - `realtime`: age at most `min(route.max_staleness_seconds ?? 30, 30)`.
 *
 * Age is `now - issued_at`. For `bounded` and `realtime` an unknown age (no `issued_at`) fails
 * closed, and so does an `issued_at` more than 30 s (the clock-skew tolerance) in the future. In
 * every class the bundle is stale from `expires_at` on.
 *
 * @param policy the loaded policy (only its document is read)
 * @param route the resolved route
 * @param now current time, epoch seconds (injected clock)
 * @returns the effective class, age and limit
 * @throws TrustplaneError `stale_bundle_fail_closed`
 * @example
 * const match = policy.routeTable.resolve('GET', '/v1/orders/42')
 * if (match) checkFreshness(policy, match.route, Math.floor(Date.now() / 1000))
 */
export function checkFreshness(
  policy: Pick<LoadedPolicy, 'document'>,
  route: PolicyRoute,
  now: number,
): FreshnessResult {
  if (!Number.isFinite(now)) throw new TypeError('checkFreshness: now must be epoch seconds');
  const bundle = policy.document;
  const freshnessClass = route.freshness_class ?? bundle.default_freshness_class ?? DEFAULT_FRESHNESS_CLASS;
  const issuedAt = bundle.issued_at;
  const ageSeconds = issuedAt === undefined ? undefined : now - issuedAt;
  const stale = (why: string, maxAgeSeconds?: number) =>
    new TrustplaneError('stale_bundle_fail_closed', `policy bundle is stale: ${why}`, {
      freshness_class: freshnessClass,
      ...(ageSeconds !== undefined ? { age_seconds: ageSeconds } : {}),
      ...(maxAgeSeconds !== undefined ? { max_age_seconds: maxAgeSeconds } : {}),
    });

  if (bundle.expires_at !== undefined && now >= bundle.expires_at) throw stale('expired');
  if (freshnessClass === 'offline-ok') return { freshnessClass, ageSeconds, maxAgeSeconds: undefined };

  const maxAgeSeconds =
    freshnessClass === 'realtime'
      ? Math.min(
          route.max_staleness_seconds ?? REALTIME_MAX_STALENESS_SECONDS,
          REALTIME_MAX_STALENESS_SECONDS,
        )
      : (route.max_staleness_seconds ??
        bundle.default_max_staleness_seconds ??
        DEFAULT_BOUNDED_MAX_STALENESS_SECONDS);
  if (ageSeconds === undefined) throw stale('no issued_at, age unknown', maxAgeSeconds);
  if (ageSeconds < -DEFAULT_SKEW_SECONDS) throw stale('issued_at is in the future', maxAgeSeconds);
  if (ageSeconds > maxAgeSeconds) throw stale('older than its freshness class allows', maxAgeSeconds);
  return { freshnessClass, ageSeconds, maxAgeSeconds };
}
