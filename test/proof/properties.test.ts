import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, TrustplaneError, type SigningKey } from '../../pkg/authcore/index.js';
import { decodeBase64Url, encodeBase64Url } from '../../pkg/internal/base64url.js';
import { toHex } from '../../pkg/internal/bytes.js';
import {
  buildTranscript,
  MAX_QUERY_LENGTH,
  normalizeQuery,
  pathSafetyProblem,
  signProof,
  TIME_BUCKET_SECONDS,
  verifyProof,
  type Transcript,
  type TranscriptInput,
} from '../../pkg/proof/index.js';

const RUNS = { numRuns: 300 };
const CRYPTO_RUNS = { numRuns: 100 };

// ---------------------------------------------------------------------------------------------
// Arbitraries and references

/** Raw UTF-16 code units, lone surrogates included. */
const utf16String = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});
/** Any Unicode code point (no lone surrogates). */
const binaryString = fc.string({ unit: 'binary', maxLength: 24 });
/** Code points 0000-00FF, control characters included. */
const asciiString = fc.string({ unit: 'binary-ascii', maxLength: 40 });
/** Mostly query syntax, so '%', '=', '&' and hex digits meet often. */
const queryish = fc.string({
  unit: fc.constantFrom(
    ..."abzAZ019fF-._~=&%+ !*'()/?#[]@é\u0000\u00ff\u{1f600}".match(/[\s\S]/gu)!,
    '%2B',
    '%7e',
    '%C3%A9',
  ),
  maxLength: 30,
});
const anyQuery = fc.oneof(binaryString, asciiString, utf16String, queryish);

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const noControl = (s: string): boolean => !CONTROL.test(s);
/** Strings valid in every transcript field: no control characters. */
const fieldString = fc.oneof(binaryString.filter(noControl), fc.stringMatching(/^[A-Za-z0-9._:/-]{1,16}$/));
const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(toHex);
const controlChar = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)),
  fc.constant('\u007f'),
  fc.constantFrom('\r', '\n', '\r\n'),
);

/** Reference query-component encoder: UTF-8 bytes, RFC 3986 unreserved bare, the rest %XX uppercase. */
function referenceEncode(text: string): string {
  let out = '';
  for (const b of new TextEncoder().encode(text)) {
    const c = String.fromCharCode(b);
    out += /^[A-Za-z0-9\-._~]$/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const comparePairs = (a: readonly [string, string], b: readonly [string, string]): number =>
  a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;

/** Split a normalized query into its [key, value] pairs. */
function pairsOf(normalized: string): [string, string][] {
  if (normalized === '') return [];
  return normalized.split('&').map((piece) => {
    const eq = piece.indexOf('=');
    return [piece.slice(0, eq), piece.slice(eq + 1)];
  });
}

/** The normalized query, or the TrustplaneError it was refused with; anything else is rethrown. */
function tryNormalize(query: string): string | TrustplaneError {
  try {
    return normalizeQuery(query);
  } catch (e) {
    if (e instanceof TrustplaneError) return e;
    throw e;
  }
}

async function tryBuild(input: TranscriptInput): Promise<Transcript | TrustplaneError> {
  try {
    return await buildTranscript(input);
  } catch (e) {
    if (e instanceof TrustplaneError) return e;
    throw e;
  }
}

function expectMalformed(result: unknown): void {
  expect(result).toBeInstanceOf(TrustplaneError);
  expect((result as TrustplaneError).reason).toBe('malformed_request');
}

// ---------------------------------------------------------------------------------------------

describe('normalizeQuery properties', () => {
  it('never throws anything but TrustplaneError malformed_request', () => {
    fc.assert(
      fc.property(anyQuery, (q) => {
        const r = tryNormalize(q);
        if (r instanceof TrustplaneError) expect(r.reason).toBe('malformed_request');
        else expect(typeof r).toBe('string');
      }),
      RUNS,
    );
  });

  it('is idempotent whenever it succeeds', () => {
    fc.assert(
      fc.property(anyQuery, (q) => {
        const once = tryNormalize(q);
        if (once instanceof TrustplaneError) return;
        expect(normalizeQuery(once)).toBe(once);
      }),
      RUNS,
    );
  });

  it('outputs only unreserved characters, uppercase %XX, = and &', () => {
    fc.assert(
      fc.property(anyQuery, (q) => {
        const r = tryNormalize(q);
        if (r instanceof TrustplaneError) return;
        expect(r).toMatch(/^(?:[A-Za-z0-9\-._~=&]|%[0-9A-F]{2})*$/);
      }),
      RUNS,
    );
  });

  it('outputs k=v pairs (exactly one = each, no empty piece) sorted by key, then value', () => {
    fc.assert(
      fc.property(anyQuery, (q) => {
        const r = tryNormalize(q);
        if (r instanceof TrustplaneError || r === '') return;
        for (const piece of r.split('&')) expect(piece.split('=')).toHaveLength(2);
        const pairs = pairsOf(r);
        for (let i = 1; i < pairs.length; i++) {
          expect(comparePairs(pairs[i - 1]!, pairs[i]!)).toBeLessThanOrEqual(0);
        }
      }),
      RUNS,
    );
  });

  it('is invariant under permutation of the &-separated pieces', () => {
    const piece = fc.oneof(
      queryish.map((s) => s.replaceAll('&', '')),
      fc.constant(''),
    );
    fc.assert(
      fc.property(
        fc
          .array(piece, { maxLength: 8 })
          .chain((pieces) =>
            fc.tuple(
              fc.constant(pieces),
              fc.shuffledSubarray(pieces, { minLength: pieces.length, maxLength: pieces.length }),
            ),
          ),
        ([pieces, shuffled]) => {
          const a = tryNormalize(pieces.join('&'));
          fc.pre(!(a instanceof TrustplaneError));
          expect(normalizeQuery(shuffled.join('&'))).toBe(a);
        },
      ),
      RUNS,
    );
  });

  it('round trip: encodeURIComponent pairs normalize to the sorted reference encoding and decode back', () => {
    const component = fc.oneof(binaryString, fc.stringMatching(/^[a-z0-9 +=&%]{0,6}$/));
    fc.assert(
      fc.property(fc.array(fc.tuple(component, component), { maxLength: 8 }), (pairs) => {
        const query = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        const normalized = normalizeQuery(query);
        const expected = pairs
          .map(([k, v]): [string, string] => [referenceEncode(k), referenceEncode(v)])
          .sort(comparePairs)
          .map(([k, v]) => `${k}=${v}`)
          .join('&');
        expect(normalized).toBe(expected);
        const decoded = pairsOf(normalized).map(([k, v]): [string, string] => [
          decodeURIComponent(k),
          decodeURIComponent(v),
        ]);
        expect(decoded.sort(comparePairs)).toEqual([...pairs].sort(comparePairs));
      }),
      RUNS,
    );
  });

  describe('explicit cases', () => {
    it('+ is an ordinary character (%2B), never a space', () => {
      expect(normalizeQuery('a+b=c+d')).toBe('a%2Bb=c%2Bd');
      expect(normalizeQuery('q=%2B')).toBe('q=%2B');
      expect(normalizeQuery('q=%20')).toBe('q=%20');
      expect(normalizeQuery('q=+')).not.toBe(normalizeQuery('q=%20'));
    });

    it.each(['a=%zz', 'a=%2', 'a=%', '%', 'a%=1', 'a=%g0', 'a=%0g', 'a=1&b=%'])(
      'malformed percent-encoding %j fails with malformed_request',
      (q) => {
        expectMalformed(tryNormalize(q));
      },
    );

    it('a piece without = has an empty value', () => {
      expect(normalizeQuery('flag')).toBe('flag=');
      expect(normalizeQuery('flag&a=1')).toBe('a=1&flag=');
    });

    it('empty pieces are dropped', () => {
      expect(normalizeQuery('a=1&&b=2')).toBe('a=1&b=2');
      expect(normalizeQuery('&a=1&')).toBe('a=1');
      expect(normalizeQuery('&&')).toBe('');
      expect(normalizeQuery('')).toBe('');
    });

    it('decodes unreserved escapes, uppercases hex and splits only at the first =', () => {
      expect(normalizeQuery('a=%7e&b=%c3%a9')).toBe('a=~&b=%C3%A9');
      expect(normalizeQuery('a=b=c')).toBe('a=b%3Dc');
      expect(normalizeQuery('k%3Dx=1')).toBe('k%3Dx=1');
    });

    it('sorts by key then value, in byte order of the encoded form', () => {
      expect(normalizeQuery('z=last&a=2&a=10&space=a%20b&encoded=%7E&empty=')).toBe(
        'a=10&a=2&empty=&encoded=~&space=a%20b&z=last',
      );
      // Pairs sort, not "k=v" strings: 'a' < 'a-' although '-' (0x2d) < '=' (0x3d).
      expect(normalizeQuery('a-=0&a=1')).toBe('a=1&a-=0');
    });

    it('bounds the raw query and the normalized form (so normalization is idempotent)', () => {
      expectMalformed(tryNormalize('a'.repeat(MAX_QUERY_LENGTH + 1)));
      // Every '+' becomes %2B: a raw query within the bound can normalize past it, and is refused.
      expectMalformed(tryNormalize('+'.repeat(MAX_QUERY_LENGTH / 2)));
      const fits = '+'.repeat(Math.floor((MAX_QUERY_LENGTH - 1) / 3));
      const normalized = normalizeQuery(fits);
      expect(normalized.length).toBeLessThanOrEqual(MAX_QUERY_LENGTH);
      expect(normalizeQuery(normalized)).toBe(normalized);
    });
  });
});

// ---------------------------------------------------------------------------------------------

const BASE: TranscriptInput = Object.freeze({
  method: 'POST',
  scheme: 'https',
  authority: 'orders.example',
  path: '/v1/tenants/t-1/orders',
  query: 'b=2&a=1',
  audience: 'orders-api',
  routeId: 'orders.tenant',
  contentEncoding: 'identity',
  coveredHeaders: ['x-trustplane-nonce', 'content-type', 'x-tenant-id'],
  headers: Object.freeze({
    'content-type': 'application/json',
    'x-trustplane-nonce': 'nonce-1',
    'x-tenant-id': 't-1',
  }),
  bodySha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  passportJti: 'jti-1',
  nonce: 'nonce-1',
  issuedAt: 1_740_000_019,
  keyBinding: 'software',
});

type StringField =
  | 'method'
  | 'scheme'
  | 'authority'
  | 'path'
  | 'audience'
  | 'routeId'
  | 'contentEncoding'
  | 'passportJti'
  | 'nonce'
  | 'keyBinding';
const STRING_FIELDS: readonly StringField[] = [
  'method',
  'scheme',
  'authority',
  'path',
  'audience',
  'routeId',
  'contentEncoding',
  'passportJti',
  'nonce',
  'keyBinding',
];

describe('buildTranscript properties', () => {
  let baseTranscript: Transcript;
  beforeAll(async () => {
    baseTranscript = await buildTranscript(BASE);
  });

  it('never throws anything but TrustplaneError; success is always 20 LF-joined lines', async () => {
    const str = fc.oneof(fieldString, utf16String, asciiString);
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          method: str,
          scheme: str,
          authority: str,
          path: str,
          query: anyQuery,
          audience: str,
          routeId: str,
          contentEncoding: fc.option(str, { nil: undefined }),
          coveredHeaders: fc.array(fc.oneof(fc.stringMatching(/^[A-Za-z-]{1,8}$/), utf16String), {
            maxLength: 5,
          }),
          headers: fc.dictionary(fc.stringMatching(/^[a-z-]{1,8}$/), utf16String, { maxKeys: 5 }),
          bodySha256: fc.oneof(hex64, utf16String),
          passportJti: str,
          nonce: str,
          issuedAt: fc.oneof(fc.nat(), fc.integer(), fc.double()),
          keyBinding: str,
        }),
        async (input) => {
          const { contentEncoding, ...rest } = input;
          const r = await tryBuild(contentEncoding === undefined ? rest : { ...rest, contentEncoding });
          if (r instanceof TrustplaneError) {
            expect(r.reason).toBe('malformed_request');
            return;
          }
          expect(r.lines).toHaveLength(20);
          expect(r.canonical.split('\n')).toHaveLength(20);
          expect(r.canonical).toBe(r.lines.join('\n'));
          expect(r.canonical.endsWith('\n')).toBe(false);
          expect(r.sha256).toBe(toHex(r.digest));
          expect(r.lines[18]).toBe(`time_bucket=${Math.floor(input.issuedAt / TIME_BUCKET_SECONDS)}`);
        },
      ),
      RUNS,
    );
  });

  it('rejects any control character in a line field with malformed_request (no line injection)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...STRING_FIELDS),
        fieldString,
        controlChar,
        fieldString,
        async (name, before, control, after) => {
          expectMalformed(await tryBuild({ ...BASE, [name]: `${before}${control}${after}` }));
        },
      ),
      RUNS,
    );
  });

  it('refuses line injection through method, path, authority, nonce, jti and route_id', async () => {
    for (const name of ['method', 'path', 'authority', 'nonce', 'passportJti', 'routeId'] as const) {
      expectMalformed(await tryBuild({ ...BASE, [name]: `${BASE[name]}\nkey_binding=hardware_local` }));
      expectMalformed(await tryBuild({ ...BASE, [name]: `${BASE[name]}\r` }));
    }
  });

  it('changing any single covered field changes the sha256', async () => {
    const differentString = (name: StringField) =>
      fieldString
        .filter((v) => v !== BASE[name] && !(name === 'contentEncoding' && v === 'identity'))
        .map((v): [string, Partial<TranscriptInput>] => [name, { [name]: v }]);
    const baseNormalized = normalizeQuery(BASE.query);
    const mutation = fc.oneof(
      ...STRING_FIELDS.map(differentString),
      anyQuery
        .filter((q) => {
          const n = tryNormalize(q);
          return typeof n === 'string' && n !== baseNormalized;
        })
        .map((query): [string, Partial<TranscriptInput>] => ['query', { query }]),
      binaryString
        .filter((v) => v.trim() !== 't-1')
        .map((v): [string, Partial<TranscriptInput>] => [
          'covered header value',
          { headers: { ...BASE.headers, 'x-tenant-id': v } },
        ]),
      fc
        .constant(undefined)
        .map((): [string, Partial<TranscriptInput>] => [
          'covered header absent',
          { headers: { 'content-type': 'application/json', 'x-trustplane-nonce': 'nonce-1' } },
        ]),
      hex64
        .filter((h) => h !== BASE.bodySha256)
        .map((bodySha256): [string, Partial<TranscriptInput>] => ['bodySha256', { bodySha256 }]),
      fc
        .integer({ min: 1, max: 100_000 })
        .map((d): [string, Partial<TranscriptInput>] => ['issuedAt', { issuedAt: BASE.issuedAt + d }]),
    );
    await fc.assert(
      fc.asyncProperty(mutation, async ([, patch]) => {
        const t = await buildTranscript({ ...BASE, ...patch });
        expect(t.sha256).not.toBe(baseTranscript.sha256);
      }),
      RUNS,
    );
  });

  it('issuedAt across a 20 s bucket boundary changes issued_at, time_bucket and the sha256', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 1, max: 19 }),
        async (b, d) => {
          const last = b * TIME_BUCKET_SECONDS + 19;
          const [before, after] = await Promise.all([
            buildTranscript({ ...BASE, issuedAt: last }),
            buildTranscript({ ...BASE, issuedAt: last + d }),
          ]);
          expect(before.lines[18]).toBe(`time_bucket=${b}`);
          expect(after.lines[18]).toBe(`time_bucket=${b + 1}`);
          expect(after.lines[17]).not.toBe(before.lines[17]);
          expect(after.sha256).not.toBe(before.sha256);
        },
      ),
      RUNS,
    );
  });

  it('time_bucket = floor(iat / 20)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), async (iat) => {
        const t = await buildTranscript({ ...BASE, issuedAt: iat });
        expect(t.lines[17]).toBe(`issued_at=${iat}`);
        expect(t.lines[18]).toBe(`time_bucket=${Math.floor(iat / 20)}`);
      }),
      RUNS,
    );
    const bucket = async (iat: number) => (await buildTranscript({ ...BASE, issuedAt: iat })).lines[18];
    expect(await bucket(0)).toBe('time_bucket=0');
    expect(await bucket(19)).toBe('time_bucket=0');
    expect(await bucket(20)).toBe('time_bucket=1');
    expect(await bucket(1_740_000_021)).toBe('time_bucket=87000001');
  });

  it('the allow list is lowercased, sorted and de-duplicated; input order and case do not matter', async () => {
    const name = fc.stringMatching(/^[a-z0-9-]{1,10}$/);
    const randomCase = (s: string, flips: readonly boolean[]) =>
      [...s].map((c, i) => (flips[i % Math.max(flips.length, 1)] ? c.toUpperCase() : c)).join('');
    await fc.assert(
      fc.asyncProperty(
        fc.array(name, { minLength: 1, maxLength: 10 }).chain((names) =>
          fc.tuple(
            fc.constant(names),
            fc.shuffledSubarray([...names, ...names], {
              minLength: 2 * names.length,
              maxLength: 2 * names.length,
            }),
            fc.array(fc.boolean(), { minLength: 1, maxLength: 10 }),
          ),
        ),
        async ([names, shuffled, flips]) => {
          const headers = Object.fromEntries(names.map((n) => [n, `v-${n}`]));
          const a = await buildTranscript({ ...BASE, coveredHeaders: names, headers });
          const b = await buildTranscript({
            ...BASE,
            coveredHeaders: shuffled.map((n) => randomCase(n, flips)),
            headers,
          });
          const expected = [...new Set(names)].sort();
          expect(a.lines[12]).toBe(`headers.allow_list=${expected.join(',')}`);
          expect(b.lines[12]).toBe(a.lines[12]);
          expect(b.sha256).toBe(a.sha256);
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('pathSafetyProblem properties', () => {
  const safeSegment = fc.stringMatching(/^[A-Za-z0-9\-_~]{1,10}$/);
  const safePath = fc.array(safeSegment, { maxLength: 8 }).map((segs) => `/${segs.join('/')}`);

  it('never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.oneof(utf16String, asciiString, binaryString, queryish), (p) => {
        const r = pathSafetyProblem(p);
        expect(r === undefined || typeof r === 'string').toBe(true);
      }),
      RUNS,
    );
  });

  it('paths built from [A-Za-z0-9-_~] segments joined with / are safe', () => {
    fc.assert(
      fc.property(safePath, (p) => {
        expect(pathSafetyProblem(p)).toBeUndefined();
      }),
      RUNS,
    );
  });

  it('any path containing //, \\, %2F, %2f, %2E, %2e, %5C, %5c or %25 is unsafe', () => {
    const bad = fc.constantFrom('//', '\\', '%2F', '%2f', '%2E', '%2e', '%5C', '%5c', '%25');
    const anyText = fc.oneof(utf16String, safePath);
    fc.assert(
      fc.property(anyText, bad, anyText, (before, b, after) => {
        expect(pathSafetyProblem(`${before}${b}${after}`)).toBeDefined();
      }),
      RUNS,
    );
  });

  it('any . or .. segment makes an otherwise safe path unsafe', () => {
    fc.assert(
      fc.property(
        fc.array(safeSegment, { maxLength: 6 }),
        fc.nat(),
        fc.constantFrom('.', '..'),
        (segs, at, dot) => {
          const copy = [...segs];
          copy.splice(at % (segs.length + 1), 0, dot);
          expect(pathSafetyProblem(`/${copy.join('/')}`)).toBeDefined();
        },
      ),
      RUNS,
    );
  });

  it('attack: path confusion ..; (servlet containers drop ;parameters before resolving dot segments)', () => {
    fc.assert(
      fc.property(
        fc.array(safeSegment, { maxLength: 6 }),
        fc.nat(),
        fc.constantFrom('..;', '.;', '..;jsessionid=1', '.;x', ';', ';x=1'),
        (segs, at, dot) => {
          const copy = [...segs];
          copy.splice(at % (segs.length + 1), 0, dot);
          expect(pathSafetyProblem(`/${copy.join('/')}`)).toBeDefined();
        },
      ),
      RUNS,
    );
    expect(pathSafetyProblem('/v1/public/..;/admin')).toBeDefined();
    expect(pathSafetyProblem('/v1/orders/;/search')).toBeDefined();
    // No ';' at all: servlet containers strip `;` parameters before routing, so `/admin;x` would be
    // `/admin` upstream.
    expect(pathSafetyProblem('/v1/orders/a;b=1')).toBe('path has a ; path parameter');
    expect(pathSafetyProblem('/v1/orders/admin;jsessionid=1')).toBe('path has a ; path parameter');
    expect(pathSafetyProblem('/v1/orders/...')).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------

describe('signProof / verifyProof properties', () => {
  let key: SigningKey;
  let other: SigningKey;
  beforeAll(async () => {
    [key, other] = await Promise.all([generateSigningKey(), generateSigningKey()]);
  });
  const digest = fc.uint8Array({ minLength: 32, maxLength: 32 });

  it('round trip: a proof verifies for its digest and key only', async () => {
    await fc.assert(
      fc.asyncProperty(digest, async (d) => {
        const proof = await signProof(d, key);
        expect(proof).toMatch(/^[A-Za-z0-9\-_]{86}$/);
        expect(await verifyProof(d, proof, key.publicKey)).toBe(true);
        expect(await verifyProof(d, proof, other.publicKey)).toBe(false);
      }),
      CRYPTO_RUNS,
    );
  });

  it('any single bit flip in the digest or the signature fails', async () => {
    await fc.assert(
      fc.asyncProperty(digest, fc.nat(255), fc.nat(511), async (d, digestBit, sigBit) => {
        const proof = await signProof(d, key);
        const flippedDigest = Uint8Array.from(d);
        flippedDigest[digestBit >> 3]! ^= 1 << (digestBit & 7);
        expect(await verifyProof(flippedDigest, proof, key.publicKey)).toBe(false);
        const sig = decodeBase64Url(proof)!;
        sig[sigBit >> 3]! ^= 1 << (sigBit & 7);
        expect(await verifyProof(d, encodeBase64Url(sig), key.publicKey)).toBe(false);
      }),
      CRYPTO_RUNS,
    );
  });

  it('any single character change in the proof text fails (including non-canonical padding bits)', async () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    await fc.assert(
      fc.asyncProperty(digest, fc.nat(85), fc.constantFrom(...alphabet), async (d, at, c) => {
        const proof = await signProof(d, key);
        fc.pre(proof[at] !== c);
        const changed = `${proof.slice(0, at)}${c}${proof.slice(at + 1)}`;
        expect(await verifyProof(d, changed, key.publicKey)).toBe(false);
      }),
      CRYPTO_RUNS,
    );
  });

  it('verifyProof never throws on arbitrary proof strings', async () => {
    const b64 = fc.string({
      unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_='),
      minLength: 84,
      maxLength: 88,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(utf16String, asciiString, b64),
        fc.uint8Array({ maxLength: 40 }),
        async (p, d) => {
          expect(await verifyProof(d, p, key.publicKey)).toBe(false);
        },
      ),
      RUNS,
    );
  });

  it('signProof refuses a digest that is not 32 bytes', async () => {
    await expect(signProof(new Uint8Array(31), key)).rejects.toThrow(RangeError);
    await expect(signProof(new Uint8Array(33), key)).rejects.toThrow(RangeError);
  });
});
