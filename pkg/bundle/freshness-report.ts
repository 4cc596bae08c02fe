import { DEFAULT_SKEW_SECONDS } from '../authcore/verify-passport.js';
import {
  DEFAULT_BOUNDED_MAX_STALENESS_SECONDS,
  DEFAULT_FRESHNESS_CLASS,
  REALTIME_MAX_STALENESS_SECONDS,
} from './freshness.js';
import type { PolicyBundle, PolicyRoute } from './policy-bundle-schema.js';

/**
 * Where a document stands against its limits:
 * - `fresh`: every `bounded` route passes, with more than the margin left;
 * - `stale_soon`: a `bounded` route (or `expires_at`) is within the margin of its limit;
 * - `stale`: a `bounded` route already denies `stale_bundle_fail_closed`, or no route passes;
 * - `expired`: past `expires_at`, every route denies.
 */
export type FreshnessState = 'fresh' | 'stale_soon' | 'stale' | 'expired';

/** Age, limit and time left of one document (a policy bundle or trust material). */
export interface FreshnessReport {
  readonly issuedAt: number | undefined;
  /** `now - issued_at`, seconds. */
  readonly ageSeconds: number | undefined;
  /** Policy: the shortest `bounded` limit of its routes (undefined with no `bounded` route). */
  readonly limitSeconds: number | undefined;
  readonly expiresAt: number | undefined;
  /** Seconds until the first of the limit and `expires_at` (negative once past; undefined: none). */
  readonly timeLeftSeconds: number | undefined;
  /** The margin before the limit in which the state is `stale_soon` ({@link staleSoonMarginSeconds}). */
  readonly marginSeconds: number | undefined;
  readonly state: FreshnessState;
}

/**
 * The warning margin before a limit of `limitSeconds`: min(60 s, 20 % of the limit), rounded up,
 * at least 1 s. A 300 s limit warns 60 s ahead, a 10 s limit 2 s ahead.
 * @example staleSoonMarginSeconds(300) // 60
 */
export function staleSoonMarginSeconds(limitSeconds: number): number {
  return Math.max(1, Math.min(60, Math.ceil(limitSeconds * 0.2)));
}

/** The effective limit of a route's class (undefined for `offline-ok`). */
export function routeLimitSeconds(
  bundle: Pick<PolicyBundle, 'default_freshness_class' | 'default_max_staleness_seconds'>,
  route: Pick<PolicyRoute, 'freshness_class' | 'max_staleness_seconds'>,
): { readonly freshnessClass: string; readonly limitSeconds: number | undefined } {
  const freshnessClass = route.freshness_class ?? bundle.default_freshness_class ?? DEFAULT_FRESHNESS_CLASS;
  if (freshnessClass === 'offline-ok') return { freshnessClass, limitSeconds: undefined };
  if (freshnessClass === 'realtime')
    return {
      freshnessClass,
      limitSeconds: Math.min(
        route.max_staleness_seconds ?? REALTIME_MAX_STALENESS_SECONDS,
        REALTIME_MAX_STALENESS_SECONDS,
      ),
    };
  return {
    freshnessClass,
    limitSeconds:
      route.max_staleness_seconds ??
      bundle.default_max_staleness_seconds ??
      DEFAULT_BOUNDED_MAX_STALENESS_SECONDS,
  };
}

/**
 * The shortest age limit of any `bounded` or `realtime` route: a publisher re-signs well inside it.
 * Undefined when every route is `offline-ok`.
 */
export function shortestRouteLimitSeconds(
  policy: Pick<PolicyBundle, 'route_groups' | 'default_freshness_class' | 'default_max_staleness_seconds'>,
): number | undefined {
  let shortest: number | undefined;
  for (const group of policy.route_groups)
    for (const route of group.routes) {
      const { limitSeconds } = routeLimitSeconds(policy, route);
      if (limitSeconds !== undefined && (shortest === undefined || limitSeconds < shortest))
        shortest = limitSeconds;
    }
  return shortest;
}

function expiryReport(issuedAt: number | undefined, expiresAt: number | undefined, now: number) {
  if (expiresAt === undefined) return { left: undefined, margin: undefined };
  const lifetime = issuedAt !== undefined ? expiresAt - issuedAt : expiresAt - now;
  return { left: expiresAt - now, margin: staleSoonMarginSeconds(Math.max(1, lifetime)) };
}

/**
 * Describe a policy bundle's freshness at `now`: its age, the shortest `bounded` limit of its
 * routes, the time left before a `bounded` route denies `stale_bundle_fail_closed` (or the bundle
 * expires), and the state. `realtime` routes (≤ 30 s) make the state `stale` only when no route
 * passes at all: they are meant to follow a publisher that re-signs within seconds.
 *
 * @param policy the policy bundle document
 * @param now current time, epoch seconds
 * @returns the report ({@link FreshnessReport})
 * @example
 * const { state, timeLeftSeconds } = describePolicyFreshness(loaded.document, nowSeconds)
 */
export function describePolicyFreshness(
  policy: Pick<
    PolicyBundle,
    'route_groups' | 'default_freshness_class' | 'default_max_staleness_seconds' | 'issued_at' | 'expires_at'
  >,
  now: number,
): FreshnessReport {
  if (!Number.isFinite(now)) throw new TypeError('describePolicyFreshness: now must be epoch seconds');
  const issuedAt = policy.issued_at;
  const ageSeconds = issuedAt === undefined ? undefined : now - issuedAt;
  let bounded: number | undefined;
  let anyRoute = false;
  let anyPasses = false;
  for (const group of policy.route_groups)
    for (const route of group.routes) {
      anyRoute = true;
      const { freshnessClass, limitSeconds } = routeLimitSeconds(policy, route);
      if (freshnessClass === 'bounded' && (bounded === undefined || limitSeconds! < bounded))
        bounded = limitSeconds;
      if (
        limitSeconds === undefined ||
        (ageSeconds !== undefined && ageSeconds >= -DEFAULT_SKEW_SECONDS && ageSeconds <= limitSeconds)
      )
        anyPasses = true;
    }
  const expiry = expiryReport(issuedAt, policy.expires_at, now);
  const limitLeft = bounded !== undefined && ageSeconds !== undefined ? bounded - ageSeconds : undefined;
  const candidates = [limitLeft, expiry.left].filter((v): v is number => v !== undefined);
  const timeLeftSeconds = candidates.length > 0 ? Math.min(...candidates) : undefined;
  const marginSeconds = bounded !== undefined ? staleSoonMarginSeconds(bounded) : expiry.margin;
  let state: FreshnessState = 'fresh';
  if (expiry.left !== undefined && expiry.left <= 0) state = 'expired';
  else if (
    (bounded !== undefined &&
      (ageSeconds === undefined || ageSeconds < -DEFAULT_SKEW_SECONDS || limitLeft! < 0)) ||
    (anyRoute && !anyPasses)
  )
    state = 'stale';
  else if (
    (limitLeft !== undefined && limitLeft <= staleSoonMarginSeconds(bounded!)) ||
    (expiry.left !== undefined && expiry.left <= expiry.margin!)
  )
    state = 'stale_soon';
  return {
    issuedAt,
    ageSeconds,
    limitSeconds: bounded,
    expiresAt: policy.expires_at,
    timeLeftSeconds,
    marginSeconds,
    state,
  };
}

/**
 * Describe trust material's freshness at `now`: it has no age limit of its own, only `expires_at`
 * (`stale_soon` within min(60 s, 20 % of its lifetime) of it).
 * @example describeTrustFreshness({ issuedAt: trust.issuedAt, expiresAt: trust.expiresAt }, now)
 */
export function describeTrustFreshness(
  trust: { readonly issuedAt?: number | undefined; readonly expiresAt?: number | undefined },
  now: number,
): FreshnessReport {
  if (!Number.isFinite(now)) throw new TypeError('describeTrustFreshness: now must be epoch seconds');
  const expiry = expiryReport(trust.issuedAt, trust.expiresAt, now);
  let state: FreshnessState = 'fresh';
  if (expiry.left !== undefined && expiry.left <= 0) state = 'expired';
  else if (expiry.left !== undefined && expiry.left <= expiry.margin!) state = 'stale_soon';
  return {
    issuedAt: trust.issuedAt,
    ageSeconds: trust.issuedAt === undefined ? undefined : now - trust.issuedAt,
    limitSeconds: undefined,
    expiresAt: trust.expiresAt,
    timeLeftSeconds: expiry.left,
    marginSeconds: expiry.margin,
    state,
  };
}

/** A {@link FreshnessReport} as snake_case JSON (what `/readyz`, `bundle verify` and logs show). */
export function freshnessJson(report: FreshnessReport): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  if (report.issuedAt !== undefined) out.issued_at = report.issuedAt;
  if (report.ageSeconds !== undefined) out.age_seconds = report.ageSeconds;
  if (report.limitSeconds !== undefined) out.limit_seconds = report.limitSeconds;
  if (report.expiresAt !== undefined) out.expires_at = report.expiresAt;
  if (report.timeLeftSeconds !== undefined) out.time_left_seconds = report.timeLeftSeconds;
  if (report.marginSeconds !== undefined) out.margin_seconds = report.marginSeconds;
  out.state = report.state;
  return out;
}
