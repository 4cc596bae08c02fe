import { z } from 'zod';
import { text } from './schema-fields.js';

/* zod schemas of `signed_by` and `signature`, the members both signed documents carry. */

/** Signature format of signed documents. */
export const SIGNATURE_FORMAT = 'ed25519-jcs-v1';
/** Signature format of placeholder (unsigned) documents. */
export const UNSIGNED_SIGNATURE_FORMAT = 'unsigned-skeleton';

/** Canonical unpadded base64url of exactly 64 bytes. */
const ed25519Signature = z
  .string()
  .regex(/^[A-Za-z0-9_-]{85}[AQgw]$/, 'must be canonical base64url of a 64-byte signature');

/** `signed_by` of a signed document (covered by the signature). */
export const signedBySchema = z.strictObject({
  issuer: text(2048),
  kid: text(256),
  alg: z.enum(['EdDSA', 'none']),
});

/** `signature` of a signed document (the one member the signature does not cover). */
export const signatureSchema = z.discriminatedUnion('format', [
  z.strictObject({ format: z.literal(SIGNATURE_FORMAT), value: ed25519Signature }),
  z.strictObject({ format: z.literal(UNSIGNED_SIGNATURE_FORMAT), value: z.string().max(1024) }),
]);

/** `signed_by` of a signed document. */
export type SignedBy = z.infer<typeof signedBySchema>;
/** `signature` of a signed document. */
export type DocumentSignature = z.infer<typeof signatureSchema>;
