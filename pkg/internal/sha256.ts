import { toArrayBufferView, toHex, utf8 } from './bytes.js';

/** SHA-256 of bytes or a UTF-8 string, via WebCrypto. */
export async function sha256(data: Uint8Array | string): Promise<Uint8Array> {
  const bytes = typeof data === 'string' ? utf8(data) : data;
  return new Uint8Array(await crypto.subtle.digest('SHA-256', toArrayBufferView(bytes)));
}

/** Lowercase hex SHA-256 of bytes or a UTF-8 string. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  return toHex(await sha256(data));
}
