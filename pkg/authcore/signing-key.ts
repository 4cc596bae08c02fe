import { concatBytes, toArrayBufferView, timingSafeEqual } from '../internal/bytes.js';
import { decodeBase64Url, encodeBase64Url } from '../internal/base64url.js';
import {
  ED25519,
  invalidKey,
  MAX_KEY_INPUT,
  parseJsonObject,
  pemBody,
  PKCS8_PREFIX,
  startsWith,
  toPem,
  wrongKeyKind,
} from './key-encoding.js';
import { importRawPublicKey, type VerifyKey } from './verify-key.js';

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
      if (pemBody(text, 'PUBLIC KEY') !== undefined) throw wrongKeyKind('public');
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
  if (
    input.kty === 'OKP' &&
    input.crv === 'Ed25519' &&
    input.d === undefined &&
    typeof input.x === 'string'
  ) {
    throw wrongKeyKind('public');
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

/** Generate a fresh Ed25519 key pair. */
export async function generateSigningKey(): Promise<SigningKey> {
  return signingKeyFromSeed(crypto.getRandomValues(new Uint8Array(32)));
}
