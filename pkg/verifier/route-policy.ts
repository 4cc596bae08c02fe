import { TrustplaneError } from '../authcore/errors.js';
import type { IssuerRegistry } from '../authcore/issuer-registry.js';
import { checkFreshness, type FreshnessResult } from '../bundle/freshness.js';
import type { LoadedPolicy } from '../bundle/load-policy-bundle.js';
import type { PolicyRoute, PolicySource } from '../bundle/policy-bundle-schema.js';
import { evaluateSourcePolicy, type SourcePolicySubject } from './source-policy.js';

/**
 * The passport a route policy is evaluated for: a verified passport, or the claims the broker is
 * about to mint. `kid` is the JWS header `kid` (the issuer key that signs it).
 */
export interface RoutePolicySubject extends SourcePolicySubject {
  readonly kid: string;
}

/** Options for {@link evaluateRoutePolicy}. */
export interface RoutePolicyOptions {
  /** Current time, epoch seconds (injected clock). */
  readonly now: number;
  /** The trust material in force: once it has expired every route is stale. */
  readonly trust?: Pick<IssuerRegistry, 'expiresAt'>;
  /**
   * True when the enforcement point cannot see the body (forward-auth without the body): the
   * route must set `allow_unverified_body`.
   */
  readonly bodyUnverified?: boolean;
}

/** What a passing route policy found. */
export interface RoutePolicyResult {
  /** The allowed source that admitted the passport. */
  readonly source: PolicySource;
  /** The route's freshness class and the bundle's age. */
  readonly freshness: FreshnessResult;
}

/**
 * The one route-policy evaluation: everything the policy bundle says about a passport on a route,
 * in this order.
 * 0. The passport `trust_domain` is its issuer's (trust material), as `verifyPassport` requires: a
 *    no-op after it, but the broker evaluates claims before it signs them, and must refuse a peer of
 *    another (federated) trust domain with the verifier's code rather than mint a passport that no
 *    verifier accepts.
 * 1. Revocations: the passport `jti`, its `sub`, or a key (`kind: "key"` matches the header `kid`
 *    or `cnf.kid`), each optionally scoped to an issuer.
 * 2. A body the enforcement point cannot see is refused unless the route allows it.
 * 3. Sources: issuer, source type, trust domain, subject; then the route and source minimum key
 *    binding, context and provenance rules ({@link evaluateSourcePolicy}).
 * 4. Freshness: the trust material's `expires_at`, then the policy bundle's age against the
 *    route's freshness class (`checkFreshness`).
 *
 * The verifier pipeline, the broker (before it mints) and `trustplane verify --route-id` all call
 * it, so none of them can admit what another would refuse.
 *
 * @param route the resolved route
 * @param policy the loaded policy bundle the route belongs to
 * @param subject the passport (claims, header kid, issuer entry, effective key binding)
 * @param options the clock, the trust material, whether the body is unverifiable
 * @returns the admitting source and the freshness outcome
 * @throws TrustplaneError `trust_domain_mismatch`, `revoked`, `unverifiable_body`, `source_issuer_mismatch`,
 *   `source_type_mismatch`, `source_trust_domain_mismatch`, `source_subject_mismatch`,
 *   `insufficient_key_binding`, `context_policy_mismatch`, `provenance_policy_mismatch`,
 *   `stale_bundle_fail_closed`
 * @example
 * const entry = policy.routeTable.resolveById('orders.search')!
 * evaluateRoutePolicy(entry.route, policy, { ...verified, kid: verified.header.kid }, { now, trust })
 */
export function evaluateRoutePolicy(
  route: PolicyRoute,
  policy: LoadedPolicy,
  subject: RoutePolicySubject,
  options: RoutePolicyOptions,
): RoutePolicyResult {
  const { claims } = subject;
  if (claims.trust_domain !== subject.issuer.trustDomain) {
    throw new TrustplaneError('trust_domain_mismatch', "passport trust domain is not its issuer's");
  }
  if (
    policy.isRevoked({
      iss: claims.iss,
      sub: claims.sub,
      jti: claims.jti,
      kid: subject.kid,
      cnfKid: claims.cnf.kid,
    })
  ) {
    throw new TrustplaneError('revoked', 'passport revoked');
  }
  if (options.bodyUnverified === true && route.allow_unverified_body !== true) {
    throw new TrustplaneError(
      'unverifiable_body',
      'request body cannot be verified at this enforcement point',
    );
  }
  const source = evaluateSourcePolicy(route, policy.document, subject);
  const trustExpires = options.trust?.expiresAt;
  if (trustExpires !== undefined && options.now >= trustExpires) {
    throw new TrustplaneError('stale_bundle_fail_closed', 'trust material has expired', {
      expires_at: trustExpires,
    });
  }
  return { source, freshness: checkFreshness(policy, route, options.now) };
}
