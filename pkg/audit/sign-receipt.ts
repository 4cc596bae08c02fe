import type { SigningKey } from '../authcore/signing-key.js';
import { encodeBase64Url } from '../internal/base64url.js';
import { utf8 } from '../internal/bytes.js';
import {
  firstIssue,
  MAX_RECEIPT_LENGTH,
  RECEIPT_VERSION,
  receiptHeaderSchema,
  receiptPayloadSchema,
  type ReceiptPayload,
} from './receipt-schema.js';

/**
 * Sign a receipt as an adapter: compact JWS with header
 * `{"alg":"EdDSA","kid":<kid>,"typ":"trustplane-receipt-v1"}` over the JSON payload.
 *
 * @param payload the receipt payload (validated against {@link receiptPayloadSchema})
 * @param key the adapter's receipt-signing key
 * @param kid the key's `kid` in the trust material's `receipt_keys`
 * @returns the compact receipt
 * @throws TypeError for an invalid payload or kid; RangeError when the receipt would exceed
 *   {@link MAX_RECEIPT_LENGTH}
 * @example
 * const receipt = await signReceipt({ v: 'trustplane-receipt-v1', adapter: 'edge-1', iat, ... }, key, 'receipt-2026-01')
 */
export async function signReceipt(payload: ReceiptPayload, key: SigningKey, kid: string): Promise<string> {
  const header = receiptHeaderSchema.safeParse({ alg: 'EdDSA', kid, typ: RECEIPT_VERSION });
  if (!header.success) throw new TypeError('signReceipt: kid must be 1-256 characters');
  const parsed = receiptPayloadSchema.safeParse(payload);
  if (!parsed.success) throw new TypeError(`signReceipt: invalid payload (${firstIssue(parsed.error)})`);
  const signingInput = `${encodeBase64Url(utf8(JSON.stringify(header.data)))}.${encodeBase64Url(
    utf8(JSON.stringify(parsed.data)),
  )}`;
  // base64url of a 64-byte signature is 86 characters, plus the dot.
  if (signingInput.length + 87 > MAX_RECEIPT_LENGTH) {
    throw new RangeError(`signReceipt: receipt would exceed ${MAX_RECEIPT_LENGTH} characters`);
  }
  const signature = await key.sign(utf8(signingInput));
  return `${signingInput}.${encodeBase64Url(signature)}`;
}
