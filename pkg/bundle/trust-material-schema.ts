import { z } from 'zod';
import { keyBindingSchema } from '../authcore/claims.js';
import { signatureSchema, signedBySchema } from './document-signature-schema.js';
import {
  addDuplicateIssues,
  epochSeconds,
  sourceType,
  text,
  trustDomain,
  urlField,
  addValidityWindowIssue,
} from './schema-fields.js';

/*
 * zod schemas of trustplane-trust-material-v1 and its parts. The rules every document schema
 * follows, and the building blocks they share, are in schema-fields.ts.
 */

/** Trust-material format identifier. */
export const TRUST_MATERIAL_VERSION = 'trustplane-trust-material-v1';

/** Canonical unpadded base64url of exactly 32 bytes: 43 characters, last one with 2 zero low bits. */
const ed25519X = z
  .string()
  .regex(/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/, 'must be canonical base64url of a 32-byte key');

/** An Ed25519 public JWK of a trusted issuer, with its optional validity window. */
export const issuerKeySchema = z
  .strictObject({
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519'),
    x: ed25519X,
    kid: text(256),
    use: z.literal('sig').optional(),
    alg: z.enum(['EdDSA', 'Ed25519']).optional(),
    nbf: epochSeconds.optional(),
    exp: epochSeconds.optional(),
  })
  .superRefine((key, ctx) => {
    if (key.nbf !== undefined && key.exp !== undefined && key.exp <= key.nbf) {
      ctx.addIssue({ code: 'custom', message: 'exp must be after nbf', path: ['exp'] });
    }
  });

/**
 * A trusted passport issuer. `max_key_binding` caps what it may vouch for; when absent the loader
 * uses `attested_workload` for `source_type: spiffe_spire` and `software` for every other type.
 */
export const trustedIssuerSchema = z
  .strictObject({
    issuer: text(2048),
    trust_domain: trustDomain,
    source_type: sourceType,
    max_key_binding: keyBindingSchema.optional(),
    keys: z.array(issuerKeySchema).min(1),
  })
  .superRefine((issuer, ctx) => {
    addDuplicateIssues(
      ctx,
      issuer.keys,
      (k) => k.kid,
      (i) => ['keys', i, 'kid'],
      'duplicate kid within the issuer',
    );
  });

const base64Der = z
  .string()
  .max(16384)
  .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'must be base64 DER')
  .min(4);
const b64u = (max: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_-]*$/, 'must be base64url')
    .min(1)
    .max(max);

/** One authority of a SPIFFE bundle (a JWK with a SPIFFE `use`). */
export const spiffeBundleKeySchema = z
  .strictObject({
    use: z.enum(['x509-svid', 'jwt-svid']),
    kty: z.enum(['EC', 'RSA', 'OKP']),
    kid: text(256).optional(),
    alg: text(32).optional(),
    crv: text(32).optional(),
    x: b64u(1024).optional(),
    y: b64u(1024).optional(),
    n: b64u(2048).optional(),
    e: b64u(16).optional(),
    key_ops: z.array(text(32)).max(8).optional(),
    x5c: z.array(base64Der).min(1).max(8).optional(),
    x5t: b64u(64).optional(),
    'x5t#S256': b64u(64).optional(),
    x5u: urlField(['https']).optional(),
  })
  .superRefine((key, ctx) => {
    // SPIFFE Trust Domain and Bundle, section 4: x509-svid carries exactly one certificate
    // (go-spiffe rejects more), jwt-svid needs a kid.
    if (key.use === 'x509-svid' && key.x5c?.length !== 1) {
      ctx.addIssue({ code: 'custom', message: 'x509-svid needs exactly one x5c certificate', path: ['x5c'] });
    }
    if (key.use === 'jwt-svid' && key.kid === undefined) {
      ctx.addIssue({ code: 'custom', message: 'jwt-svid needs a kid', path: ['kid'] });
    }
  });

/** A SPIFFE trust bundle (the SPIFFE bundle JWKS format) for one trust domain. */
export const spiffeBundleSchema = z.strictObject({
  trust_domain: trustDomain,
  keys: z.array(spiffeBundleKeySchema).min(1),
  spiffe_sequence: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  spiffe_refresh_hint: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
});

/**
 * A receipt-signing key of an adapter. `nbf`/`exp` bound when the key may SIGN receipts: a receipt
 * is checked against its own `iat`, never the verifier's clock, so a key rotated out (exp passed)
 * keeps verifying the receipts it signed while the trust material still lists it.
 */
export const receiptKeySchema = z
  .strictObject({
    kid: text(256),
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519'),
    x: ed25519X,
    adapter: text(256).optional(),
    nbf: epochSeconds.optional(),
    exp: epochSeconds.optional(),
  })
  .superRefine((key, ctx) => {
    if (key.nbf !== undefined && key.exp !== undefined && key.exp <= key.nbf) {
      ctx.addIssue({ code: 'custom', message: 'exp must be after nbf', path: ['exp'] });
    }
  });

/** trustplane-trust-material-v1: trusted issuers and their keys, SPIFFE bundles, receipt keys. */
export const trustMaterialSchema = z
  .strictObject({
    version: z.literal(TRUST_MATERIAL_VERSION),
    kind: z.literal('trust_material'),
    trust_domain: trustDomain.optional(),
    issued_at: epochSeconds.optional(),
    expires_at: epochSeconds.optional(),
    issuers: z.array(trustedIssuerSchema),
    spiffe_bundles: z.array(spiffeBundleSchema).optional(),
    receipt_keys: z.array(receiptKeySchema).optional(),
    signed_by: signedBySchema.optional(),
    signature: signatureSchema.optional(),
  })
  .superRefine((doc, ctx) => {
    addDuplicateIssues(
      ctx,
      doc.issuers,
      (i) => i.issuer,
      (i) => ['issuers', i, 'issuer'],
      'duplicate issuer',
    );
    addDuplicateIssues(
      ctx,
      doc.spiffe_bundles ?? [],
      (b) => b.trust_domain,
      (i) => ['spiffe_bundles', i, 'trust_domain'],
      'duplicate SPIFFE bundle trust_domain',
    );
    addDuplicateIssues(
      ctx,
      doc.receipt_keys ?? [],
      (k) => k.kid,
      (i) => ['receipt_keys', i, 'kid'],
      'duplicate receipt key kid',
    );
    addValidityWindowIssue(ctx, doc);
  });

/** A trustplane-trust-material-v1 document. */
export type TrustMaterial = z.infer<typeof trustMaterialSchema>;
/** An issuer entry of trust material. */
export type TrustMaterialIssuer = z.infer<typeof trustedIssuerSchema>;
/** An issuer key (public JWK) of trust material. */
export type IssuerKey = z.infer<typeof issuerKeySchema>;
/** A SPIFFE trust bundle of trust material. */
export type SpiffeBundle = z.infer<typeof spiffeBundleSchema>;
/** A SPIFFE bundle authority. */
export type SpiffeBundleKey = z.infer<typeof spiffeBundleKeySchema>;

/** A receipt-signing key of trust material. */
export type ReceiptKey = z.infer<typeof receiptKeySchema>;
