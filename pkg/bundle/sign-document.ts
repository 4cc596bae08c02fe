import type { SigningKey } from '../authcore/signing-key.js';
import { encodeBase64Url } from '../internal/base64url.js';
import { SIGNATURE_FORMAT } from './document-signature-schema.js';
import { documentSigningInput } from './document-signing-input.js';

/** Options for {@link signDocument}. */
export interface SignDocumentOptions {
  /** Who signs (goes into `signed_by.issuer`, covered by the signature). */
  readonly issuer: string;
  /** Key id of the signing key (goes into `signed_by.kid`, covered by the signature). */
  readonly kid: string;
}

/** A document after {@link signDocument}: the input plus `signed_by` and an Ed25519 `signature`. */
export type SignedDocument<T extends object> = Omit<T, 'signed_by' | 'signature'> & {
  signed_by: { issuer: string; kid: string; alg: 'EdDSA' };
  signature: { format: typeof SIGNATURE_FORMAT; value: string };
};

/**
 * Sign a trust-material or policy-bundle document (Ed25519 over {@link documentSigningInput}).
 * Any previous `signed_by`/`signature` is replaced. The input is not modified.
 *
 * @param document the document to sign (plain JSON data)
 * @param key the Ed25519 signing key (or anything that signs like one: a bundle server's KMS signer)
 * @param options `issuer` and `kid` recorded in `signed_by`
 * @returns a new document with `signed_by {issuer, kid, alg: "EdDSA"}` and
 *   `signature {format: "ed25519-jcs-v1", value}`
 * @throws TypeError for an empty issuer/kid or a document that is not plain JSON data
 * @example
 * const signed = await signDocument(bundle, bundleKey, { issuer: 'ops@example.local', kid: 'bundle-2026-01' })
 */
export async function signDocument<T extends object>(
  document: T,
  key: Pick<SigningKey, 'sign'>,
  options: SignDocumentOptions,
): Promise<SignedDocument<T>> {
  if (typeof options.issuer !== 'string' || options.issuer.length === 0) {
    throw new TypeError('signDocument: issuer is required');
  }
  if (typeof options.kid !== 'string' || options.kid.length === 0) {
    throw new TypeError('signDocument: kid is required');
  }
  const rest: Record<string, unknown> = { ...(document as Record<string, unknown>) };
  delete rest.signature;
  delete rest.signed_by;
  const unsigned = {
    ...rest,
    signed_by: { issuer: options.issuer, kid: options.kid, alg: 'EdDSA' as const },
  };
  const signature = await key.sign(documentSigningInput(unsigned));
  return {
    ...unsigned,
    signature: { format: SIGNATURE_FORMAT, value: encodeBase64Url(signature) },
  } as unknown as SignedDocument<T>;
}
