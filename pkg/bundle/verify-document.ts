import { SIGNATURE_FAILURE_MESSAGE, TrustplaneError } from '../authcore/errors.js';
import { verifyEd25519 } from '../authcore/verify-ed25519.js';
import type { VerifyKey } from '../authcore/verify-key.js';
import { decodeBase64Url } from '../internal/base64url.js';
import { SIGNATURE_FORMAT, UNSIGNED_SIGNATURE_FORMAT } from './document-signature-schema.js';
import { documentSigningInput } from './document-signing-input.js';

/** A key allowed to sign documents. */
export interface DocumentSigner {
  /** Matched against `signed_by.kid`. */
  readonly kid: string;
  /** The Ed25519 public key. */
  readonly key: VerifyKey;
  /** When set, `signed_by.issuer` must equal it too. */
  readonly issuer?: string;
}

/** Options for {@link verifyDocument}. */
export interface VerifyDocumentOptions {
  /** The keys allowed to sign. Empty only together with `allowUnsigned`. */
  readonly keys: readonly DocumentSigner[];
  /**
   * Development only: accept an unsigned document (no signature, `unsigned-skeleton`, or
   * `alg: "none"`). A signed document must still verify. Callers must log loudly when the result
   * says `signed: false`.
   */
  readonly allowUnsigned?: boolean;
}

/** Outcome of {@link verifyDocument}. */
export interface VerifyDocumentResult {
  /** True when an Ed25519 signature verified; false for an accepted unsigned document. */
  readonly signed: boolean;
  /** The kid of the key that verified. */
  readonly kid?: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const invalid = () => new TrustplaneError('bundle_signature_invalid', SIGNATURE_FAILURE_MESSAGE);

/**
 * Verify the signature of a trust-material or policy-bundle document. Only the signature is
 * checked here; the loaders also validate the schema.
 *
 * @param document the document (untrusted)
 * @param options the allowed signer keys and the dev flag
 * @returns whether the document was signed, and by which kid
 * @throws TrustplaneError `unsigned_bundle_rejected` for an unsigned document without `allowUnsigned`;
 *   `bundle_signature_invalid` (one fixed message) for an unknown kid, a malformed or wrong
 *   signature, or a tampered document
 * @throws TypeError for an empty key list without `allowUnsigned`, or duplicate kids
 * @example
 * const { signed, kid } = await verifyDocument(doc, { keys: [{ kid: 'bundle-2026-01', key }] })
 */
export async function verifyDocument(
  document: Readonly<Record<string, unknown>>,
  options: VerifyDocumentOptions,
): Promise<VerifyDocumentResult> {
  return verifyDocumentOver(document, options, () => documentSigningInput(document));
}

/**
 * {@link verifyDocument} with the signing input supplied by the caller (a loader that already has
 * the document's canonical members). Internal to pkg/bundle.
 * @param signingInput returns `documentSigningInput(document)`; called only for a signed document
 */
export async function verifyDocumentOver(
  document: Readonly<Record<string, unknown>>,
  options: VerifyDocumentOptions,
  signingInput: () => Uint8Array,
): Promise<VerifyDocumentResult> {
  const allowUnsigned = options.allowUnsigned === true;
  if (!Array.isArray(options.keys)) throw new TypeError('verifyDocument: keys must be an array');
  if (options.keys.length === 0 && !allowUnsigned) {
    throw new TypeError('verifyDocument: no signer keys configured (and unsigned documents not allowed)');
  }
  if (new Set(options.keys.map((k) => k.kid)).size !== options.keys.length) {
    throw new TypeError('verifyDocument: duplicate signer kid');
  }
  if (!isRecord(document)) throw invalid();

  const signature = Object.hasOwn(document, 'signature') ? document.signature : undefined;
  const signedBy = Object.hasOwn(document, 'signed_by') ? document.signed_by : undefined;
  const unsigned =
    signature === undefined ||
    (isRecord(signature) && signature.format === UNSIGNED_SIGNATURE_FORMAT) ||
    (isRecord(signedBy) && signedBy.alg === 'none');
  if (unsigned) {
    if (allowUnsigned) return { signed: false };
    throw new TrustplaneError(
      'unsigned_bundle_rejected',
      'document is unsigned and unsigned documents are not allowed',
    );
  }

  if (!isRecord(signature) || signature.format !== SIGNATURE_FORMAT || typeof signature.value !== 'string') {
    throw invalid();
  }
  if (!isRecord(signedBy) || signedBy.alg !== 'EdDSA' || typeof signedBy.kid !== 'string') throw invalid();
  const bytes = decodeBase64Url(signature.value);
  if (!bytes || bytes.length !== 64) throw invalid();
  const signer = options.keys.find((k) => k.kid === signedBy.kid);
  if (!signer) throw invalid();
  if (signer.issuer !== undefined && signer.issuer !== signedBy.issuer) throw invalid();
  let input: Uint8Array;
  try {
    input = signingInput();
  } catch {
    throw invalid();
  }
  if (!(await verifyEd25519(signer.key, bytes, input))) throw invalid();
  return { signed: true, kid: signer.kid };
}
