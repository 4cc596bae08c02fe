import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { jwkThumbprint, parsePublicKey, toPublicJwk } from '../../pkg/authcore/index.js';
import { encodeBase64Url } from '../../pkg/internal/base64url.js';
import { sha256 } from '../../pkg/internal/sha256.js';

interface ThumbprintVector {
  name: string;
  jwk: Record<string, string>;
  canonicalInput: string;
  thumbprint: string;
}

const file = JSON.parse(
  readFileSync(new URL('./external/rfc7638-thumbprint.json', import.meta.url), 'utf8'),
) as { vectors: ThumbprintVector[] };

const okp = file.vectors.filter((v) => v.jwk.kty === 'OKP');

describe('RFC 7638 JWK thumbprint', () => {
  it('has the OKP vector', () => {
    expect(okp).toHaveLength(1);
  });

  describe.each(okp.map((v) => [v.name, v] as const))('%s', (_name, v) => {
    it('jwkThumbprint matches', async () => {
      const key = await parsePublicKey(v.jwk);
      expect(await jwkThumbprint(key)).toBe(v.thumbprint);
    });

    it('optional members (kid) do not change the thumbprint', async () => {
      const key = await parsePublicKey({ ...v.jwk, kid: 'some-kid', alg: 'EdDSA', use: 'sig' });
      expect(await jwkThumbprint(key)).toBe(v.thumbprint);
      expect(await jwkThumbprint(await parsePublicKey({ ...toPublicJwk(key, 'other') }))).toBe(v.thumbprint);
    });

    it('the canonical input is the sorted required members', () => {
      const { crv, kty, x } = v.jwk;
      expect(JSON.stringify({ crv, kty, x })).toBe(v.canonicalInput);
    });
  });

  // jwkThumbprint covers Ed25519 only; for the RSA and EC vectors, check that our SHA-256 and
  // base64url helpers compose to the published value from the canonical input.
  it.each(file.vectors.map((v) => [v.name, v] as const))(
    '%s: sha256 + base64url of canonical input',
    async (_n, v) => {
      expect(encodeBase64Url(await sha256(v.canonicalInput))).toBe(v.thumbprint);
    },
  );
});
