import { TrustplaneError } from '../authcore/errors.js';
import type { DocumentSigner } from '../bundle/index.js';
import type { ConfiguredKey } from './configured-keys.js';

function signedByKid(doc: unknown): string | undefined {
  if (typeof doc !== 'object' || doc === null) return undefined;
  const signedBy = (doc as { signed_by?: unknown }).signed_by;
  if (typeof signedBy !== 'object' || signedBy === null) return undefined;
  const kid = (signedBy as { kid?: unknown }).kid;
  return typeof kid === 'string' ? kid : undefined;
}

/**
 * Candidate signer sets: keys configured with a kid are matched by kid; a key configured without
 * one is tried under the document's `signed_by.kid` (any configured key is trusted to sign).
 */
function signerSets(keys: readonly ConfiguredKey[], doc: unknown): DocumentSigner[][] {
  const named = keys.filter((k) => k.kid !== undefined).map((k) => ({ kid: k.kid!, key: k.key }));
  const docKid = signedByKid(doc);
  const unnamed = keys.filter((k) => k.kid === undefined);
  const sets: DocumentSigner[][] = [];
  if (named.length > 0 || unnamed.length === 0) sets.push(named);
  if (docKid !== undefined && !named.some((k) => k.kid === docKid)) {
    for (const k of unnamed) sets.push([{ kid: docKid, key: k.key }]);
  }
  return sets;
}

/**
 * Load a document with the configured keys: each candidate signer set in turn (see
 * {@link signerSets}), as long as the failure is `bundle_signature_invalid`; the last failure is
 * thrown. Internal to pkg/runtime.
 */
export async function loadWith<T>(
  doc: unknown,
  keys: readonly ConfiguredKey[],
  allowUnsigned: boolean,
  load: (signers: DocumentSigner[]) => Promise<T>,
): Promise<T> {
  let last: unknown = new TrustplaneError('bundle_signature_invalid', 'signature verification failed');
  for (const signers of signerSets(keys, doc)) {
    if (signers.length === 0 && !allowUnsigned) continue;
    try {
      return await load(signers);
    } catch (e) {
      last = e;
      if (!(e instanceof TrustplaneError && e.reason === 'bundle_signature_invalid')) throw e;
    }
  }
  throw last;
}
