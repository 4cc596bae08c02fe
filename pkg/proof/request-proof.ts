import { verifyEd25519 } from '../authcore/verify-ed25519.js';
import type { SigningKey } from '../authcore/signing-key.js';
import type { VerifyKey } from '../authcore/verify-key.js';
import { decodeBase64Url, encodeBase64Url } from '../internal/base64url.js';

/**
 * Sign a transcript digest: Ed25519 over the 32 raw digest bytes, base64url without padding.
 * @example const proof = await signProof(transcript.digest, requestKey)
 */
export async function signProof(digest: Uint8Array, key: SigningKey): Promise<string> {
  if (digest.length !== 32) throw new RangeError('digest must be 32 bytes');
  return encodeBase64Url(await key.sign(digest));
}

/**
 * Verify a request proof over a transcript digest. Never throws for bad input: a malformed or
 * non-canonical proof is simply false.
 */
export async function verifyProof(digest: Uint8Array, proof: string, key: VerifyKey): Promise<boolean> {
  if (digest.length !== 32 || proof.length !== 86) return false;
  const signature = decodeBase64Url(proof);
  if (!signature || signature.length !== 64) return false;
  return verifyEd25519(key, signature, digest);
}
