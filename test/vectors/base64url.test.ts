import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64Url, encodeBase64Url } from '../../pkg/internal/base64url.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const alphabetChar = fc.constantFrom(...ALPHABET.split(''));
/** Strings over the base64url alphabet, any length (most are not canonical). */
const alphabetString = fc.string({ unit: alphabetChar, maxLength: 64 });
/** Raw UTF-16 code units, lone surrogates included. */
const utf16String = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  maxLength: 64,
});
/** Strings that are mostly alphabet characters with an occasional foreign one. */
const nearAlphabetString = fc.string({
  unit: fc.oneof(
    { weight: 8, arbitrary: alphabetChar },
    { weight: 1, arbitrary: fc.constantFrom('=', '+', '/', ' ', '\n', '\t', '.', '\u0141', '\u00c1', '\0') },
  ),
  maxLength: 64,
});

describe('base64url (RFC 4648 section 5, canonical, unpadded)', () => {
  it('property: decode(encode(bytes)) equals bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        expect(decodeBase64Url(encodeBase64Url(bytes))).toEqual(bytes);
      }),
    );
  });

  it('property: encode agrees with Node Buffer base64url', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        expect(encodeBase64Url(bytes)).toBe(Buffer.from(bytes).toString('base64url'));
      }),
    );
  });

  it('property: encoded length is ceil(4n/3) with no padding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        const text = encodeBase64Url(bytes);
        expect(text.length).toBe(Math.ceil((bytes.length * 4) / 3));
        expect(text).toMatch(/^[A-Za-z0-9_-]*$/);
      }),
    );
  });

  it('property: encode(decode(s)) === s for every s that decodes (one encoding per value)', () => {
    for (const arb of [alphabetString, nearAlphabetString]) {
      fc.assert(
        fc.property(arb, (s) => {
          const bytes = decodeBase64Url(s);
          if (bytes !== undefined) expect(encodeBase64Url(bytes)).toBe(s);
        }),
        { numRuns: 2000 },
      );
    }
  });

  it('property: decoding agrees with Buffer on every string it accepts', () => {
    fc.assert(
      fc.property(alphabetString, (s) => {
        const bytes = decodeBase64Url(s);
        if (bytes !== undefined) expect(Buffer.from(bytes)).toEqual(Buffer.from(s, 'base64url'));
      }),
      { numRuns: 2000 },
    );
  });

  it('property: an alphabet string decodes iff its length is not 1 mod 4 and its trailing bits are zero', () => {
    fc.assert(
      fc.property(alphabetString, (s) => {
        const rest = s.length % 4;
        const last = s.length === 0 ? 0 : ALPHABET.indexOf(s[s.length - 1]!);
        const canonical = rest === 0 || (rest === 2 && (last & 15) === 0) || (rest === 3 && (last & 3) === 0);
        expect(decodeBase64Url(s) !== undefined).toBe(canonical);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: decoding never throws on arbitrary strings', () => {
    const arbitraries = [
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      utf16String,
      nearAlphabetString,
    ];
    for (const arb of arbitraries) {
      fc.assert(
        fc.property(arb, (s) => {
          expect(() => decodeBase64Url(s)).not.toThrow();
        }),
        { numRuns: 1000 },
      );
    }
  });

  it('property: any character outside the alphabet makes the input undecodable', () => {
    const foreign = fc
      .integer({ min: 0, max: 0xffff })
      .map((c) => String.fromCharCode(c))
      .filter((c) => !ALPHABET.includes(c));
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), foreign, fc.nat(), (bytes, ch, at) => {
        const text = encodeBase64Url(bytes);
        const i = at % text.length;
        expect(decodeBase64Url(text.slice(0, i) + ch + text.slice(i + 1))).toBeUndefined();
      }),
    );
  });

  describe('explicit cases', () => {
    it.each([
      ['', []],
      ['AA', [0]],
      ['AAA', [0, 0]],
      ['AAAA', [0, 0, 0]],
      ['_w', [255]],
      ['__8', [255, 255]],
      ['____', [255, 255, 255]],
      ['-_-_', [251, 255, 191]],
      ['Zm9vYmFy', [...'foobar'].map((c) => c.charCodeAt(0))],
    ])('%j decodes', (text, bytes) => {
      expect(decodeBase64Url(text)).toEqual(Uint8Array.from(bytes));
    });

    it.each([
      ['AA==', 'padding'],
      ['AA=', 'padding'],
      ['AAA=', 'padding'],
      ['Zm9vYg==', 'padding'],
      ['+w', "'+' (standard alphabet)"],
      ['/w', "'/' (standard alphabet)"],
      ['__+/', 'standard alphabet'],
      [' AA', 'leading space'],
      ['AA ', 'trailing space'],
      ['AA\n', 'newline'],
      ['AA\tAA', 'tab'],
      ['AAAA AAAA', 'inner space'],
      ['A', 'length 1 mod 4'],
      ['AAAAA', 'length 1 mod 4'],
      ['AB', 'non-zero trailing bits (2 chars)'],
      ['AP', 'non-zero trailing bits (2 chars)'],
      ['_x', 'non-zero trailing bits (2 chars)'],
      ['AAB', 'non-zero trailing bits (3 chars)'],
      ['AAC', 'non-zero trailing bits (3 chars)'],
      ['AA.A', 'dot'],
      ['AA\u0000A', 'NUL'],
      ['AA\u0141A', 'non-ASCII whose low byte is ASCII A'],
      ['AA\u00c1A', 'Latin-1'],
      ['AA\ud83d\ude00', 'astral'],
    ])('%j is rejected (%s)', (text) => {
      expect(decodeBase64Url(text)).toBeUndefined();
    });
  });
});
