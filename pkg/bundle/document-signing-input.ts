import { utf8 } from '../internal/bytes.js';
import { canonicalMembers } from '../internal/jcs.js';

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
  return signingInputFromMembers(canonicalMembers(document));
}

/**
 * {@link documentSigningInput} from the document's canonical members (`canonicalMembers`), for a
 * caller that already has them.
 * @example const bytes = signingInputFromMembers(canonicalMembers(bundle))
 */
export function signingInputFromMembers(members: readonly (readonly [string, string])[]): Uint8Array {
  let covered = '';
  for (const [name, text] of members) {
    if (name === 'signature') continue;
    covered += covered === '' ? text : `,${text}`;
  }
  return utf8(`${SIGNED_DOCUMENT_PREFIX}{${covered}}`);
}
