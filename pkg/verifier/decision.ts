import type { PassportContext, PassportProvenance } from '../authcore/claims.js';
import type { TrustplaneError } from '../authcore/errors.js';
import type { AuditAllowDecision, AuditDenyDecision } from '../audit/event-from-decision.js';
import type { KeyBinding } from '../authcore/signer-taxonomy.js';

/** Pipeline stage names, in order (a deny names the stage that refused). */
export type VerificationStage =
  'parse' | 'path' | 'route' | 'passport' | 'policy' | 'freshness' | 'proof' | 'replay' | 'mcp';

/** An allow decision: the verified identity (what its audit event records, and more). */
export interface AllowDecision extends AuditAllowDecision {
  readonly status: 200;
  /** Effective key binding (claimed, capped by the issuer's maximum). */
  readonly keyBinding: KeyBinding;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** The scheme the transcript covers (`publicOrigin`, else the API's `base_url`, else the request's). */
  readonly scheme: string;
  /** The `host[:port]` the transcript covers: the upstream gets it as `Host` (see the adapter). */
  readonly authority: string;
  /** The canonical query the transcript covers: the one handed to the upstream. */
  readonly query: string;
  readonly ctx?: PassportContext;
  readonly provenance?: PassportProvenance;
}

/** A deny decision. `message` and `details` are for audit logs, never for the HTTP body. */
export interface DenyDecision extends AuditDenyDecision {
  readonly stage: VerificationStage;
  readonly details: Readonly<Record<string, string | number | boolean>>;
}

/** What a deny is about, when known (for the audit event; never sent to the caller). */
export type DenyAbout = Pick<DenyDecision, 'routeId' | 'issuer' | 'subject' | 'jti'>;

/** The result of verifying one request. */
export type Decision = AllowDecision | DenyDecision;

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
