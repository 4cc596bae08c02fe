import { TrustplaneError } from '../authcore/errors.js';
import type { ReasonCode } from '../authcore/reason-codes.js';

/**
 * Stable codes of {@link ReceiptError}: the registry codes of the `receipt` layer (component
 * errors; no enforcement point answers a request with them).
 */
export const RECEIPT_ERROR_CODES = Object.freeze([
  'receipt_malformed',
  'receipt_unknown_key',
  'receipt_signature_invalid',
  'receipt_key_not_valid_at_iat',
  'receipt_adapter_mismatch',
] as const satisfies readonly ReasonCode[]);

/** A stable receipt failure code. */
export type ReceiptErrorCode = (typeof RECEIPT_ERROR_CODES)[number];

/**
 * A receipt failed parsing or verification. `reason` is the registry code (layer `receipt`); the
 * message never contains the receipt, a key or a signature, and every signature failure shares
 * one message.
 * @example
 * try { await verifyReceipt(r, trust) } catch (e) { if (e instanceof ReceiptError) log(e.reason) }
 */
export class ReceiptError extends TrustplaneError {
  /** Stable registry code (layer `receipt`). */
  declare readonly reason: ReceiptErrorCode;

  /**
   * @param reason the registry code
   * @param message what failed, never the receipt, a key or a signature
   */
  constructor(reason: ReceiptErrorCode, message: string) {
    super(reason, message);
  }
}
