import { calculateJwkThumbprint } from 'jose';
import type { VerifyKey } from './verify-key.js';

/** Public JWK of a verify key, with optional kid. */
export type Ed25519PublicJwk = {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid?: string;
};

/** Public JWK of a key, with an optional kid. */
export function toPublicJwk(key: VerifyKey, kid?: string): Ed25519PublicJwk {
  return kid === undefined
    ? { kty: 'OKP', crv: 'Ed25519', x: key.x }
    : { kty: 'OKP', crv: 'Ed25519', x: key.x, kid };
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key. */
export async function jwkThumbprint(key: VerifyKey): Promise<string> {
  return calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: key.x }, 'sha256');
}
