import { TrustplaneError } from '../authcore/errors.js';
import { EMPTY_BODY_SHA256, splitTarget } from '../internal/node-http/index.js';
import { queryAmbiguity } from '../proof/normalize-query.js';
import { IDENTITY_HEADERS } from '../proof/wire.js';
import {
  identityHeaders,
  type AllowEnforcement,
  type NormalizedRequest,
  type PassEnforcement,
} from '../verifier/index.js';

// The part every external-authorization point shares (forward-auth over HTTP, Envoy ext_authz over
// gRPC): the gateway describes a request it holds, the kernel decides it, and the answer tells the
// gateway which headers to hand upstream. The transport (an HTTP 200, an OkHttpResponse) is the
// point's own; the rules below are written once.

const HEX64 = /^[0-9a-f]{64}$/;
// Methods whose requests normally carry a body: when the gateway does not say whether there is one,
// the body is treated as present (and unverifiable).
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** What the gateway says about the original request's body when it did not pass it (whole). */
export type BodySignal = 'none' | 'present' | 'unknown';

/** The header the gateway answers whether the body was bound with. */
export const BODY_VERIFIED_HEADER = 'x-trustplane-body-verified';

/**
 * A query an upstream could read otherwise than the transcript's canonical one (a `+`, a repeated
 * key), or a malformed one: the gateway forwards the original query, not the canonical one.
 * @param target the original request target (`/path?query`)
 * @returns the refusal (`ambiguous_request_query`, `malformed_request`), or undefined
 */
export function originalQueryRefusal(target: string): TrustplaneError | undefined {
  try {
    const ambiguity = queryAmbiguity(splitTarget(target).query);
    return ambiguity === undefined
      ? undefined
      : new TrustplaneError('ambiguous_request_query', `ambiguous request query: ${ambiguity}`);
  } catch (e) {
    return e instanceof TrustplaneError ? e : new TrustplaneError('malformed_request', 'malformed query');
  }
}

/** The request to decide, and whether its body is verified (`X-TrustPlane-Body-Verified`). */
export interface GatewayBody {
  readonly request: NormalizedRequest;
  readonly verified: boolean;
}

/** What the point knows about the body, for {@link gatewayBody}. */
export interface GatewayBodyFacts {
  /** The whole body was passed to the point: `request` reads (and binds) it. */
  readonly received: boolean;
  /** Otherwise: what the gateway says about it. */
  readonly signal: BodySignal;
  /** The caller's `X-TrustPlane-Body-SHA256`, as sent. */
  readonly claimedSha256: string | undefined;
}

/**
 * Bind the body as far as the gateway allows. A whole body passed to the point (Envoy
 * `with_request_body`, Traefik `forwardBody`) is verified. Otherwise:
 * - the gateway says there is none: the empty body is verified;
 * - it says there is one (or that what it passed is partial), or it says nothing and the method
 *   normally carries one (POST, PUT, PATCH, DELETE): the caller's claimed
 *   `X-TrustPlane-Body-SHA256` stands in for the digest and the request is `bodyUnverified`
 *   (denied `unverifiable_body` unless the route sets `allow_unverified_body`);
 * - it says nothing for another method: decided with the empty body, but reported
 *   `X-TrustPlane-Body-Verified: false`.
 * @param request the request as read (its `readBody` reads the passed body)
 * @param facts whether the body was received whole, the gateway's signal, the claimed digest
 */
export function gatewayBody(request: NormalizedRequest, facts: GatewayBodyFacts): GatewayBody {
  if (facts.received) return { request, verified: true };
  // Nothing (whole) was passed: the body is the empty one, or the caller's claimed digest stands in.
  const { readBody: _unused, ...withoutBody } = request;
  const empty: NormalizedRequest = { ...withoutBody, bodySha256: EMPTY_BODY_SHA256, bodyLength: 0 };
  if (facts.signal === 'none') return { request: empty, verified: true };
  if (facts.signal === 'unknown' && !BODY_METHODS.has(request.method.toUpperCase())) {
    return { request: empty, verified: false };
  }
  const claimed = facts.claimedSha256?.trim().toLowerCase();
  const bodySha256 = claimed !== undefined && HEX64.test(claimed) ? claimed : EMPTY_BODY_SHA256;
  return {
    request: {
      ...withoutBody,
      bodySha256,
      bodyLength: bodySha256 === EMPTY_BODY_SHA256 ? 0 : 1,
      bodyUnverified: true,
    },
    verified: false,
  };
}

/** What the gateway hands upstream for a request the kernel let through. */
export interface GatewayGrant {
  /** Headers to set (replacing any the caller sent under the same names). */
  readonly set: Readonly<Record<string, string>>;
  /**
   * Identity headers this answer carries no value for (a dry-run pass: all of them, and
   * `X-TrustPlane-Body-Verified`): the gateway must drop any copy the caller sent.
   */
  readonly unset: readonly string[];
}

const ALL_GRANT_HEADERS: readonly string[] = Object.freeze([...IDENTITY_HEADERS, BODY_VERIFIED_HEADER]);

/**
 * The headers of a let-through request: on allow the identity headers of the decision and
 * `X-TrustPlane-Body-Verified`; on a dry-run pass none, every one of those names to be dropped.
 * @param enforcement the kernel's allow or pass
 * @param verified whether the body was bound ({@link gatewayBody})
 */
export function gatewayGrant(
  enforcement: AllowEnforcement | PassEnforcement,
  verified: boolean,
): GatewayGrant {
  if (enforcement.outcome === 'pass') return { set: {}, unset: ALL_GRANT_HEADERS };
  return {
    set: { ...identityHeaders(enforcement.decision), [BODY_VERIFIED_HEADER]: verified ? 'true' : 'false' },
    unset: [],
  };
}
