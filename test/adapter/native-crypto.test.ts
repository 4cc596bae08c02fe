import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeSha256 } from '../../pkg/adapter/native-crypto.js';
import { useSha256Primitive } from '../../pkg/authcore/index.js';
import { sha256, sha256Hex, sha256HexSync, sha256Sync } from '../../pkg/internal/sha256.js';
import { toHex } from '../../pkg/internal/bytes.js';

afterEach(() => useSha256Primitive(undefined));

describe('native SHA-256 primitive (node:crypto) for the adapter', () => {
  it('agrees with the JavaScript hash on arbitrary bytes and strings, sync and async', async () => {
    const native = nodeSha256();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.uint8Array({ maxLength: 40_000 }), fc.string({ unit: 'binary' })),
        async (input) => {
          useSha256Primitive(undefined);
          const js = [
            toHex(sha256Sync(input)),
            sha256HexSync(input),
            await sha256Hex(input),
            toHex(await sha256(input)),
          ];
          useSha256Primitive(native);
          const nat = [
            toHex(sha256Sync(input)),
            sha256HexSync(input),
            await sha256Hex(input),
            toHex(await sha256(input)),
          ];
          expect(nat).toEqual(js);
        },
      ),
      { numRuns: 200 },
    );
  });
  it('a primitive that fails the known-answer test is refused and not installed', () => {
    const wrong = { digest: () => new Uint8Array(32), hex: () => '00'.repeat(32) };
    expect(() => useSha256Primitive(wrong)).toThrow(TypeError);
    const stringsOnly = {
      digest: (d: Uint8Array | string) => nodeSha256().digest(typeof d === 'string' ? d : 'x'),
      hex: (d: Uint8Array | string) => nodeSha256().hex(d),
    };
    expect(() => useSha256Primitive(stringsOnly)).toThrow(TypeError);
    const throwing = {
      digest: () => {
        throw new Error('boom');
      },
      hex: () => 'x',
    };
    expect(() => useSha256Primitive(throwing)).toThrow(TypeError);
    // Still the JavaScript hash.
    expect(sha256HexSync('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
