import { fromHex, toArrayBufferView } from '../internal/bytes.js';
import { ED25519 } from './key-encoding.js';
import type { VerifyKey } from './verify-key.js';

/**
 * A synchronous pure-Ed25519 verify primitive over a raw 32-byte public key (e.g. libsodium's
 * `crypto_sign_verify_detached` or `node:crypto`), for runtimes where it beats WebCrypto.
 */
export type Ed25519VerifyPrimitive = (
  publicKey: Uint8Array,
  signature: Uint8Array,
  message: Uint8Array,
) => boolean;

let primitive: Ed25519VerifyPrimitive | undefined;

// RFC 8032 §7.1 TEST 1: the known-answer check a primitive must pass before it is used.
const KAT_PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const KAT_SIGNATURE =
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';

/**
 * Route every {@link verifyEd25519} call in this process through `fn` (undefined restores
 * WebCrypto). The primitive must first pass a known-answer test (RFC 8032 TEST 1 verifies; the same
 * signature with one bit flipped, or over another message, does not), else this throws and nothing
 * changes: a broken primitive can never fail open.
 * @throws TypeError when the primitive fails the known-answer test
 * @example
 * useEd25519Primitive((pk, sig, msg) => sodium.crypto_sign_verify_detached(sig, msg, pk))
 */
export function useEd25519Primitive(fn: Ed25519VerifyPrimitive | undefined): void {
  if (fn === undefined) {
    primitive = undefined;
    return;
  }
  const pk = fromHex(KAT_PUBLIC)!;
  const sig = fromHex(KAT_SIGNATURE)!;
  const flipped = sig.slice();
  flipped[10] = flipped[10]! ^ 1;
  const run = (s: Uint8Array, m: Uint8Array) => {
    try {
      return fn(pk, s, m) === true;
    } catch {
      return false;
    }
  };
  if (!run(sig, new Uint8Array(0)) || run(flipped, new Uint8Array(0)) || run(sig, new Uint8Array([0]))) {
    throw new TypeError('Ed25519 primitive failed the RFC 8032 known-answer test');
  }
  primitive = fn;
}

/** The name of the verify backend in use (`webcrypto` or `primitive`). */
export function ed25519Backend(): 'webcrypto' | 'primitive' {
  return primitive ? 'primitive' : 'webcrypto';
}

/**
 * Verify a pure Ed25519 signature. Returns false (never throws) for a wrong-length signature.
 */
export async function verifyEd25519(
  key: VerifyKey,
  signature: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  if (signature.length !== 64) return false;
  if (primitive) {
    try {
      return primitive(key.raw, signature, data) === true;
    } catch {
      return false;
    }
  }
  try {
    return await crypto.subtle.verify(
      ED25519,
      key.cryptoKey,
      toArrayBufferView(signature),
      toArrayBufferView(data),
    );
  } catch {
    return false;
  }
}
