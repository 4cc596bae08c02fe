import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildTranscript,
  MAX_COVERED_HEADERS,
  MAX_QUERY_LENGTH,
  normalizeCoveredHeaders,
  normalizeQuery,
  parseCoveredHeadersHeader,
  QUERY_NORMALIZATION,
  TRANSCRIPT_VERSION,
  type Transcript,
  type TranscriptInput,
} from '../../pkg/proof/index.js';
import { attempt, attemptAsync, expectCodedError, fuzzParams, FUZZ_TEST_TIMEOUT_MS } from './fuzz-config.js';
import { applyTextMutations, interestingChar, textMutations } from './mutations.js';

/*
 * Fuzz of the transcript-v1 inputs: query normalization, the covered-header list, and
 * buildTranscript. No crash: refusals are `malformed_request`. No forgery: whatever the fields
 * hold, an accepted transcript has exactly its 20 lines, and two requests that differ in a covered
 * field never share a transcript.
 */

const MALFORMED = { reasons: ['malformed_request'] } as const;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Output alphabet of rfc3986-sort-keys-values: unreserved characters and uppercase %XX, in k=v pairs. */
const NORMALIZED_PAIR = /^(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*=(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** Queries around MAX_QUERY_LENGTH, computed once (generating them per case costs more than the check). */
function longQueries(): string[] {
  const out: string[] = [];
  for (const piece of ['a=1&', '%41', '&', '=', '!', 'é', 'b=%7e&a']) {
    for (const length of [MAX_QUERY_LENGTH - 1, MAX_QUERY_LENGTH, MAX_QUERY_LENGTH + 1]) {
      out.push(piece.repeat(Math.ceil(length / piece.length)).slice(0, length));
    }
  }
  return out;
}

/** Query text: query syntax meets often ('%', '=', '&', hex digits), plus anything Unicode. */
const queryUnit = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(..."aAzZ09fF=&%+-._~!*'();:@$,/?#[] ".split('')) },
  {
    weight: 2,
    arbitrary: fc.constantFrom('%2B', '%7e', '%7E', '%C3%A9', '%00', '%0A', '%25', '%2', '%G1', '%%'),
  },
  { weight: 1, arbitrary: interestingChar },
);
const anyQuery: fc.Arbitrary<string> = fc.oneof(
  { weight: 24, arbitrary: fc.string({ unit: queryUnit, maxLength: 40 }) },
  { weight: 8, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  {
    weight: 4,
    arbitrary: fc.string({
      unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
      maxLength: 16,
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom(...longQueries()) },
);

/** Header names: tokens, near tokens, and arbitrary text. */
const headerName = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'x-trustplane-nonce',
      'Content-Type',
      ' x-tenant-id ',
      'X-TENANT-ID',
      'content-type',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: interestingChar, maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom('\u212Aey', 'İd', 'a b', 'a:b', 'a,b', '', ' ', '\t') },
);

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
/** Field text without control characters (Unicode welcome). */
const cleanText = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9._:/-]{1,16}$/),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }).filter((s) => !CONTROL.test(s)),
);
/** Field text of any kind, control characters included. */
const anyText = fc.oneof(
  cleanText,
  fc.string({ unit: interestingChar, maxLength: 12 }),
  fc.string({ maxLength: 12 }),
);
const controlChar = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)),
  fc.constantFrom('\u007f', '\r', '\n', '\r\n'),
);

/** A valid transcript input: a POST with a query, two covered headers and a body digest. */
function baseInput(): TranscriptInput {
  return {
    method: 'POST',
    scheme: 'https',
    authority: 'orders.example',
    path: '/v1/orders/42',
    query: 'b=2&a=1',
    audience: 'orders-api',
    routeId: 'orders.create',
    contentEncoding: 'identity',
    coveredHeaders: ['x-trustplane-nonce', 'content-type', 'x-tenant-id'],
    headers: { 'x-trustplane-nonce': 'nonce-1', 'content-type': 'application/json', 'x-tenant-id': 't-1' },
    bodySha256: 'a'.repeat(64),
    passportJti: 'jti-1',
    nonce: 'nonce-1',
    issuedAt: 1_767_225_600,
    keyBinding: 'software',
  };
}

/** The text fields of a transcript input, each a line of the transcript. */
const TEXT_FIELDS = [
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
] as const;
type TextField = (typeof TEXT_FIELDS)[number];

const LINE_NAMES = [
  'version',
  'method',
  'scheme',
  'authority',
  'path',
  'audience',
  'route_id',
  'content_encoding',
  'query_normalization.algorithm',
  'query_normalization.normalized',
  'query_normalization.sha256',
  'query_sha256',
  'headers.allow_list',
  'headers.selected',
  'body_sha256',
  'passport_jti',
  'nonce',
  'issued_at',
  'time_bucket',
  'key_binding',
];

/** An accepted transcript has exactly the 20 lines, in order, and every value is its field's. */
function expectWellFormed(t: Transcript, input: TranscriptInput): void {
  const lines = t.canonical.split('\n');
  expect(lines).toHaveLength(20);
  expect(lines.map((l) => l.slice(0, l.indexOf('=')))).toEqual(LINE_NAMES);
  expect(lines[0]).toBe(`version=${TRANSCRIPT_VERSION}`);
  expect(lines[8]).toBe(`query_normalization.algorithm=${QUERY_NORMALIZATION}`);
  const value = (i: number) => lines[i]!.slice(LINE_NAMES[i]!.length + 1);
  expect([value(1), value(2), value(3), value(4), value(5), value(6)]).toEqual([
    input.method,
    input.scheme,
    input.authority,
    input.path,
    input.audience,
    input.routeId,
  ]);
  expect(value(7)).toBe(input.contentEncoding ?? 'identity');
  expect([value(15), value(16), value(19)]).toEqual([input.passportJti, input.nonce, input.keyBinding]);
  expect(CONTROL.test(t.canonical.replace(/\n/g, ''))).toBe(false);
}

describe('fuzz: query normalization and covered headers', () => {
  it(
    'normalizeQuery: refuses exactly the malformed queries (malformed_request); otherwise sorted, well-formed k=v pairs',
    () => {
      fc.assert(
        fc.property(anyQuery, (query) => {
          const out = attempt(() => normalizeQuery(query));
          const malformed = query.length > MAX_QUERY_LENGTH || /%(?![0-9A-Fa-f]{2})/.test(query);
          if (!out.ok) {
            expectCodedError(out.error, MALFORMED);
            // Also refused: a query whose normalized form exceeds the bound (re-encoding can triple
            // it), which needs a raw query longer than a third of the bound.
            const normalizedTooLong =
              (out.error as Error).message === 'query too long' && query.length * 3 > MAX_QUERY_LENGTH;
            expect(malformed || normalizedTooLong, 'a well-formed query was refused').toBe(true);
            return;
          }
          expect(malformed, 'a malformed query was accepted').toBe(false);
          if (out.value === '') return;
          const pairs = out.value.split('&');
          for (const pair of pairs) expect(pair).toMatch(NORMALIZED_PAIR);
          const split = (pair: string) =>
            [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)] as const;
          const sorted = [...pairs].sort((a, b) => {
            const [ka, va] = split(a);
            const [kb, vb] = split(b);
            return ka < kb ? -1 : ka > kb ? 1 : va < vb ? -1 : va > vb ? 1 : 0;
          });
          expect(pairs).toEqual(sorted);
        }),
        fuzzParams('transcript.normalize-query'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'normalizeQuery: the normalized form of an accepted query is a fixed point (normalizeQuery(n) === n)',
    () => {
      fc.assert(
        fc.property(anyQuery, (query) => {
          const out = attempt(() => normalizeQuery(query));
          if (!out.ok) return;
          const again = attempt(() => normalizeQuery(out.value));
          if (!again.ok) expectCodedError(again.error, MALFORMED);
          expect(again, 'normalizeQuery(normalizeQuery(q)) !== normalizeQuery(q)').toEqual({
            ok: true,
            value: out.value,
          });
        }),
        fuzzParams('transcript.normalize-query-fixed-point'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'parseCoveredHeadersHeader / normalizeCoveredHeaders: malformed_request, or a sorted unique token list that is a fixed point',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc
              .array(headerName, { maxLength: MAX_COVERED_HEADERS + 3 })
              .map((names) => ({ names, header: names.join(',') })),
            fc
              .string({ unit: fc.oneof(interestingChar, fc.constantFrom(',', ' ', 'a', 'X')), maxLength: 40 })
              .map((header) => ({
                names: header.split(','),
                header,
              })),
          ),
          ({ names, header }) => {
            const fromHeader = attempt(() => parseCoveredHeadersHeader(header));
            const fromList = attempt(() => normalizeCoveredHeaders(names));
            for (const out of [fromHeader, fromList]) {
              if (!out.ok) {
                expectCodedError(out.error, MALFORMED);
                continue;
              }
              const list = out.value;
              expect(list.length).toBeLessThanOrEqual(MAX_COVERED_HEADERS);
              for (const name of list) expect(name).toMatch(TOKEN);
              expect(list).toEqual([...new Set(list)].sort());
              expect(normalizeCoveredHeaders(list)).toEqual(list);
              expect(parseCoveredHeadersHeader(list.join(','))).toEqual(list);
            }
            // The header form is the list form of its comma-separated pieces.
            expect(fromHeader.ok).toBe(attempt(() => normalizeCoveredHeaders(header.split(','))).ok);
          },
        ),
        fuzzParams('transcript.covered-headers'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});

describe('fuzz: buildTranscript', () => {
  it('positive control: the base input builds a well-formed transcript', async () => {
    const input = baseInput();
    expectWellFormed(await buildTranscript(input), input);
  });

  it(
    'any field values: either malformed_request or exactly 20 well-formed lines (no value forges a line)',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.record(
            {
              method: anyText,
              scheme: anyText,
              authority: anyText,
              path: anyText,
              query: anyQuery,
              audience: anyText,
              routeId: anyText,
              contentEncoding: anyText,
              coveredHeaders: fc.array(headerName, { maxLength: 4 }),
              headerValue: fc.string({ unit: interestingChar, maxLength: 12 }),
              bodySha256: fc.oneof(
                hex64,
                fc.constantFrom('A'.repeat(64), 'a'.repeat(63), `${'a'.repeat(63)}\n`),
              ),
              passportJti: anyText,
              nonce: anyText,
              issuedAt: fc.oneof(fc.nat(), fc.constantFrom(-1, 0.5, Number.MAX_SAFE_INTEGER, 2 ** 53)),
              keyBinding: anyText,
            },
            { requiredKeys: ['method', 'query', 'coveredHeaders', 'headerValue', 'bodySha256', 'issuedAt'] },
          ),
          async (fields) => {
            const { headerValue, ...rest } = fields;
            const input: TranscriptInput = {
              ...baseInput(),
              ...rest,
              headers: (name: string) => (name === 'x-missing' ? undefined : `${headerValue}${name}`),
            };
            const out = await attemptAsync(() => buildTranscript(input));
            if (!out.ok) {
              expectCodedError(out.error, MALFORMED);
              return;
            }
            expectWellFormed(out.value, input);
          },
        ),
        fuzzParams('transcript.arbitrary-fields'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'a control character (CR, LF, NUL, DEL, ...) anywhere in any field is refused with malformed_request',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom<TextField | 'normalizedQuery' | 'coveredHeader'>(
            ...TEXT_FIELDS,
            'normalizedQuery',
            'coveredHeader',
          ),
          fc.nat({ max: 64 }),
          controlChar,
          async (field, at, control) => {
            const input: Record<string, unknown> = { ...baseInput() };
            const inject = (value: string) =>
              value.slice(0, at % (value.length + 1)) + control + value.slice(at % (value.length + 1));
            if (field === 'normalizedQuery') input.normalizedQuery = inject('a=1&b=2');
            else if (field === 'coveredHeader')
              input.coveredHeaders = ['x-trustplane-nonce', inject('x-tenant-id')];
            else input[field] = inject(String(input[field]));
            const out = await attemptAsync(() => buildTranscript(input as unknown as TranscriptInput));
            if (out.ok && field === 'coveredHeader') {
              // Names are trimmed (' x-tenant-id' from a header list): a leading or trailing CR/LF/TAB
              // goes with the whitespace, and what is left must carry no control character.
              expectWellFormed(out.value, input as unknown as TranscriptInput);
              expect(out.value.lines[12]).toBe('headers.allow_list=x-tenant-id,x-trustplane-nonce');
              return;
            }
            expect(out.ok, `a control character in ${field} was accepted`).toBe(false);
            if (!out.ok) expectCodedError(out.error, MALFORMED);
          },
        ),
        fuzzParams('transcript.control-characters'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'two requests that differ in one covered field have different transcripts (and an uncovered header changes nothing)',
    async () => {
      type Change =
        | {
            readonly kind: 'text';
            readonly field: TextField;
            readonly edits: Parameters<typeof applyTextMutations>[1];
          }
        | { readonly kind: 'query'; readonly query: string }
        | { readonly kind: 'covered-value'; readonly name: string; readonly value: string | undefined }
        | { readonly kind: 'covered-list'; readonly names: readonly string[] }
        | { readonly kind: 'body'; readonly digest: string }
        | { readonly kind: 'issued-at'; readonly delta: number }
        | { readonly kind: 'uncovered'; readonly value: string };
      const change: fc.Arbitrary<Change> = fc.oneof(
        fc.record({
          kind: fc.constant('text' as const),
          field: fc.constantFrom(...TEXT_FIELDS),
          edits: textMutations,
        }),
        fc.record({ kind: fc.constant('query' as const), query: anyQuery }),
        fc.record({
          kind: fc.constant('covered-value' as const),
          name: fc.constantFrom('x-trustplane-nonce', 'content-type', 'x-tenant-id'),
          value: fc.option(fc.string({ unit: interestingChar, maxLength: 10 }), { nil: undefined }),
        }),
        fc.record({
          kind: fc.constant('covered-list' as const),
          names: fc.array(headerName, { maxLength: 4 }),
        }),
        fc.record({ kind: fc.constant('body' as const), digest: hex64 }),
        fc.record({ kind: fc.constant('issued-at' as const), delta: fc.integer({ min: -100, max: 100 }) }),
        fc.record({ kind: fc.constant('uncovered' as const), value: fc.string({ maxLength: 10 }) }),
      );
      await fc.assert(
        fc.asyncProperty(change, async (c) => {
          const base = baseInput();
          const baseHeaders = base.headers as Readonly<Record<string, string>>;
          let next: TranscriptInput = base;
          // Whether the change is visible to the transcript, after the normalizations it applies.
          let covered = true;
          switch (c.kind) {
            case 'text': {
              const value = applyTextMutations(String(base[c.field]), c.edits);
              next = { ...base, [c.field]: value };
              covered = value !== base[c.field];
              break;
            }
            case 'query': {
              next = { ...base, query: c.query };
              const normalized = attempt(() => normalizeQuery(c.query));
              covered = !normalized.ok || normalized.value !== normalizeQuery(base.query);
              break;
            }
            case 'covered-value': {
              const headers: Record<string, string> = { ...baseHeaders };
              if (c.value === undefined) delete headers[c.name];
              else headers[c.name] = c.value;
              next = { ...base, headers };
              covered = c.value?.trim() !== baseHeaders[c.name]!.trim();
              break;
            }
            case 'covered-list': {
              next = { ...base, coveredHeaders: c.names };
              const list = attempt(() => normalizeCoveredHeaders(c.names));
              covered =
                !list.ok || list.value.join(',') !== normalizeCoveredHeaders(base.coveredHeaders).join(',');
              break;
            }
            case 'body':
              next = { ...base, bodySha256: c.digest };
              covered = c.digest !== base.bodySha256;
              break;
            case 'issued-at':
              next = { ...base, issuedAt: base.issuedAt + c.delta };
              covered = c.delta !== 0;
              break;
            case 'uncovered':
              next = { ...base, headers: { ...baseHeaders, 'x-uncovered': c.value } };
              covered = false;
              break;
          }
          const a = await buildTranscript(base);
          const b = await attemptAsync(() => buildTranscript(next));
          if (!b.ok) {
            expectCodedError(b.error, MALFORMED);
            return;
          }
          if (covered) expect(b.value.sha256, 'two different requests share a transcript').not.toBe(a.sha256);
          else expect(b.value.sha256).toBe(a.sha256);
        }),
        fuzzParams('transcript.covered-field-differs'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});
