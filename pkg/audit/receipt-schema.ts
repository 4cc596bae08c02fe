import { z } from 'zod';
import { keyBindingSchema } from '../authcore/claims.js';

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

/** The first schema issue, as `path: message` (for error messages; never the value). */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
}
