import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  fingerprintPublicKey,
  generateSigningKey,
  importRawPublicKey,
  jwkThumbprint,
  parsePrivateKey,
  parsePublicKey,
  toPublicJwk,
  verifyEd25519,
  type SigningKey,
  TrustplaneError,
} from '../../pkg/authcore/index.js';
import { decodeBase64Url, encodeBase64Url } from '../../pkg/internal/base64url.js';
import { concatBytes, toHex, utf8 } from '../../pkg/internal/bytes.js';

// RFC 8032 TEST 1 (also RFC 8037 A.1): a fixed key so failures are reproducible.
const SEED_HEX = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const PUB_HEX = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const seed = Uint8Array.from(Buffer.from(SEED_HEX, 'hex'));
const pub = Uint8Array.from(Buffer.from(PUB_HEX, 'hex'));
const seedB64 = encodeBase64Url(seed);
const pubB64 = encodeBase64Url(pub);
const keyText = encodeBase64Url(concatBytes(seed, pub));

function spkiPem(raw: Uint8Array): string {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: encodeBase64Url(raw) },
    format: 'jwk',
  })
    .export({ type: 'spki', format: 'pem' })
    .toString();
}

/** Asserts the promise rejects with invalid_key and that the message echoes none of `secrets`. */
async function expectInvalidKey(
  p: Promise<unknown>,
  secrets: readonly string[],
  reason: 'invalid_key' | 'wrong_key_kind' = 'invalid_key',
): Promise<void> {
  await expect(p).rejects.toMatchObject({ reason, status: 500 });
  const err: unknown = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TrustplaneError);
  const text = `${String(err)} ${(err as TrustplaneError).message} ${JSON.stringify((err as TrustplaneError).details)}`;
  for (const s of secrets) {
    if (s.length >= 4) expect(text).not.toContain(s);
  }
  // Never echo the seed in any of its encodings either.
  expect(text).not.toContain(seedB64);
  expect(text).not.toContain(SEED_HEX);
}

describe('parsePrivateKey: every accepted encoding yields the same key', () => {
  const encodings: [string, () => string | Record<string, unknown>][] = [
    ['CLI key text base64url(seed || pub)', () => keyText],
    ['32-byte seed base64url', () => seedB64],
    ['seed with surrounding whitespace', () => `  ${seedB64}\n`],
    ['JWK object', () => ({ kty: 'OKP', crv: 'Ed25519', d: seedB64, x: pubB64 })],
    ['JWK object without x', () => ({ kty: 'OKP', crv: 'Ed25519', d: seedB64 })],
    ['JWK JSON text', () => JSON.stringify({ kty: 'OKP', crv: 'Ed25519', d: seedB64, x: pubB64 })],
    [
      'PEM PKCS#8 from node:crypto',
      () =>
        createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: seedB64, x: pubB64 }, format: 'jwk' })
          .export({ type: 'pkcs8', format: 'pem' })
          .toString(),
    ],
  ];

  it.each(encodings)('%s', async (_name, input) => {
    const key = await parsePrivateKey(input());
    expect(toHex(key.publicKey.raw)).toBe(PUB_HEX);
    expect(key.publicKey.x).toBe(pubB64);
    expect(key.exportKeyText()).toBe(keyText);
    expect(key.exportPrivateJwk()).toEqual({ kty: 'OKP', crv: 'Ed25519', x: pubB64, d: seedB64 });
  });

  it('all encodings produce identical signatures', async () => {
    const msg = utf8('same key, same signature');
    const sigs = new Set<string>();
    for (const [, input] of encodings) {
      const key = await parsePrivateKey(input());
      sigs.add(encodeBase64Url(await key.sign(msg)));
    }
    expect(sigs.size).toBe(1);
  });
});

describe('export round trips', () => {
  let key: SigningKey;

  it('a generated key round-trips through key text, PEM, JWK object and JSON text', async () => {
    key = await generateSigningKey();
    const forms = [
      key.exportKeyText(),
      key.exportPkcs8Pem(),
      key.exportPrivateJwk(),
      JSON.stringify(key.exportPrivateJwk()),
      key.exportPrivateJwk().d,
    ];
    for (const form of forms) {
      const again = await parsePrivateKey(form);
      expect(again.publicKey.raw).toEqual(key.publicKey.raw);
      expect(again.publicKey.fingerprint).toBe(key.publicKey.fingerprint);
      expect(again.exportKeyText()).toBe(key.exportKeyText());
    }
  });

  it('exportPkcs8Pem is readable by node:crypto and signs interoperably', async () => {
    key = await generateSigningKey();
    const nodeKey = createPrivateKey(key.exportPkcs8Pem());
    const jwk = nodeKey.export({ format: 'jwk' });
    expect(jwk.x).toBe(key.publicKey.x);
    expect(jwk.d).toBe(key.exportPrivateJwk().d);
  });

  it('generateSigningKey returns distinct keys', async () => {
    const a = await generateSigningKey();
    const b = await generateSigningKey();
    expect(a.publicKey.x).not.toBe(b.publicKey.x);
  });

  it('signatures verify with the public half only', async () => {
    key = await generateSigningKey();
    const msg = utf8('hello');
    const sig = await key.sign(msg);
    const verifyKey = await parsePublicKey(key.publicKey.x);
    expect(await verifyEd25519(verifyKey, sig, msg)).toBe(true);
    expect(await verifyEd25519(verifyKey, sig, utf8('hellO'))).toBe(false);
  });
});

describe('parsePublicKey: every accepted encoding yields the same key', () => {
  it.each([
    ['raw base64url', () => pubB64],
    ['JWK object', () => ({ kty: 'OKP', crv: 'Ed25519', x: pubB64 })],
    [
      'JWK object with kid/alg/use',
      () => ({ kty: 'OKP', crv: 'Ed25519', x: pubB64, kid: 'k', alg: 'EdDSA' }),
    ],
    ['JWK JSON text', () => JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: pubB64 })],
    ['PEM SPKI', () => spkiPem(pub)],
  ] as [string, () => string | Record<string, unknown>][])('%s', async (_name, input) => {
    const key = await parsePublicKey(input());
    expect(toHex(key.raw)).toBe(PUB_HEX);
    expect(key.x).toBe(pubB64);
  });

  it('toPublicJwk round-trips', async () => {
    const key = await parsePublicKey(pubB64);
    expect(toPublicJwk(key)).toEqual({ kty: 'OKP', crv: 'Ed25519', x: pubB64 });
    expect(toPublicJwk(key, 'kid-1')).toEqual({ kty: 'OKP', crv: 'Ed25519', x: pubB64, kid: 'kid-1' });
    expect((await parsePublicKey({ ...toPublicJwk(key, 'kid-1') })).raw).toEqual(pub);
  });

  it('the returned key is immutable and a copy of the input', async () => {
    const raw = Uint8Array.from(pub);
    const key = await importRawPublicKey(raw);
    raw[0] = raw[0]! ^ 0xff;
    expect(toHex(key.raw)).toBe(PUB_HEX);
    expect(Object.isFrozen(key)).toBe(true);
  });
});

describe('fingerprints and thumbprints', () => {
  it('fingerprint is sha256:<64 lowercase hex> of the raw key', async () => {
    const key = await parsePublicKey(pubB64);
    expect(key.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(key.fingerprint).toBe(`sha256:${createHash('sha256').update(pub).digest('hex')}`);
    expect(await fingerprintPublicKey(pub)).toBe(key.fingerprint);
  });

  it('generated keys have well-formed fingerprints', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await generateSigningKey()).publicKey.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    }
  });

  it('jwkThumbprint is 43 base64url chars', async () => {
    const key = await generateSigningKey();
    const t = await jwkThumbprint(key.publicKey);
    expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(decodeBase64Url(t)).toHaveLength(32);
  });
});

describe('rejections (invalid_key, no echo of the input)', () => {
  it('key text whose public half does not match the seed', async () => {
    const other = await generateSigningKey();
    const text = encodeBase64Url(concatBytes(seed, other.publicKey.raw));
    await expectInvalidKey(parsePrivateKey(text), [text]);
  });

  it('key text with one flipped bit in the public half', async () => {
    const bad = concatBytes(seed, pub);
    bad[63] = bad[63]! ^ 1;
    const text = encodeBase64Url(bad);
    await expectInvalidKey(parsePrivateKey(text), [text]);
  });

  it('private JWK whose x does not match d', async () => {
    const other = await generateSigningKey();
    const jwk = { kty: 'OKP', crv: 'Ed25519', d: seedB64, x: other.publicKey.x };
    await expectInvalidKey(parsePrivateKey(jwk), [seedB64, other.publicKey.x]);
    await expectInvalidKey(parsePrivateKey(JSON.stringify(jwk)), [JSON.stringify(jwk)]);
  });

  const secretGarbage = 'sk_live_DO_NOT_LEAK_THIS_0123456789';
  it.each([
    ['empty string', ''],
    ['whitespace', '   \n'],
    ['garbage', secretGarbage],
    ['hex seed (not an accepted encoding)', SEED_HEX],
    ['standard base64 with padding', Buffer.from(seed).toString('base64')],
    ['seed with padding', `${seedB64}=`],
    ['31-byte seed', encodeBase64Url(seed.subarray(0, 31))],
    ['33 bytes', encodeBase64Url(concatBytes(seed, Uint8Array.of(1)))],
    ['63 bytes', encodeBase64Url(concatBytes(seed, pub).subarray(0, 63))],
    ['65 bytes', encodeBase64Url(concatBytes(seed, pub, Uint8Array.of(0)))],
    ['96 bytes', encodeBase64Url(concatBytes(seed, pub, pub))],
    ['non-canonical seed (trailing bits)', `${seedB64.slice(0, -1)}${seedB64.endsWith('A') ? 'B' : 'A'}`],
    ['PEM with a garbage body', `-----BEGIN PRIVATE KEY-----\n${secretGarbage}!!\n-----END PRIVATE KEY-----`],
    ['PEM truncated', '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----'],
    ['JSON that is not an object', `["${seedB64}"]`],
    ['broken JSON', `{"kty":"OKP","d":"${seedB64}"`],
    ['over 16 KiB', `${seedB64}${' '.repeat(17 * 1024)}`],
  ])('private key: %s', async (_name, input) => {
    await expectInvalidKey(parsePrivateKey(input), [input.trim()]);
  });

  it('PEM PKCS#8 of an Ed448 key', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const pem = generateKeyPairSync('ed448').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await expectInvalidKey(parsePrivateKey(pem), [pem.split('\n')[1]!]);
  });

  it.each([
    ['kty EC', { kty: 'EC', crv: 'Ed25519', d: seedB64, x: pubB64 }],
    ['kty oct', { kty: 'oct', k: seedB64 }],
    ['crv X25519', { kty: 'OKP', crv: 'X25519', d: seedB64, x: pubB64 }],
    ['crv Ed448', { kty: 'OKP', crv: 'Ed448', d: seedB64, x: pubB64 }],
    ['missing kty', { crv: 'Ed25519', d: seedB64, x: pubB64 }],
    ['d not a string', { kty: 'OKP', crv: 'Ed25519', d: 42, x: pubB64 }],
    ['d of 31 bytes', { kty: 'OKP', crv: 'Ed25519', d: encodeBase64Url(seed.subarray(0, 31)) }],
    ['d with padding', { kty: 'OKP', crv: 'Ed25519', d: `${seedB64}=` }],
    ['d in standard base64', { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(seed).toString('base64') }],
  ] as [string, Record<string, unknown>][])('private JWK: %s', async (_name, jwk) => {
    const secrets = [JSON.stringify(jwk)];
    await expectInvalidKey(parsePrivateKey(jwk), secrets);
    await expectInvalidKey(parsePrivateKey(JSON.stringify(jwk)), secrets);
  });

  it.each([
    ['empty', ''],
    ['garbage', secretGarbage],
    ['31 bytes', encodeBase64Url(pub.subarray(0, 31))],
    ['33 bytes', encodeBase64Url(concatBytes(pub, Uint8Array.of(0)))],
    ['padding', `${pubB64}=`],
    ['JSON array', `["${pubB64}"]`],
  ])('public key: %s', async (_name, input) => {
    await expectInvalidKey(parsePublicKey(input), [input]);
  });

  it.each([
    ['kty EC', { kty: 'EC', crv: 'Ed25519', x: pubB64 }],
    ['crv X25519', { kty: 'OKP', crv: 'X25519', x: pubB64 }],
    ['crv Ed448', { kty: 'OKP', crv: 'Ed448', x: pubB64 }],
    ['x missing', { kty: 'OKP', crv: 'Ed25519' }],
    ['x of 31 bytes', { kty: 'OKP', crv: 'Ed25519', x: encodeBase64Url(pub.subarray(0, 31)) }],
    ['x non-canonical', { kty: 'OKP', crv: 'Ed25519', x: `${pubB64.slice(0, -1)}b` }],
  ] as [string, Record<string, unknown>][])('public JWK: %s', async (_name, jwk) => {
    await expectInvalidKey(parsePublicKey(jwk), [JSON.stringify(jwk)]);
    await expectInvalidKey(parsePublicKey(JSON.stringify(jwk)), [JSON.stringify(jwk)]);
  });

  // A key of the other kind: wrong_key_kind, whose fixed message says what to give instead.
  it.each([
    ['private key: PEM of a public key', () => parsePrivateKey(spkiPem(pub)), spkiPem(pub)],
    [
      'private JWK: public JWK (no d)',
      () => parsePrivateKey({ kty: 'OKP', crv: 'Ed25519', x: pubB64 }),
      pubB64,
    ],
    ['public key: 64-byte private key text', () => parsePublicKey(keyText), keyText],
    [
      'public key: PEM of a private key',
      () =>
        parsePublicKey('-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----'),
      'MC4CAQAwBQYDK2VwBCIEIA',
    ],
    [
      'public JWK: contains d (a private key where a public key is expected)',
      () => parsePublicKey({ kty: 'OKP', crv: 'Ed25519', x: pubB64, d: seedB64 }),
      pubB64,
    ],
    [
      'public JWK: contains d: null',
      () => parsePublicKey(JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: pubB64, d: null })),
      pubB64,
    ],
  ] as [string, () => Promise<unknown>, string][])('%s: wrong_key_kind', async (_name, parse, secret) => {
    await expectInvalidKey(parse(), [secret], 'wrong_key_kind');
  });

  it('importRawPublicKey rejects wrong lengths', async () => {
    for (const n of [0, 31, 33, 64]) {
      await expectInvalidKey(importRawPublicKey(new Uint8Array(n)), []);
    }
  });
});
