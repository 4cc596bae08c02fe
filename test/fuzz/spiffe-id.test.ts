import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatSpiffeId,
  isValidTrustDomain,
  MAX_SPIFFE_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  parseSpiffeId,
  parseTrustDomain,
  SpiffeIdError,
  validateSpiffePath,
} from '../../pkg/broker/spiffe/index.js';
import { attempt, expectCodedError, fuzzParams, FUZZ_TEST_TIMEOUT_MS } from './fuzz-config.js';
import { interestingChar } from './mutations.js';

/*
 * Fuzz of SPIFFE ID parsing. Every string is either refused with a SpiffeIdError carrying a
 * registered `spiffe_id` reason, or parsed into an ID whose `id` round-trips (through
 * parseSpiffeId, formatSpiffeId and parseTrustDomain) and which the SPIFFE-ID standard admits:
 * the acceptance is compared with a reference grammar written from the standard.
 */

const SPIFFE_ID_LAYER = { layers: ['spiffe_id'], ctor: SpiffeIdError } as const;

/** SPIFFE-ID standard sections 2.1 to 2.3, as one grammar (dot segments excluded below). */
const REFERENCE_ID = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)*)$/;
const REFERENCE_PATH = /^(?:\/[A-Za-z0-9._-]+)*$/;
const hasDotSegment = (path: string) => path.split('/').some((s) => s === '.' || s === '..');

function referenceAccepts(id: string): boolean {
  const m = REFERENCE_ID.exec(id);
  if (!m) return false;
  const [, trustDomain, path] = m as unknown as [string, string, string];
  return (
    id.length <= MAX_SPIFFE_ID_BYTES && trustDomain.length <= MAX_TRUST_DOMAIN_BYTES && !hasDotSegment(path)
  );
}

const tdChar = fc.constantFrom(...'abcxyz019.-_'.split(''), 'A', 'Z', ':', '@', '%', '/', 'é', ' ');
const pathChar = fc.constantFrom(
  ...'aZ09.-_/'.split(''),
  '%',
  ':',
  '?',
  '#',
  '~',
  '+',
  ' ',
  '\u0000',
  'é',
  '\\',
);

/** SPIFFE-ish strings: a scheme (right or nearly), a trust domain, a path; sometimes anything. */
const spiffeish: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          'spiffe://',
          'spiffe://',
          'spiffe://',
          'SPIFFE://',
          'spiffe:/',
          'spiffe:',
          'https://',
          '',
          'spiffe:///',
        ),
        fc.oneof(
          fc.string({ unit: tdChar, maxLength: 12 }),
          fc.constantFrom('example.org', 'td', 'a'.repeat(255), 'a'.repeat(256)),
        ),
        fc.oneof(
          fc.string({ unit: pathChar, maxLength: 16 }),
          fc
            .array(fc.constantFrom('ns', 'prod', '.', '..', '...', '', 'a.b', 'A-Z_0'), { maxLength: 4 })
            .map((s) => s.map((x) => `/${x}`).join('')),
          fc.constantFrom('', '/', '/a/', `/${'a'.repeat(MAX_SPIFFE_ID_BYTES)}`),
        ),
      )
      .map(([scheme, td, path]) => `${scheme}${td}${path}`),
  },
  { weight: 1, arbitrary: fc.string({ unit: interestingChar, maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 24 }) },
);

describe('fuzz: SPIFFE IDs', () => {
  it('positive control: valid IDs parse and round-trip', () => {
    const id = parseSpiffeId('spiffe://example.org/ns/prod/sa/api');
    expect(id).toMatchObject({ trustDomain: 'example.org', path: '/ns/prod/sa/api' });
    expect(formatSpiffeId('example.org', ['ns', 'prod', 'sa', 'api']).id).toBe(id.id);
  });

  it(
    'parseSpiffeId: SpiffeIdError with a registered reason, or an ID the standard admits whose id round-trips',
    () => {
      let parsed = 0;
      fc.assert(
        fc.property(spiffeish, (input) => {
          const out = attempt(() => parseSpiffeId(input));
          const expected = referenceAccepts(input);
          if (!out.ok) {
            expectCodedError(out.error, SPIFFE_ID_LAYER);
            expect(expected, `refused a valid SPIFFE ID ${JSON.stringify(input)}`).toBe(false);
            return;
          }
          expect(expected, `accepted an invalid SPIFFE ID ${JSON.stringify(input)}`).toBe(true);
          parsed++;
          const { id, trustDomain, path } = out.value;
          expect(id).toBe(input);
          expect(`spiffe://${trustDomain}${path}`).toBe(id);
          expect(parseSpiffeId(id)).toEqual(out.value);
          expect(parseTrustDomain(id)).toBe(trustDomain);
          expect(isValidTrustDomain(trustDomain)).toBe(true);
          expect(() => validateSpiffePath(path)).not.toThrow();
          const segments = path === '' ? [] : path.slice(1).split('/');
          expect(formatSpiffeId(trustDomain, segments).id).toBe(id);
        }),
        fuzzParams('spiffe-id.parse'),
      );
      expect(parsed, 'no generated ID parsed: the property is vacuous').toBeGreaterThan(0);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'parseTrustDomain / isValidTrustDomain / validateSpiffePath agree with the standard, or throw SpiffeIdError',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(fc.string({ unit: tdChar, maxLength: 12 }), spiffeish),
          fc.oneof(fc.string({ unit: pathChar, maxLength: 16 }), spiffeish),
          (tdInput, pathInput) => {
            const td = attempt(() => parseTrustDomain(tdInput));
            if (td.ok) {
              expect(isValidTrustDomain(td.value)).toBe(true);
              if (!tdInput.includes(':/')) expect(td.value).toBe(tdInput);
              else expect(referenceAccepts(tdInput)).toBe(true);
            } else {
              expectCodedError(td.error, SPIFFE_ID_LAYER);
              if (!tdInput.includes(':/')) expect(isValidTrustDomain(tdInput)).toBe(false);
            }
            const bareOk = /^[a-z0-9._-]+$/.test(tdInput) && tdInput.length <= MAX_TRUST_DOMAIN_BYTES;
            expect(isValidTrustDomain(tdInput)).toBe(bareOk);

            const path = attempt(() => validateSpiffePath(pathInput));
            const pathOk = REFERENCE_PATH.test(pathInput) && !hasDotSegment(pathInput);
            if (!path.ok) expectCodedError(path.error, SPIFFE_ID_LAYER);
            expect(path.ok, `validateSpiffePath(${JSON.stringify(pathInput)})`).toBe(pathOk);
          },
        ),
        fuzzParams('spiffe-id.trust-domain-and-path'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'formatSpiffeId: a segment can never smuggle a separator or a dot segment',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(fc.constantFrom('example.org', 'td'), fc.string({ unit: tdChar, maxLength: 8 })),
          fc.array(
            fc.oneof(
              fc.string({ unit: pathChar, maxLength: 6 }),
              fc.constantFrom('.', '..', '', 'a/b', 'ok'),
            ),
            {
              maxLength: 4,
            },
          ),
          (trustDomain, segments) => {
            const out = attempt(() => formatSpiffeId(trustDomain, segments));
            if (!out.ok) {
              expectCodedError(out.error, SPIFFE_ID_LAYER);
              return;
            }
            expect(out.value.trustDomain).toBe(trustDomain);
            expect(out.value.path === '' ? [] : out.value.path.slice(1).split('/')).toEqual(segments);
            expect(referenceAccepts(out.value.id)).toBe(true);
          },
        ),
        fuzzParams('spiffe-id.format'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});
