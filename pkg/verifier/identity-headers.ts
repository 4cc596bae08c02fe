import type { IDENTITY_HEADERS } from '../proof/wire.js';
import type { AllowDecision } from './decision.js';

/** The identity headers of an allow, by lowercase name. */
export type IdentityHeaders = Readonly<Record<(typeof IDENTITY_HEADERS)[number], string>>;

/**
 * The headers an enforcement point hands upstream (proxy) or to the gateway (forward-auth) for an
 * allowed request: `X-TrustPlane-Subject`, `-Issuer`, `-Trust-Domain`, `-JTI`, `-Key-Binding`,
 * `-Route-Id`. Any header of that namespace the caller sent is removed before these are set.
 * @param decision the allow decision
 * @returns the six headers, lowercase names
 * @example
 * Object.assign(upstreamHeaders, identityHeaders(decision))
 */
export function identityHeaders(decision: AllowDecision): IdentityHeaders {
  return {
    'x-trustplane-subject': decision.subject,
    'x-trustplane-issuer': decision.issuer,
    'x-trustplane-trust-domain': decision.trustDomain,
    'x-trustplane-jti': decision.jti,
    'x-trustplane-key-binding': decision.keyBinding,
    'x-trustplane-route-id': decision.routeId,
  };
}
