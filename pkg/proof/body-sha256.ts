import { sha256Hex } from '../internal/sha256.js';

/** Lowercase hex SHA-256 of exact body bytes (body-sha256-v1). */
export async function bodySha256(body: Uint8Array | string): Promise<string> {
  return sha256Hex(body);
}
