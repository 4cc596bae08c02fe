import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateSigningKey, importRawPublicKey } from '../../pkg/authcore/index.js';
import { isWeakPublicKey } from '../../pkg/authcore/weak-public-key.js';
import { fromHex } from '../../pkg/internal/bytes.js';
import { readVectorJson } from '../helpers/vectors.js';

/*
 * isWeakPublicKey is a fixed list (libsodium's). These tests hold it to @noble/curves, so the list
 * can be neither incomplete nor too wide: a key is refused exactly when its y is >= p, or when a
 * lenient (ZIP-215: y mod p, any sign of x = 0) decoder maps it to a point of small order.
 */

const P = 2n ** 255n - 19n;

function encode(y: bigint, signBit: boolean): Uint8Array {
  const bytes = new Uint8Array(32);
  let v = y;
  for (let i = 0; i < 32; i++) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (signBit) bytes[31]! |= 0x80;
  return bytes;
}

function yOf(bytes: Uint8Array): bigint {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? bytes[i]! & 0x7f : bytes[i]!);
  return y;
}

/** The reference: what the list must say, computed with the curve library. */
function reference(bytes: Uint8Array): boolean {
  if (yOf(bytes) >= P) return true;
  try {
    return ed25519.Point.fromBytes(bytes, true).isSmallOrder();
  } catch {
    return false; // not on the curve: not weak (it verifies nothing anyway)
  }
}

const hex = (text: string) => fromHex(text)!;

/** Every 32-byte string whose y (mod p) is that of a small-order point, both sign bits. */
function smallOrderEncodings(): Uint8Array[] {
  const ys = new Set(ED25519_TORSION_SUBGROUP.map((h) => yOf(hex(h))));
  const out: Uint8Array[] = [];
  for (const y of ys) {
    for (const v of [y, y + P]) {
      if (v >= 2n ** 255n) continue;
      out.push(encode(v, false), encode(v, true));
    }
  }
  return out;
}

describe('isWeakPublicKey', () => {
  it('refuses the 8 small-order points and every other encoding of them (14 in all)', () => {
    const encodings = smallOrderEncodings();
    expect(encodings).toHaveLength(14);
    for (const bytes of encodings) {
      expect(ed25519.Point.fromBytes(bytes, true).isSmallOrder()).toBe(true);
      expect(isWeakPublicKey(bytes)).toBe(true);
    }
    for (const h of ED25519_TORSION_SUBGROUP) expect(isWeakPublicKey(hex(h))).toBe(true);
  });

  it('refuses every y >= p (both sign bits), on the curve or not', () => {
    for (let k = 0n; k < 19n; k++) {
      for (const sign of [false, true]) {
        const bytes = encode(P + k, sign);
        expect(isWeakPublicKey(bytes)).toBe(true);
        expect(reference(bytes)).toBe(true);
      }
    }
  });

  it('accepts p - 2 and other y just below p that are not small-order points', () => {
    for (let k = 2n; k < 40n; k++) {
      const bytes = encode(P - k, false);
      expect(isWeakPublicKey(bytes)).toBe(reference(bytes));
    }
  });

  it('refuses anything not 32 bytes', () => {
    expect(isWeakPublicKey(new Uint8Array(31))).toBe(true);
    expect(isWeakPublicKey(new Uint8Array(33).fill(7))).toBe(true);
  });

  it('accepts the RFC 8032 test keys', () => {
    const file = readVectorJson<{ vectors: { publicKey: string }[] }>('external/rfc8032-ed25519.json');
    for (const v of file.vectors) expect(isWeakPublicKey(hex(v.publicKey))).toBe(false);
  });

  it('agrees with @noble/curves on generated keys, mixed-order keys, and arbitrary bytes', async () => {
    const torsion = ED25519_TORSION_SUBGROUP.map((h) => ed25519.Point.fromBytes(hex(h), false));
    const special = smallOrderEncodings();
    const near = fc
      .tuple(fc.constantFrom(...special), fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 255 }))
      .map(([base, i, b]) => {
        const bytes = Uint8Array.from(base);
        bytes[i] = b;
        return bytes;
      });
    const mixed = fc
      .tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 1, max: 7 }))
      .map(([seed, t]) =>
        ed25519.Point.fromBytes(ed25519.getPublicKey(seed), false).add(torsion[t]!).toBytes(),
      );
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), near, mixed), (bytes) => {
        expect(isWeakPublicKey(bytes)).toBe(reference(bytes));
      }),
      { numRuns: 2000 },
    );
    for (let i = 0; i < 20; i++) {
      const key = await generateSigningKey();
      expect(isWeakPublicKey(key.publicKey.raw)).toBe(false);
    }
  });

  it('is what importRawPublicKey applies', async () => {
    for (const bytes of smallOrderEncodings()) {
      await expect(importRawPublicKey(bytes)).rejects.toMatchObject({ reason: 'invalid_key' });
    }
    const key = await generateSigningKey();
    await expect(importRawPublicKey(key.publicKey.raw)).resolves.toMatchObject({ x: key.publicKey.x });
  });
});
