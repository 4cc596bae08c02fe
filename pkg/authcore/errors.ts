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

/** A passport failed parsing, signature or claim validation. */
export class PassportError extends TrustplaneError {}

/** A request proof or request binding failed. */
export class ProofError extends TrustplaneError {}

/** A policy rule denied the request. */
export class PolicyError extends TrustplaneError {}

/** A request could not be parsed or is unsafe. */
export class RequestError extends TrustplaneError {}

/** A trust-material or policy-bundle document failed loading, verification or editing. */
export class BundleError extends TrustplaneError {}

/** The replay store refused (replay) or failed (unavailable). */
export class ReplayError extends TrustplaneError {}

/** Key material could not be parsed. */
export class KeyError extends TrustplaneError {}

/** The one message every signature failure uses, so failures are not an oracle. */
export const SIGNATURE_FAILURE_MESSAGE = 'signature verification failed';
