import { statusForReason, type ReasonCode } from '../authcore/reason-codes.js';
import type { DenyDecision } from './decision.js';

/**
 * The one deny answer every HTTP enforcement point sends: the reason's status, the JSON body
 * `{"allowed":false,"reason":"<code>"}`, and the headers `Content-Type: application/json`,
 * `Cache-Control: no-store`, `X-TrustPlane-Reason: <code>`, plus `WWW-Authenticate` on 401
 * (RFC 6750 §3). Nothing else of the decision (stage, message, details) reaches the caller.
 */
export interface DenyAnswer {
  readonly status: number;
  /** Lowercase header names. */
  readonly headers: Readonly<Record<string, string>>;
  /** The exact body bytes, as a string. */
  readonly body: string;
}

const answers = new Map<ReasonCode, DenyAnswer>();

/**
 * The deny answer for a decision (computed once per reason code; frozen).
 * @param decision the deny decision (only its reason is read: the status is the registry's)
 * @returns status, headers and body
 * @example
 * const { status, headers, body } = denyAnswer(decision)
 * res.writeHead(status, headers).end(body)
 */
export function denyAnswer(decision: Pick<DenyDecision, 'reason'>): DenyAnswer {
  const hit = answers.get(decision.reason);
  if (hit !== undefined) return hit;
  const reason = decision.reason;
  const status = statusForReason(reason);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'x-trustplane-reason': reason,
  };
  if (status === 401) {
    headers['www-authenticate'] =
      reason === 'missing_passport'
        ? 'Bearer realm="trustplane"'
        : 'Bearer realm="trustplane", error="invalid_token"';
  }
  const answer: DenyAnswer = Object.freeze({
    status,
    headers: Object.freeze(headers),
    body: JSON.stringify({ allowed: false, reason }),
  });
  answers.set(reason, answer);
  return answer;
}

/** The JSON body an enforcement point sends on deny: `{"allowed":false,"reason":"<code>"}`. */
export function denyBody(decision: Pick<DenyDecision, 'reason'>): { allowed: false; reason: ReasonCode } {
  return { allowed: false, reason: decision.reason };
}

/** The headers of {@link denyAnswer} (a fresh, mutable copy). */
export function denyHeaders(decision: Pick<DenyDecision, 'reason'>): Record<string, string> {
  return { ...denyAnswer(decision).headers };
}

/** A Web `Response` carrying {@link denyAnswer}. */
export function denyResponse(decision: Pick<DenyDecision, 'reason'>): Response {
  const answer = denyAnswer(decision);
  return new Response(answer.body, { status: answer.status, headers: answer.headers });
}
