import { TrustplaneError } from './errors.js';

/**
 * Ed25519 key handling over WebCrypto. Accepted private-key encodings:
 * - CLI key text: base64url(seed || public key), 64 bytes (the public half is checked);
 * - a 32-byte seed in base64url;
 * - PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`);
 * - a JWK `{kty:"OKP", crv:"Ed25519", d, x}` (object or JSON text).
 * Public keys: 32 raw bytes in base64url, PEM SPKI, or a JWK `{kty:"OKP", crv:"Ed25519", x}`.
 * Internal to pkg/authcore.
 */

export const ED25519 = { name: 'Ed25519' } as const;
// RFC 8410 PKCS#8 and SPKI prefixes for Ed25519: fixed DER headers before the 32 key bytes.
export const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
export const SPKI_PREFIX = Uint8Array.from([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
]);
export const MAX_KEY_INPUT = 16 * 1024;

export function invalidKey(what: string): TrustplaneError {
  return new TrustplaneError('invalid_key', `invalid Ed25519 ${what}`);
}

/**
 * A key of the other kind where one kind is needed: the fixed message says what to give instead and
 * never repeats the input.
 */
export function wrongKeyKind(given: 'public' | 'private'): TrustplaneError {
  return given === 'private'
    ? new TrustplaneError(
        'wrong_key_kind',
        'this is a private key where a public key is needed: give its public half (the <name>.pub file trustplane gen-key wrote, or the public_key it printed)',
      )
    : new TrustplaneError(
        'wrong_key_kind',
        'this is a public key where a private key is needed: give the private key file trustplane gen-key wrote (<name>.key, not <name>.pub)',
      );
}

export function pemBody(text: string, label: string): Uint8Array | undefined {
  const re = new RegExp(`^-----BEGIN ${label}-----\\s*([A-Za-z0-9+/=\\s]+?)\\s*-----END ${label}-----\\s*$`);
  const m = re.exec(text.trim());
  if (!m) return undefined;
  try {
    const bin = atob(m[1]!.replace(/\s+/g, ''));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

export function toPem(der: Uint8Array, label: string): string {
  let bin = '';
  for (const b of der) bin += String.fromCharCode(b);
  const b64 = btoa(bin);
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
