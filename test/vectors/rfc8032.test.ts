import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadNativeEd25519 } from '../../pkg/adapter/native-crypto.js';
import {
  ed25519Backend,
  parsePrivateKey,
  parsePublicKey,
  useEd25519Primitive,
  verifyEd25519,
} from '../../pkg/authcore/index.js';
import { encodeBase64Url } from '../../pkg/internal/base64url.js';
import { fromHex, toHex } from '../../pkg/internal/bytes.js';

interface Rfc8032Vector {
  name: string;
  secretKey: string;
  publicKey: string;
  message: string;
  messageLength?: number;
  signature: string;
}

interface Rfc8032Negative {
  name: string;
  publicKey: string;
  message: string;
  signature: string;
}

interface Rfc8032File {
  vectors: Rfc8032Vector[];
  negative: Rfc8032Negative[];
  furtherVectors: unknown;
}

const file = JSON.parse(
  readFileSync(new URL('./external/rfc8032-ed25519.json', import.meta.url), 'utf8'),
) as Rfc8032File;

function hex(text: string): Uint8Array {
  const bytes = fromHex(text);
  if (!bytes) throw new Error(`bad hex in vector file`);
  return bytes;
}

describe('RFC 8032 section 7.1 Ed25519 vectors', () => {
  it('has the published vectors', () => {
    expect(file.vectors.length).toBeGreaterThanOrEqual(5);
    expect(file.negative.length).toBeGreaterThanOrEqual(2);
  });

  describe.each(file.vectors.map((v) => [v.name, v] as const))('%s', (_name, v) => {
    it('derives the public key from the base64url seed', async () => {
      const key = await parsePrivateKey(encodeBase64Url(hex(v.secretKey)));
      expect(toHex(key.publicKey.raw)).toBe(v.publicKey);
      expect(key.publicKey.x).toBe(encodeBase64Url(hex(v.publicKey)));
    });

    it('reproduces the deterministic signature', async () => {
      const key = await parsePrivateKey(encodeBase64Url(hex(v.secretKey)));
      const message = hex(v.message);
      if (v.messageLength !== undefined) expect(message.length).toBe(v.messageLength);
      expect(toHex(await key.sign(message))).toBe(v.signature);
    });

    it('verifies with the public key alone', async () => {
      const pub = await parsePublicKey(encodeBase64Url(hex(v.publicKey)));
      expect(await verifyEd25519(pub, hex(v.signature), hex(v.message))).toBe(true);
    });

    it('rejects the signature over a different message', async () => {
      const pub = await parsePublicKey(encodeBase64Url(hex(v.publicKey)));
      const other = Uint8Array.from([...hex(v.message), 0]);
      expect(await verifyEd25519(pub, hex(v.signature), other)).toBe(false);
    });

    it('rejects every single-bit flip of R and S (spot check: first and last byte of each)', async () => {
      const pub = await parsePublicKey(encodeBase64Url(hex(v.publicKey)));
      for (const index of [0, 31, 32, 63]) {
        const sig = hex(v.signature);
        sig[index]! ^= 1;
        expect(await verifyEd25519(pub, sig, hex(v.message))).toBe(false);
      }
    });
  });

  describe.each(file.negative.map((v) => [v.name, v] as const))('negative: %s', (_name, v) => {
    it('does not verify', async () => {
      const pub = await parsePublicKey(encodeBase64Url(hex(v.publicKey)));
      expect(await verifyEd25519(pub, hex(v.signature), hex(v.message))).toBe(false);
    });
  });

  describe('signature length', () => {
    it('returns false (never throws) for truncated, extended or empty signatures', async () => {
      const v = file.vectors[0]!;
      const pub = await parsePublicKey(encodeBase64Url(hex(v.publicKey)));
      const sig = hex(v.signature);
      const msg = hex(v.message);
      expect(await verifyEd25519(pub, sig.subarray(0, 63), msg)).toBe(false);
      expect(await verifyEd25519(pub, Uint8Array.from([...sig, 0]), msg)).toBe(false);
      expect(await verifyEd25519(pub, new Uint8Array(0), msg)).toBe(false);
      expect(await verifyEd25519(pub, new Uint8Array(64), msg)).toBe(false);
    });
  });

  // `furtherVectors` is a pointer to C2SP/CCTV's ed25519vectors.json, which is referenced but not
  // shipped in ../shared, so there is nothing to run; assert the shape so a future copy is noticed.
  it('furtherVectors is only a reference (no data to run)', () => {
    expect(typeof file.furtherVectors).toBe('string');
    expect(String(file.furtherVectors)).toMatch(/CCTV/);
  });
});

describe('RFC 8032 vectors through the native primitives the adapter uses', () => {
  const sodium = loadNativeEd25519();
  it('sodium-native (the optional dependency) is installed here, so the adapter uses libsodium', () => {
    expect(sodium.name).toBe('sodium-native');
  });
  for (const backend of ['installed', 'node:crypto'] as const) {
    it(`${backend}: every vector verifies, every negative and bit flip is refused`, async () => {
      const native = backend === 'installed' ? sodium : loadNativeEd25519({ sodium: false });
      expect(native.name).toBe(backend === 'installed' ? 'sodium-native' : 'node:crypto');
      const prim = native.verify;
      useEd25519Primitive(prim);
      try {
        expect(ed25519Backend()).toBe('primitive');
        for (const v of file.vectors) {
          const pub = await parsePublicKey(encodeBase64Url(hex(v.publicKey)));
          expect(await verifyEd25519(pub, hex(v.signature), hex(v.message))).toBe(true);
          const sig = hex(v.signature);
          sig[63]! ^= 1;
          expect(await verifyEd25519(pub, sig, hex(v.message))).toBe(false);
          expect(await verifyEd25519(pub, hex(v.signature).subarray(0, 63), hex(v.message))).toBe(false);
        }
        for (const v of file.negative) {
          const pub = await parsePublicKey(encodeBase64Url(hex(v.publicKey)));
          expect(await verifyEd25519(pub, hex(v.signature), hex(v.message))).toBe(false);
        }
      } finally {
        useEd25519Primitive(undefined);
      }
      expect(ed25519Backend()).toBe('webcrypto');
    });
  }
  it('a primitive that fails the known-answer test is refused and never installed', () => {
    expect(() => useEd25519Primitive(() => true)).toThrow(TypeError);
    expect(() => useEd25519Primitive(() => false)).toThrow(TypeError);
    expect(() =>
      useEd25519Primitive(() => {
        throw new Error('boom');
      }),
    ).toThrow(TypeError);
    expect(ed25519Backend()).toBe('webcrypto');
  });
  it('a primitive that throws at verify time answers false (fails closed)', async () => {
    const v = file.vectors[0]!;
    let calls = 0;
    useEd25519Primitive((pk, sig, msg) => {
      calls += 1;
      if (calls > 3) throw new Error('native failure');
      return sodium.verify(pk, sig, msg);
    });
    try {
      const pub = await parsePublicKey(encodeBase64Url(hex(v.publicKey)));
      expect(await verifyEd25519(pub, hex(v.signature), hex(v.message))).toBe(false);
    } finally {
      useEd25519Primitive(undefined);
    }
  });
});
