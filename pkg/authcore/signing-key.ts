import { calculateJwkThumbprint } from 'jose';
import { concatBytes, fromHex, toArrayBufferView, toHex, timingSafeEqual } from '../internal/bytes.js';
import { decodeBase64Url, encodeBase64Url } from '../internal/base64url.js';
import { sha256Sync } from '../internal/sha256.js';
import { TrustplaneError } from './errors.js';

/**
 * Ed25519 key handling over WebCrypto. Accepted private-key encodings:
 * - CLI key text: base64url(seed || public key), 64 bytes (the public half is checked);
 * - a 32-byte seed in base64url;
 * - PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`);
 * - a JWK `{kty:"OKP", crv:"Ed25519", d, x}` (object or JSON text).
 * Public keys: 32 raw bytes in base64url, PEM SPKI, or a JWK `{kty:"OKP", crv:"Ed25519", x}`.
 */

const ED25519 = { name: 'Ed25519' } as const;
// RFC 8410 PKCS#8 and SPKI prefixes for Ed25519: fixed DER headers before the 32 key bytes.
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
const MAX_KEY_INPUT = 16 * 1024;

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

/** An Ed25519 private key with its public half. */
export interface SigningKey {
  /** The public half. */
  readonly publicKey: VerifyKey;
  /** Sign `data` (pure Ed25519, RFC 8032). */
  sign(data: Uint8Array): Promise<Uint8Array>;
  /** The CLI key text, base64url(seed || public). Secret: never log it. */
  exportKeyText(): string;
  /** Private JWK `{kty, crv, x, d}`. Secret: never log it. */
  exportPrivateJwk(): { kty: 'OKP'; crv: 'Ed25519'; x: string; d: string };
  /** PEM PKCS#8. Secret: never log it. */
  exportPkcs8Pem(): string;
}

/** Public JWK of a verify key, with optional kid. */
export type Ed25519PublicJwk = {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid?: string;
};

function invalidKey(what: string): TrustplaneError {
  return new TrustplaneError('invalid_key', `invalid Ed25519 ${what}`);
}

function pemBody(text: string, label: string): Uint8Array | undefined {
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

function toPem(der: Uint8Array, label: string): string {
  let bin = '';
  for (const b of der) bin += String.fromCharCode(b);
  const b64 = btoa(bin);
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** `sha256:<hex>` fingerprint of a 32-byte Ed25519 public key. */
export async function fingerprintPublicKey(raw: Uint8Array): Promise<string> {
  return fingerprintSync(raw);
}

function fingerprintSync(raw: Uint8Array): string {
  return `sha256:${toHex(sha256Sync(raw))}`;
}

/**
 * Import a raw 32-byte public key.
 * @throws TrustplaneError `invalid_key` when not 32 bytes or not accepted by WebCrypto.
 */
export async function importRawPublicKey(raw: Uint8Array): Promise<VerifyKey> {
  if (raw.length !== 32) throw invalidKey('public key');
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

async function signingKeyFromSeed(seed: Uint8Array): Promise<SigningKey> {
  if (seed.length !== 32) throw invalidKey('private key');
  const pkcs8 = concatBytes(PKCS8_PREFIX, seed);
  let priv: CryptoKey;
  let x: string | undefined;
  try {
    priv = await crypto.subtle.importKey('pkcs8', toArrayBufferView(pkcs8), ED25519, true, ['sign']);
    x = (await crypto.subtle.exportKey('jwk', priv)).x;
  } catch {
    throw invalidKey('private key');
  }
  const pubRaw = x === undefined ? undefined : decodeBase64Url(x);
  if (!pubRaw) throw invalidKey('private key');
  const publicKey = await importRawPublicKey(pubRaw);
  const seedCopy = Uint8Array.from(seed);
  return Object.freeze({
    publicKey,
    async sign(data: Uint8Array): Promise<Uint8Array> {
      return new Uint8Array(await crypto.subtle.sign(ED25519, priv, toArrayBufferView(data)));
    },
    exportKeyText: () => encodeBase64Url(concatBytes(seedCopy, publicKey.raw)),
    exportPrivateJwk: () => ({
      kty: 'OKP' as const,
      crv: 'Ed25519' as const,
      x: publicKey.x,
      d: encodeBase64Url(seedCopy),
    }),
    exportPkcs8Pem: () => toPem(concatBytes(PKCS8_PREFIX, seedCopy), 'PRIVATE KEY'),
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Parse an Ed25519 private key from any accepted encoding.
 * @param input key text, seed, PEM PKCS#8, or JWK (object or JSON text)
 * @returns a signing key with its public half
 * @throws TrustplaneError `invalid_key` for anything else (the message never echoes the input)
 * @example const key = await parsePrivateKey(process.env.TRUSTPLANE_KEY!)
 */
export async function parsePrivateKey(
  input: string | Readonly<Record<string, unknown>>,
): Promise<SigningKey> {
  if (typeof input === 'string') {
    if (input.length > MAX_KEY_INPUT) throw invalidKey('private key');
    const text = input.trim();
    if (text.startsWith('-----BEGIN')) {
      const der = pemBody(text, 'PRIVATE KEY');
      if (!der || der.length !== 48 || !startsWith(der, PKCS8_PREFIX)) throw invalidKey('private key');
      return signingKeyFromSeed(der.subarray(16));
    }
    if (text.startsWith('{')) {
      const jwk = parseJsonObject(text);
      if (!jwk) throw invalidKey('private key');
      return parsePrivateKey(jwk);
    }
    const bytes = decodeBase64Url(text);
    if (bytes?.length === 32) return signingKeyFromSeed(bytes);
    if (bytes?.length === 64) {
      const key = await signingKeyFromSeed(bytes.subarray(0, 32));
      if (!timingSafeEqual(key.publicKey.raw, bytes.subarray(32))) throw invalidKey('private key');
      return key;
    }
    throw invalidKey('private key');
  }
  if (input.kty !== 'OKP' || input.crv !== 'Ed25519' || typeof input.d !== 'string') {
    throw invalidKey('private key');
  }
  const seed = decodeBase64Url(input.d);
  if (!seed || seed.length !== 32) throw invalidKey('private key');
  const key = await signingKeyFromSeed(seed);
  if (input.x !== undefined && input.x !== key.publicKey.x) throw invalidKey('private key');
  return key;
}

/**
 * Parse an Ed25519 public key: base64url raw bytes, PEM SPKI, or JWK (object or JSON text).
 * @throws TrustplaneError `invalid_key`
 */
export async function parsePublicKey(input: string | Readonly<Record<string, unknown>>): Promise<VerifyKey> {
  if (typeof input === 'string') {
    if (input.length > MAX_KEY_INPUT) throw invalidKey('public key');
    const text = input.trim();
    if (text.startsWith('-----BEGIN')) {
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
    if (!raw || raw.length !== 32) throw invalidKey('public key');
    return importRawPublicKey(raw);
  }
  if (input.kty !== 'OKP' || input.crv !== 'Ed25519' || typeof input.x !== 'string')
    throw invalidKey('public key');
  if (Object.hasOwn(input, 'd')) throw invalidKey('public key');
  const raw = decodeBase64Url(input.x);
  if (!raw || raw.length !== 32) throw invalidKey('public key');
  return importRawPublicKey(raw);
}

/** Generate a fresh Ed25519 key pair. */
export async function generateSigningKey(): Promise<SigningKey> {
  return signingKeyFromSeed(crypto.getRandomValues(new Uint8Array(32)));
}

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
