import { type ReasonCode, statusForReason } from './reason-codes.js';

/**
 * Base class of every untrusted-input failure. `reason` is the stable code; `status` the HTTP
 * status an enforcement point answers with. Messages never contain tokens, keys or signatures.
 *
 * @example
 * try { await verifyPassport(token, options) } catch (e) {
 *   if (e instanceof TrustplaneError) audit.record({ reason: e.reason, status: e.status })
 * }
 */
export class TrustplaneError extends Error {
  /** Stable reason code (public API). */
  readonly reason: ReasonCode;
  /** HTTP status for this reason. */
  readonly status: number;
  /** Non-secret structured details for audit logs (never for HTTP bodies). */
  readonly details: Readonly<Record<string, string | number | boolean>>;

  constructor(
    reason: ReasonCode,
    message: string,
    details: Readonly<Record<string, string | number | boolean>> = {},
  ) {
    super(message);
    this.name = new.target.name;
    this.reason = reason;
    this.status = statusForReason(reason);
    this.details = details;
  }
}

/** The one message every signature failure uses, so failures are not an oracle. */
export const SIGNATURE_FAILURE_MESSAGE = 'signature verification failed';
