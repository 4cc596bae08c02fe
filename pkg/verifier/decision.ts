import type { PassportContext, PassportProvenance } from '../authcore/claims.js';
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

/** The JSON body an enforcement point sends on deny: `{"allowed":false,"reason":"<code>"}`. */
export function denyBody(decision: DenyDecision): { allowed: false; reason: ReasonCode } {
  return { allowed: false, reason: decision.reason };
}

/** Response headers for a deny: `WWW-Authenticate` on 401 (RFC 6750), no caching. */
export function denyHeaders(decision: DenyDecision): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'cache-control': 'no-store',
  };
  if (decision.status === 401) {
    headers['www-authenticate'] =
      decision.reason === 'missing_passport'
        ? 'Bearer realm="trustplane"'
        : 'Bearer realm="trustplane", error="invalid_token"';
  }
  return headers;
}

/** A Web `Response` for a deny decision. */
export function denyResponse(decision: DenyDecision): Response {
  return new Response(JSON.stringify(denyBody(decision)), {
    status: decision.status,
    headers: denyHeaders(decision),
  });
}
