import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../pkg/internal/bytes.js';
import { canonicalizeJson, MAX_JCS_DEPTH } from '../../pkg/internal/jcs.js';

interface JcsVectors {
  structuralCases: { name: string; input: string; expectedOutput: string; expectedOutputHex: string }[];
  numberSerialization: { ieeeHex: string; expected: string }[];
  numberErrors: { ieeeHex: string; expected: string }[];
}

const vectors = JSON.parse(
  readFileSync(fileURLToPath(new URL('./external/rfc8785-jcs.json', import.meta.url)), 'utf8'),
) as JcsVectors;

function doubleFromHex(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

function withHole(): unknown[] {
  const a: unknown[] = [1];
  a[2] = 2;
  return a;
}

describe('RFC 8785 structural cases', () => {
  it('has every published case', () => {
    expect(vectors.structuralCases.map((c) => c.name)).toEqual([
      'arrays',
      'french',
      'structures',
      'unicode',
      'values',
      'weird',
    ]);
  });
  for (const c of vectors.structuralCases) {
    it(`canonicalizes ${c.name}`, () => {
      const out = canonicalizeJson(JSON.parse(c.input));
      expect(out).toBe(c.expectedOutput);
      expect(toHex(utf8(out))).toBe(c.expectedOutputHex);
    });
  }
});

describe('RFC 8785 number serialization (Appendix B)', () => {
  expect(vectors.numberSerialization.length).toBe(24);
  for (const c of vectors.numberSerialization) {
    it(`${c.ieeeHex} -> ${c.expected}`, () => {
      expect(canonicalizeJson(doubleFromHex(c.ieeeHex))).toBe(c.expected);
      expect(canonicalizeJson([doubleFromHex(c.ieeeHex)])).toBe(`[${c.expected}]`);
    });
  }
  for (const c of vectors.numberErrors) {
    it(`${c.ieeeHex} is an error (${c.expected})`, () => {
      expect(() => canonicalizeJson(doubleFromHex(c.ieeeHex))).toThrow(TypeError);
      expect(() => canonicalizeJson({ n: doubleFromHex(c.ieeeHex) })).toThrow(TypeError);
    });
  }
  it('rejects -Infinity', () => {
    expect(() => canonicalizeJson(-Infinity)).toThrow(TypeError);
  });
});

describe('canonicalizeJson rejects what is not I-JSON', () => {
  const cases: [string, unknown][] = [
    ['lone high surrogate in a string', '\uD800'],
    ['lone low surrogate in a string', 'a\uDC00b'],
    ['reversed surrogate pair', '\uDE00\uD83D'],
    ['lone surrogate in a member name', { '\uDBFF': 1 }],
    ['Date', new Date(0)],
    ['Map', new Map([['a', 1]])],
    ['Set', new Set([1])],
    ['class instance', new (class Thing {})()],
    ['function', () => 1],
    ['function member', { f: () => 1 }],
    ['undefined at the top level', undefined],
    ['undefined array element', [1, undefined]],
    ['array hole', withHole()],
    ['bigint', 1n],
    ['bigint member', { n: 1n }],
    ['symbol', Symbol('x')],
    ['typed array', new Uint8Array(2)],
    ['boxed string', Object('x')],
  ];
  for (const [name, value] of cases) {
    it(name, () => {
      expect(() => canonicalizeJson(value)).toThrow(TypeError);
    });
  }
  it('cycles', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => canonicalizeJson(a)).toThrow(TypeError);
  });
  it('nesting beyond the bound', () => {
    let deep: unknown = 0;
    for (let i = 0; i < MAX_JCS_DEPTH + 1; i++) deep = [deep];
    expect(() => canonicalizeJson(deep)).toThrow(RangeError);
  });
});

describe('canonicalizeJson accepts plain data', () => {
  it('keeps a valid surrogate pair literal', () => {
    expect(canonicalizeJson('\uD83D\uDE00')).toBe('"\uD83D\uDE00"');
  });
  it('sorts by UTF-16 code units, not code points', () => {
    // U+FF61 sorts before U+1F600 by code point but after it by UTF-16 code units (0xD83D).
    expect(canonicalizeJson({ '\uFF61': 2, '\uD83D\uDE00': 1 })).toBe('{"\uD83D\uDE00":1,"\uFF61":2}');
  });
  it('accepts null-prototype objects and omits undefined members', () => {
    const o = Object.assign(Object.create(null) as Record<string, unknown>, { b: 2, a: undefined });
    expect(canonicalizeJson(o)).toBe('{"b":2}');
  });
  it('allows a shared (non-cyclic) reference twice', () => {
    const shared = { x: 1 };
    expect(canonicalizeJson([shared, shared])).toBe('[{"x":1},{"x":1}]');
  });
  it('escapes control characters as JSON.stringify does', () => {
    expect(canonicalizeJson('\u0000\u001f\u007f\b\t')).toBe('"\\u0000\\u001f\u007f\\b\\t"');
  });
});

function shuffleKeys(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v, i) => shuffleKeys(v, seed + i));
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    // Deterministic rotation + reversal: a different insertion order for the same members.
    const rotated = entries
      .slice(seed % Math.max(entries.length, 1))
      .concat(entries.slice(0, seed % Math.max(entries.length, 1)));
    if (seed % 2 === 0) rotated.reverse();
    return Object.fromEntries(rotated.map(([k, v]) => [k, shuffleKeys(v, seed + 1)]));
  }
  return value;
}

describe('canonicalizeJson properties', () => {
  it('is idempotent through JSON.parse', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (x) => {
        const c = canonicalizeJson(x);
        expect(canonicalizeJson(JSON.parse(c))).toBe(c);
      }),
      { numRuns: 500 },
    );
  });
  it('does not depend on member insertion order', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (x, seed) => {
        expect(canonicalizeJson(shuffleKeys(x, seed))).toBe(canonicalizeJson(x));
      }),
      { numRuns: 500 },
    );
  });
  it('equals JSON.stringify of the value with its members sorted (strings with escapes included)', () => {
    const sorted = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(sorted)
        : v !== null && typeof v === 'object'
          ? Object.fromEntries(
              Object.keys(v)
                .sort()
                .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
            )
          : v;
    const text = fc.string({
      unit: fc.constantFrom('a', '"', '\\', '\n', '\u0000', '\u001f', '\u007f', 'é', '\u2028', '😀', '/'),
    });
    fc.assert(
      fc.property(
        fc.oneof(fc.jsonValue({ stringUnit: 'grapheme' }), text, fc.dictionary(text, text)),
        (x) => {
          // JSON.parse(JSON.stringify(x)): -0 becomes 0 and prototype-like keys become own members.
          const v = JSON.parse(JSON.stringify(x)) as unknown;
          expect(canonicalizeJson(v)).toBe(JSON.stringify(sorted(v)));
        },
      ),
      { numRuns: 3000, seed: 8785 },
    );
  });
  it('agrees with JSON.parse on the value it encodes', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (x) => {
        expect(JSON.parse(canonicalizeJson(x))).toEqual(JSON.parse(JSON.stringify(x)));
      }),
      { numRuns: 300 },
    );
  });
});
