import { z } from 'zod';
import { keyBindingSchema } from '../authcore/claims.js';
import { SIGNATURE_FAILURE_MESSAGE, TrustplaneError } from '../authcore/errors.js';
import { verifyEd25519 } from '../authcore/verify-ed25519.js';
import type { SigningKey } from '../authcore/signing-key.js';
import type { VerifyKey } from '../authcore/verify-key.js';
import { PASSPORT_ALGORITHMS } from '../authcore/passport-format.js';
import type { ReasonCode } from '../authcore/reason-codes.js';
import { decodeBase64Url, encodeBase64Url } from '../internal/base64url.js';
import { fromUtf8Strict, utf8 } from '../internal/bytes.js';
import { sha256Hex } from '../internal/sha256.js';

/*
 * trustplane-receipt-v1: what an adapter signs after the upstream answered a receipt route. A
 * compact JWS (RFC 7515) signed with the adapter's receipt key, a key the trust material lists
 * under `receipt_keys`. Verification is offline and takes no clock: the receipt's own `iat` must
 * fall inside the key's signing window, so a receipt stays verifiable after the passport expired,
 * after the caller's key was removed, and after the receipt key was rotated out, for as long as
 * the trust material still lists that key.
 */

/** Receipt format identifier (payload `v` and header `typ`). */
export const RECEIPT_VERSION = 'trustplane-receipt-v1';
/** Longest compact receipt accepted (characters); `X-TrustPlane-Receipt` and audit events carry it. */
export const MAX_RECEIPT_LENGTH = 8192;

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

const text = (max: number) => z.string().min(1).max(max);
const epochSeconds = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be lowercase hex SHA-256');
// eslint-disable-next-line no-control-regex
const NO_CONTROL = /^[^\u0000-\u001f\u007f]*$/;

/** `request` of a receipt: which request the decision was about. */
export const receiptRequestSchema = z.strictObject({
  /** Lowercase hex SHA-256 of the request's transcript-v1 canonical bytes. */
  transcript_sha256: sha256HexSchema,
  method: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Z]{1,32}$/, 'must be an uppercase HTTP method token'),
  authority: z.string().regex(/^[\x21-\x7e]{1,261}$/, 'must be 1-261 printable ASCII characters'),
  /** The raw path as sent, without the query. */
  path: text(2048).regex(NO_CONTROL, 'must not contain control characters'),
  route_id: z
    .string()
    .regex(/^[\x21-\x7e]{1,256}$/, 'must be 1-256 printable ASCII characters without spaces'),
});

/** `identity` of a receipt: the verified passport the request carried. */
export const receiptIdentitySchema = z.strictObject({
  iss: text(2048),
  sub: text(2048),
  aud: text(2048),
  jti: text(256),
  trust_domain: z.string().regex(/^[a-z0-9._-]{1,255}$/, 'must be a lowercase trust domain'),
  /** The effective key binding (the passport's, capped by its issuer). */
  key_binding: keyBindingSchema,
});

/** `response` of a receipt: what the upstream answered. */
export const receiptResponseSchema = z.strictObject({
  status: z.number().int().min(100).max(599),
  /** Lowercase hex SHA-256 of the exact response body bytes ({@link responseBodyDigest}). */
  body_sha256: sha256HexSchema,
});

/** The signed payload of a trustplane-receipt-v1. `reason` is present exactly on a deny. */
export const receiptPayloadSchema = z
  .strictObject({
    v: z.literal(RECEIPT_VERSION),
    /** The adapter instance that signed. */
    adapter: text(256),
    /** When the receipt was signed, epoch seconds. */
    iat: epochSeconds,
    request: receiptRequestSchema,
    identity: receiptIdentitySchema,
    decision: z.enum(['allow', 'deny']),
    reason: z
      .string()
      .regex(/^[a-z0-9_]{1,64}$/, 'must be a reason code')
      .optional(),
    response: receiptResponseSchema,
    policy_version: text(256).optional(),
  })
  .superRefine((payload, ctx) => {
    if ((payload.decision === 'deny') !== (payload.reason !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'reason is required on deny and absent on allow',
        path: ['reason'],
      });
    }
  });

/** The protected header of a receipt. `Ed25519` (RFC 9864) is accepted as an alias of `EdDSA`. */
export const receiptHeaderSchema = z.strictObject({
  alg: z.enum(['EdDSA', 'Ed25519']),
  kid: text(256),
  typ: z.literal(RECEIPT_VERSION),
});

/** A trustplane-receipt-v1 payload. */
export type ReceiptPayload = z.infer<typeof receiptPayloadSchema>;
/** The protected header of a receipt. */
export type ReceiptHeader = z.infer<typeof receiptHeaderSchema>;

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

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
}

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

/**
 * The `response.body_sha256` of a receipt: lowercase hex SHA-256 of the exact body bytes.
 * @example const body_sha256 = await responseBodyDigest(new Uint8Array(await res.arrayBuffer()))
 */
export function responseBodyDigest(body: Uint8Array | string): Promise<string> {
  return sha256Hex(body);
}
