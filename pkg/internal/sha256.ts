import { sha256 as sha256Js } from '@noble/hashes/sha2.js';
import { toArrayBufferView, toHex, utf8 } from './bytes.js';

/**
 * Inputs up to this size are hashed synchronously in JavaScript (@noble/hashes): for the many
 * small values of a transcript, an async WebCrypto round trip costs ~10x the hashing itself.
 * Larger inputs (request bodies) go to native WebCrypto.
 */
const SYNC_MAX_BYTES = 16 * 1024;

/** SHA-256 of bytes or a UTF-8 string, synchronously (for small inputs). */
export function sha256Sync(data: Uint8Array | string): Uint8Array {
  return sha256Js(typeof data === 'string' ? utf8(data) : data);
}

/** Lowercase hex SHA-256, synchronously (for small inputs). */
export function sha256HexSync(data: Uint8Array | string): string {
  return toHex(sha256Sync(data));
}

/** SHA-256 of bytes or a UTF-8 string: sync JS for small inputs, native WebCrypto for large ones. */
export async function sha256(data: Uint8Array | string): Promise<Uint8Array> {
  const bytes = typeof data === 'string' ? utf8(data) : data;
  if (bytes.length <= SYNC_MAX_BYTES) return sha256Js(bytes);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', toArrayBufferView(bytes)));
}

/** Lowercase hex SHA-256 of bytes or a UTF-8 string. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  return toHex(await sha256(data));
}
