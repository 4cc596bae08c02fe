import { readFileSync } from 'node:fs';
import { compactVerify, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  decodePassportUnverified,
  jwkThumbprint,
  parsePrivateKey,
  parsePublicKey,
  verifyEd25519,
  verifyPassport,
  createIssuerRegistry,
} from '../../pkg/authcore/index.js';
import { encodeBase64Url } from '../../pkg/internal/base64url.js';
import { fromHex, toHex, utf8 } from '../../pkg/internal/bytes.js';

interface Rfc8037File {
  privateJwk: { kty: string; crv: string; d: string; x: string };
  privateKeyHex: string;
  publicJwk: { kty: string; crv: string; x: string };
  publicKeyHex: string;
  thumbprint: { input: string; sha256Hex: string; base64url: string };
  jws: {
    protectedHeaderJson: string;
    protectedHeaderB64u: string;
    payloadText: string;
    payloadB64u: string;
    signingInput: string;
    signatureHex: string;
    signatureB64u: string;
    compact: string;
  };
  rfc8410: {
    publicKeySpkiB64: string;
    privateKeyPkcs8B64: string;
    privateKeyHex: string;
    publicKeyHexFromSection10_1: string;
  };
}

const file = JSON.parse(
  readFileSync(new URL('./external/rfc8037-jws.json', import.meta.url), 'utf8'),
) as Rfc8037File;

function hex(text: string): Uint8Array {
  const bytes = fromHex(text);
  if (!bytes) throw new Error('bad hex in vector file');
  return bytes;
}

function pem(label: string, b64: string): string {
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

describe('RFC 8037 appendix A', () => {
  it('A.1: the private JWK parses and yields the A.2 public key', async () => {
    const key = await parsePrivateKey(file.privateJwk);
    expect(toHex(key.publicKey.raw)).toBe(file.publicKeyHex);
    expect(key.publicKey.x).toBe(file.publicJwk.x);
    expect(key.exportPrivateJwk()).toEqual(file.privateJwk);
    expect(encodeBase64Url(hex(file.privateKeyHex))).toBe(file.privateJwk.d);
  });

  it('A.1: the private JWK as JSON text parses to the same key', async () => {
    const key = await parsePrivateKey(JSON.stringify(file.privateJwk));
    expect(toHex(key.publicKey.raw)).toBe(file.publicKeyHex);
  });

  it('A.2: the public JWK parses', async () => {
    const pub = await parsePublicKey(file.publicJwk);
    expect(toHex(pub.raw)).toBe(file.publicKeyHex);
    expect(pub.x).toBe(file.publicJwk.x);
  });

  it('A.2: the private JWK is refused where a public key is expected', async () => {
    // A key of the other kind is named as such, with a hint (wrong_key_kind), never accepted.
    await expect(parsePublicKey(file.privateJwk)).rejects.toMatchObject({ reason: 'wrong_key_kind' });
  });

  it('A.3: the JWK thumbprint matches', async () => {
    const pub = await parsePublicKey(file.publicJwk);
    expect(await jwkThumbprint(pub)).toBe(file.thumbprint.base64url);
    expect(encodeBase64Url(hex(file.thumbprint.sha256Hex))).toBe(file.thumbprint.base64url);
  });

  describe('A.4 Ed25519 signing', () => {
    it('the signing input is header.payload', () => {
      expect(encodeBase64Url(utf8(file.jws.protectedHeaderJson))).toBe(file.jws.protectedHeaderB64u);
      expect(encodeBase64Url(utf8(file.jws.payloadText))).toBe(file.jws.payloadB64u);
      expect(file.jws.signingInput).toBe(`${file.jws.protectedHeaderB64u}.${file.jws.payloadB64u}`);
      expect(file.jws.compact).toBe(`${file.jws.signingInput}.${file.jws.signatureB64u}`);
    });

    it('reproduces the signature', async () => {
      const key = await parsePrivateKey(file.privateJwk);
      const sig = await key.sign(utf8(file.jws.signingInput));
      expect(toHex(sig)).toBe(file.jws.signatureHex);
      expect(encodeBase64Url(sig)).toBe(file.jws.signatureB64u);
    });

    it('verifies the signature', async () => {
      const pub = await parsePublicKey(file.publicJwk);
      expect(await verifyEd25519(pub, hex(file.jws.signatureHex), utf8(file.jws.signingInput))).toBe(true);
      expect(await verifyEd25519(pub, hex(file.jws.signatureHex), utf8(`${file.jws.signingInput}x`))).toBe(
        false,
      );
    });

    it('jose verifies the compact JWS (cross-check of the vector)', async () => {
      const key = await importJWK(file.publicJwk, 'EdDSA');
      const { payload } = await compactVerify(file.jws.compact, key, { algorithms: ['EdDSA'] });
      expect(new TextDecoder().decode(payload)).toBe(file.jws.payloadText);
    });

    it('decodePassportUnverified rejects the A.4 JWS as a passport', () => {
      expect(() => decodePassportUnverified(file.jws.compact)).toThrow(
        expect.objectContaining({ reason: 'malformed_passport', status: 401 }),
      );
    });

    it('a kid does not help: the non-JSON payload alone makes it malformed', async () => {
      // A.4 has no kid, which is malformed on its own; add one and re-sign so that only the
      // payload (plain text, not a JSON object) is wrong.
      const key = await parsePrivateKey(file.privateJwk);
      const header = encodeBase64Url(utf8('{"alg":"EdDSA","kid":"a4"}'));
      const input = `${header}.${file.jws.payloadB64u}`;
      const token = `${input}.${encodeBase64Url(await key.sign(utf8(input)))}`;
      expect(() => decodePassportUnverified(token)).toThrow(
        expect.objectContaining({ reason: 'malformed_passport' }),
      );
      const issuers = createIssuerRegistry([
        {
          issuer: 'a4',
          trustDomain: 'example.org',
          sourceType: 'test',
          maxKeyBinding: 'software',
          keys: new Map([['a4', { kid: 'a4', key: key.publicKey }]]),
        },
      ]);
      await expect(verifyPassport(token, { issuers, audience: 'api', now: 0 })).rejects.toMatchObject({
        reason: 'malformed_passport',
        status: 401,
      });
    });
  });
});

describe('RFC 8410 section 10 PEM import', () => {
  it('10.3: PKCS#8 private key PEM parses to the 10.1 public key', async () => {
    const key = await parsePrivateKey(pem('PRIVATE KEY', file.rfc8410.privateKeyPkcs8B64));
    expect(toHex(key.publicKey.raw)).toBe(file.rfc8410.publicKeyHexFromSection10_1);
    expect(key.exportPrivateJwk().d).toBe(encodeBase64Url(hex(file.rfc8410.privateKeyHex)));
  });

  it('10.3: exportPkcs8Pem round-trips to the same DER', async () => {
    const key = await parsePrivateKey(pem('PRIVATE KEY', file.rfc8410.privateKeyPkcs8B64));
    expect(key.exportPkcs8Pem()).toBe(pem('PRIVATE KEY', file.rfc8410.privateKeyPkcs8B64));
  });

  it('10.1: SPKI public key PEM parses', async () => {
    const pub = await parsePublicKey(pem('PUBLIC KEY', file.rfc8410.publicKeySpkiB64));
    expect(toHex(pub.raw)).toBe(file.rfc8410.publicKeyHexFromSection10_1);
  });

  it('PEM labels are not interchangeable', async () => {
    // The other kind's label is named as such (wrong_key_kind, with a hint).
    await expect(parsePrivateKey(pem('PUBLIC KEY', file.rfc8410.publicKeySpkiB64))).rejects.toMatchObject({
      reason: 'wrong_key_kind',
    });
    await expect(parsePublicKey(pem('PRIVATE KEY', file.rfc8410.privateKeyPkcs8B64))).rejects.toMatchObject({
      reason: 'wrong_key_kind',
    });
    // Right label, wrong DER structure.
    await expect(parsePrivateKey(pem('PRIVATE KEY', file.rfc8410.publicKeySpkiB64))).rejects.toMatchObject({
      reason: 'invalid_key',
    });
    await expect(parsePublicKey(pem('PUBLIC KEY', file.rfc8410.privateKeyPkcs8B64))).rejects.toMatchObject({
      reason: 'invalid_key',
    });
  });
});
