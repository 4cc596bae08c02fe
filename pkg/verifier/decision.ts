import type { PassportContext, PassportProvenance } from '../authcore/claims.js';
import type { TrustplaneError } from '../authcore/errors.js';
import type { ReasonCode } from '../authcore/reason-codes.js';
import type { KeyBinding } from '../authcore/signer-taxonomy.js';

/** Pipeline stage names, in order (a deny names the stage that refused). */
export type VerificationStage =
  'parse' | 'path' | 'route' | 'passport' | 'policy' | 'freshness' | 'proof' | 'replay';

/** An allow decision: the verified identity. */
export interface AllowDecision {
  readonly allowed: true;
  readonly status: 200;
  readonly routeId: string;
  readonly apiId: string;
  readonly audience: string;
  readonly subject: string;
  readonly issuer: string;
  readonly trustDomain: string;
  readonly jti: string;
  /** Effective key binding (claimed, capped by the issuer's maximum). */
  readonly keyBinding: KeyBinding;
  readonly sourceType: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly transcriptSha256: string;
  readonly ctx?: PassportContext;
  readonly provenance?: PassportProvenance;
}

/** A deny decision. `message` and `details` are for audit logs, never for the HTTP body. */
export interface DenyDecision {
  readonly allowed: false;
  readonly status: number;
  readonly reason: ReasonCode;
  readonly stage: VerificationStage;
  readonly message: string;
  readonly details: Readonly<Record<string, string | number | boolean>>;
  readonly routeId?: string;
  readonly issuer?: string;
  readonly subject?: string;
  readonly jti?: string;
}

/** The result of verifying one request. */
export type Decision = AllowDecision | DenyDecision;

/** What a deny is about, when known (for the audit event; never sent to the caller). */
export interface DenyAbout {
  readonly routeId?: string;
  readonly issuer?: string;
  readonly subject?: string;
  readonly jti?: string;
}

/**
 * The one deny constructor: a deny decision for a coded error at a pipeline stage. The status is
 * the registry's for the reason; `message` and `details` stay for the audit event.
 * @param error the coded error (its reason, message and details)
 * @param stage the stage that refused
 * @param about route and passport facts known so far
 * @returns the deny decision
 * @example
 * denyFrom(new TrustplaneError('policy_unavailable', 'no bundle loaded'), 'parse')
 */
export function denyFrom(
  error: TrustplaneError,
  stage: VerificationStage,
  about: DenyAbout = {},
): DenyDecision {
  return {
    allowed: false,
    status: error.status,
    reason: error.reason,
    stage,
    message: error.message,
    details: error.details,
    ...(about.routeId !== undefined ? { routeId: about.routeId } : {}),
    ...(about.issuer !== undefined ? { issuer: about.issuer } : {}),
    ...(about.subject !== undefined ? { subject: about.subject } : {}),
    ...(about.jti !== undefined ? { jti: about.jti } : {}),
  };
}
