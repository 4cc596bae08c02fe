import { sha256Hex } from '../internal/sha256.js';

/**
 * The `response.body_sha256` of a receipt: lowercase hex SHA-256 of the exact body bytes.
 * @example const body_sha256 = await responseBodyDigest(new Uint8Array(await res.arrayBuffer()))
 */
export function responseBodyDigest(body: Uint8Array | string): Promise<string> {
  return sha256Hex(body);
}
