import { sha256 as sha256Js } from '@noble/hashes/sha2.js';
import { toArrayBufferView, toHex, utf8 } from './bytes.js';

/**
 * Inputs up to this size are hashed synchronously in JavaScript (@noble/hashes): for the many
 * small values of a transcript, an async WebCrypto round trip costs ~10x the hashing itself.
 * Larger inputs (request bodies) go to native WebCrypto.
 */
const SYNC_MAX_BYTES = 16 * 1024;

/** A synchronous native SHA-256 (e.g. node:crypto), installed with {@link useSha256Primitive}. */
export interface Sha256Primitive {
  digest(data: Uint8Array | string): Uint8Array;
  hex(data: Uint8Array | string): string;
}

let primitive: Sha256Primitive | undefined;

// FIPS 180-2 appendix B.1 and the empty string: known answers a primitive must reproduce.
const KAT: readonly (readonly [string, string])[] = [
  ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
];

/**
 * Route the synchronous SHA-256 through a native implementation (undefined restores the
 * JavaScript one). The primitive must reproduce known answers, as bytes, hex and for strings and
 * byte arrays alike, or this throws and nothing changes.
 * @throws TypeError when the primitive fails the known-answer test
 */
export function useSha256Primitive(next: Sha256Primitive | undefined): void {
  if (next !== undefined) {
    for (const [input, expected] of KAT) {
      let ok = false;
      try {
        ok =
          next.hex(input) === expected &&
          next.hex(utf8(input)) === expected &&
          toHex(next.digest(input)) === expected &&
          toHex(next.digest(utf8(input))) === expected;
      } catch {
        ok = false;
      }
      if (!ok) throw new TypeError('SHA-256 primitive failed the known-answer test');
    }
  }
  primitive = next;
}

/** SHA-256 of bytes or a UTF-8 string, synchronously (for small inputs). */
export function sha256Sync(data: Uint8Array | string): Uint8Array {
  if (primitive) return primitive.digest(data);
  return sha256Js(typeof data === 'string' ? utf8(data) : data);
}

/** Lowercase hex SHA-256, synchronously (for small inputs). */
export function sha256HexSync(data: Uint8Array | string): string {
  if (primitive) return primitive.hex(data);
  return toHex(sha256Sync(data));
}

/** SHA-256 of bytes or a UTF-8 string: sync JS for small inputs, native WebCrypto for large ones. */
export async function sha256(data: Uint8Array | string): Promise<Uint8Array> {
  if (primitive) return primitive.digest(data);
  const bytes = typeof data === 'string' ? utf8(data) : data;
  if (bytes.length <= SYNC_MAX_BYTES) return sha256Js(bytes);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', toArrayBufferView(bytes)));
}

/** Lowercase hex SHA-256 of bytes or a UTF-8 string. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  if (primitive) return primitive.hex(data);
  return toHex(await sha256(data));
}
