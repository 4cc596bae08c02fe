import { utf8 } from '../internal/bytes.js';
import { canonicalizeJson } from '../internal/jcs.js';

/** Domain-separation prefix of every signed document (trust material, policy bundle). */
export const SIGNED_DOCUMENT_PREFIX = 'trustplane-signed-document-v1\n';

/**
 * The bytes a document signature covers: UTF-8 of `"trustplane-signed-document-v1\n"` followed by
 * the RFC 8785 canonical JSON of the document without its `signature` member (`signed_by` is
 * covered).
 *
 * @param document a plain JSON object
 * @returns the signing input
 * @throws TypeError when the document is not plain JSON data (see canonicalizeJson)
 * @example const bytes = documentSigningInput(bundle)
 */
export function documentSigningInput(document: Readonly<Record<string, unknown>>): Uint8Array {
  const covered = { ...document };
  delete covered.signature;
  return utf8(SIGNED_DOCUMENT_PREFIX + canonicalizeJson(covered));
}
