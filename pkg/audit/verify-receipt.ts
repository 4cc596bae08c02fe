import { SIGNATURE_FAILURE_MESSAGE } from '../authcore/errors.js';
import { PASSPORT_ALGORITHMS } from '../authcore/passport-format.js';
import { verifyEd25519 } from '../authcore/verify-ed25519.js';
import type { VerifyKey } from '../authcore/verify-key.js';
import { decodeBase64Url } from '../internal/base64url.js';
import { fromUtf8Strict, utf8 } from '../internal/bytes.js';
import { ReceiptError } from './receipt-error.js';
import {
  MAX_RECEIPT_LENGTH,
  receiptHeaderSchema,
  receiptPayloadSchema,
  type ReceiptHeader,
  type ReceiptPayload,
} from './receipt-schema.js';

/** A receipt-signing key as verification needs it (`LoadedReceiptKey` of loaded trust material). */
export interface ReceiptVerifyKey {
  readonly kid: string;
  readonly key: VerifyKey;
  /** When set, the receipt's `adapter` must equal it. */
  readonly adapter?: string;
  /** Epoch seconds from which the key may sign (inclusive). */
  readonly nbf?: number;
  /** Epoch seconds from which the key may no longer sign (exclusive). */
  readonly exp?: number;
}

/** Where receipt keys come from: loaded trust material satisfies it. */
export interface ReceiptTrust {
  /** Receipt keys by kid. */
  readonly receiptKeys: ReadonlyMap<string, ReceiptVerifyKey>;
}

/** Options for {@link verifyReceipt}. */
export interface VerifyReceiptOptions {
  /** When set, the receipt's `adapter` must equal it. */
  readonly expectAdapter?: string;
}

/** A verified receipt. */
export interface VerifiedReceipt {
  readonly header: ReceiptHeader;
  readonly payload: ReceiptPayload;
  /** The trust-material key that verified it. */
  readonly key: {
    readonly kid: string;
    readonly adapter?: string;
    readonly nbf?: number;
    readonly exp?: number;
  };
}

const malformed = (message = 'malformed receipt') => new ReceiptError('receipt_malformed', message);

function parseSegmentJson(segment: string): unknown {
  const bytes = decodeBase64Url(segment);
  if (!bytes) throw malformed();
  try {
    return JSON.parse(fromUtf8Strict(bytes)) as unknown;
  } catch {
    throw malformed();
  }
}

/**
 * Verify a receipt offline: EdDSA only, the header `kid` must name a receipt key of the trust
 * material, the signature must verify, and the receipt's `iat` must fall inside the key's
 * `[nbf, exp)` signing window. There is no clock: passport expiry, caller-key removal and receipt
 * key rotation do not invalidate a receipt whose key the trust material still lists.
 *
 * @param receipt the compact receipt (untrusted)
 * @param trust receipt keys by kid (loaded trust material)
 * @param options an optional expected adapter
 * @returns the verified header, payload and key
 * @throws ReceiptError `receipt_malformed` (format, algorithm, typ, schema), `receipt_unknown_key`,
 *   `receipt_signature_invalid`, `receipt_key_not_valid_at_iat`, `receipt_adapter_mismatch`
 * @example
 * const trust = await loadTrustMaterial(doc, { signers })
 * const { payload } = await verifyReceipt(receipt, trust, { expectAdapter: 'edge-1' })
 */
export async function verifyReceipt(
  receipt: unknown,
  trust: ReceiptTrust,
  options: VerifyReceiptOptions = {},
): Promise<VerifiedReceipt> {
  if (typeof trust !== 'object' || trust === null || typeof trust.receiptKeys?.get !== 'function') {
    throw new TypeError('verifyReceipt: trust.receiptKeys is required');
  }
  if (
    options.expectAdapter !== undefined &&
    (typeof options.expectAdapter !== 'string' || options.expectAdapter.length === 0)
  ) {
    throw new TypeError('verifyReceipt: expectAdapter must be a non-empty string');
  }
  if (typeof receipt !== 'string' || receipt.length === 0 || receipt.length > MAX_RECEIPT_LENGTH) {
    throw malformed();
  }
  const parts = receipt.split('.');
  if (parts.length !== 3) throw malformed();
  const [h, p, s] = parts as [string, string, string];
  const rawHeader = parseSegmentJson(h);
  // The algorithm is checked by name first, so `none` and HS* never reach key lookup.
  const alg =
    typeof rawHeader === 'object' && rawHeader !== null && Object.hasOwn(rawHeader, 'alg')
      ? (rawHeader as { alg: unknown }).alg
      : undefined;
  if (typeof alg !== 'string' || !PASSPORT_ALGORITHMS.has(alg)) {
    throw malformed('unsupported receipt algorithm');
  }
  const header = receiptHeaderSchema.safeParse(rawHeader);
  if (!header.success) throw malformed('malformed receipt header');
  const signature = decodeBase64Url(s);
  if (!signature || signature.length !== 64) throw malformed();

  const entry = trust.receiptKeys.get(header.data.kid);
  if (!entry || entry.kid !== header.data.kid) {
    throw new ReceiptError('receipt_unknown_key', 'receipt key is not in the trust material');
  }
  if (!(await verifyEd25519(entry.key, signature, utf8(`${h}.${p}`)))) {
    throw new ReceiptError('receipt_signature_invalid', SIGNATURE_FAILURE_MESSAGE);
  }

  const payload = receiptPayloadSchema.safeParse(parseSegmentJson(p));
  if (!payload.success) throw malformed('malformed receipt payload');
  const { iat, adapter } = payload.data;
  if ((entry.nbf !== undefined && iat < entry.nbf) || (entry.exp !== undefined && iat >= entry.exp)) {
    throw new ReceiptError(
      'receipt_key_not_valid_at_iat',
      'receipt iat is outside the signing window of its key',
    );
  }
  if (entry.adapter !== undefined && entry.adapter !== adapter) {
    throw new ReceiptError('receipt_adapter_mismatch', 'receipt adapter is not the adapter of its key');
  }
  if (options.expectAdapter !== undefined && options.expectAdapter !== adapter) {
    throw new ReceiptError('receipt_adapter_mismatch', 'receipt adapter is not the expected adapter');
  }
  return Object.freeze({
    header: header.data,
    payload: payload.data,
    key: Object.freeze({
      kid: entry.kid,
      ...(entry.adapter !== undefined ? { adapter: entry.adapter } : {}),
      ...(entry.nbf !== undefined ? { nbf: entry.nbf } : {}),
      ...(entry.exp !== undefined ? { exp: entry.exp } : {}),
    }),
  });
}
