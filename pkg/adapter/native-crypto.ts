import { createPublicKey, hash, verify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Ed25519VerifyPrimitive } from '../authcore/verify-ed25519.js';
import type { Sha256Primitive } from '../internal/sha256.js';

/** A native Ed25519 verify primitive and where it comes from. */
export interface NativeEd25519 {
  readonly name: 'sodium-native' | 'node:crypto';
  readonly verify: Ed25519VerifyPrimitive;
}

interface Sodium {
  crypto_sign_verify_detached(signature: Buffer, message: Buffer, publicKey: Buffer): boolean;
}

const view = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * The fastest Ed25519 verifier this process can load: libsodium through the optional
 * `sodium-native` dependency (about twice node:crypto, three times WebCrypto on the reference
 * machine), else `node:crypto` with public-key objects cached per key.
 * @example
 * useEd25519Primitive(loadNativeEd25519().verify)
 * @param options `sodium: false` skips libsodium (node:crypto only)
 */
export function loadNativeEd25519(options: { readonly sodium?: boolean } = {}): NativeEd25519 {
  if (options.sodium !== false)
    try {
      const sodium = createRequire(import.meta.url)('sodium-native') as Sodium;
      if (typeof sodium.crypto_sign_verify_detached === 'function') {
        return {
          name: 'sodium-native',
          verify: (pk, sig, msg) => sodium.crypto_sign_verify_detached(view(sig), view(msg), view(pk)),
        };
      }
    } catch {
      // Optional dependency not installed (or no prebuilt binary for this platform).
    }
  const cache = new WeakMap<Uint8Array, KeyObject>();
  return {
    name: 'node:crypto',
    verify: (pk, sig, msg) => {
      let key = cache.get(pk);
      if (!key) {
        key = createPublicKey({
          key: { kty: 'OKP', crv: 'Ed25519', x: view(pk).toString('base64url') },
          format: 'jwk',
        });
        cache.set(pk, key);
      }
      return verify(null, msg, key, sig);
    },
  };
}

/**
 * SHA-256 through `node:crypto` (native; about 4x the JavaScript hash for transcript-sized
 * inputs), for {@link useSha256Primitive}.
 * @example
 * useSha256Primitive(nodeSha256())
 */
export function nodeSha256(): Sha256Primitive {
  // crypto.hash (Node 20.12+, and engines says >= 20.19): one call, no Hash object to allocate;
  // about 2.5x createHash for the small values a request hashes.
  return {
    digest: (data) => hash('sha256', data, 'buffer'),
    hex: (data) => hash('sha256', data, 'hex'),
  };
}
