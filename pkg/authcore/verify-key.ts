import { toArrayBufferView, toHex } from '../internal/bytes.js';
import { decodeBase64Url, encodeBase64Url } from '../internal/base64url.js';
import { sha256Sync } from '../internal/sha256.js';
import {
  ED25519,
  invalidKey,
  MAX_KEY_INPUT,
  parseJsonObject,
  pemBody,
  SPKI_PREFIX,
  startsWith,
  wrongKeyKind,
} from './key-encoding.js';
import { isWeakPublicKey } from './weak-public-key.js';

/** An Ed25519 public key, imported once and reusable on every request. */
export interface VerifyKey {
  /** 32 raw public-key bytes. */
  readonly raw: Uint8Array;
  /** base64url of the raw bytes (the JWK `x`). */
  readonly x: string;
  /** `sha256:<hex>` of the raw bytes. */
  readonly fingerprint: string;
  /** Imported WebCrypto key (verify only). */
  readonly cryptoKey: CryptoKey;
}

/** `sha256:<hex>` fingerprint of a 32-byte Ed25519 public key. */
export async function fingerprintPublicKey(raw: Uint8Array): Promise<string> {
  return fingerprintSync(raw);
}

function fingerprintSync(raw: Uint8Array): string {
  return `sha256:${toHex(sha256Sync(raw))}`;
}

/**
 * Import a raw 32-byte public key. Every public key this library verifies with comes through here,
 * so the refusal of small-order keys and non-canonical encodings (y >= p) holds on every verify
 * backend (WebCrypto, node:crypto and libsodium primitives); see weak-public-key.ts.
 * @param raw the 32 encoded bytes (RFC 8032 §5.1.2)
 * @returns the imported key
 * @throws TrustplaneError `invalid_key` when not 32 bytes, non-canonical, of small order, or not
 *   accepted by WebCrypto
 * @example
 * const key = await importRawPublicKey(decodeBase64Url(jwk.x)!)
 */
export async function importRawPublicKey(raw: Uint8Array): Promise<VerifyKey> {
  if (isWeakPublicKey(raw)) throw invalidKey('public key');
  let cryptoKey: CryptoKey;
  try {
    cryptoKey = await crypto.subtle.importKey('raw', toArrayBufferView(raw), ED25519, true, ['verify']);
  } catch {
    throw invalidKey('public key');
  }
  const copy = Uint8Array.from(raw);
  return Object.freeze({
    raw: copy,
    x: encodeBase64Url(copy),
    fingerprint: fingerprintSync(copy),
    cryptoKey,
  });
}

/**
 * Parse an Ed25519 public key: base64url raw bytes, PEM SPKI, or JWK (object or JSON text).
 * Small-order keys and non-canonical encodings are refused, as by {@link importRawPublicKey}.
 * @throws TrustplaneError `invalid_key`
 */
export async function parsePublicKey(input: string | Readonly<Record<string, unknown>>): Promise<VerifyKey> {
  if (typeof input === 'string') {
    if (input.length > MAX_KEY_INPUT) throw invalidKey('public key');
    const text = input.trim();
    if (text.startsWith('-----BEGIN')) {
      if (pemBody(text, 'PRIVATE KEY') !== undefined) throw wrongKeyKind('private');
      const der = pemBody(text, 'PUBLIC KEY');
      if (!der || der.length !== 44 || !startsWith(der, SPKI_PREFIX)) throw invalidKey('public key');
      return importRawPublicKey(der.subarray(12));
    }
    if (text.startsWith('{')) {
      const jwk = parseJsonObject(text);
      if (!jwk) throw invalidKey('public key');
      return parsePublicKey(jwk);
    }
    const raw = decodeBase64Url(text);
    // 64 bytes is the CLI key text, base64url(seed || public key): a private key.
    if (raw?.length === 64) throw wrongKeyKind('private');
    if (!raw || raw.length !== 32) throw invalidKey('public key');
    return importRawPublicKey(raw);
  }
  if (input.kty !== 'OKP' || input.crv !== 'Ed25519' || typeof input.x !== 'string')
    throw invalidKey('public key');
  if (Object.hasOwn(input, 'd')) throw wrongKeyKind('private');
  const raw = decodeBase64Url(input.x);
  if (!raw || raw.length !== 32) throw invalidKey('public key');
  return importRawPublicKey(raw);
}
