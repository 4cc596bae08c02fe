import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  bundlesFromPem,
  bundlesFromSpiffeBundle,
  bundlesFromTrustMaterial,
  parsePemCertificates,
  readLeafSpiffeIdUnverified,
  SvidError,
  verifyX509Svid,
  type SpiffeTrustBundles,
} from '../../pkg/broker/spiffe/index.js';
import type { SpiffeBundle } from '../../pkg/bundle/index.js';
import { derToPem, mintSpiffeChain, type SpiffeChain } from '../helpers/x509.js';
import { attempt, expectCodedError, fuzzParams, FUZZ_TEST_TIMEOUT_MS } from './fuzz-config.js';
import {
  applyByteMutations,
  applyJsonMutations,
  applyTextMutations,
  byteMutations,
  interestingChar,
  jsonMutation,
  sameBytes,
  textMutations,
} from './mutations.js';

/*
 * Fuzz of X.509-SVID verification and SPIFFE trust-bundle parsing, over REAL certificates minted
 * once with openssl (test/helpers/x509.ts). Random bytes and mutated DER (bit flips, TLV tag and
 * length edits, BER long-form lengths, truncation, trailing bytes) never crash other than with an
 * SvidError of the `svid` layer, and a mutated leaf or intermediate never verifies.
 */

const TD = 'example.org';
const SVID_LAYER = { layers: ['svid'], ctor: SvidError } as const;

let chain: SpiffeChain;
let bundles: SpiffeTrustBundles;
let now: number;
let leafDer: Uint8Array;
let intermediateDer: Uint8Array;
let rootDer: Uint8Array;
/** A standard SPIFFE bundle document (JWKS) holding the root. */
let bundleDocument: Record<string, unknown>;

beforeAll(() => {
  chain = mintSpiffeChain({ trustDomain: TD, spiffeId: 'spiffe://example.org/ns/prod/sa/api' });
  bundles = bundlesFromPem(TD, chain.bundlePem);
  now = Math.floor(Date.now() / 1000);
  [leafDer, intermediateDer] = chain.chainDer as [Uint8Array, Uint8Array];
  rootDer = chain.root.der;
  const jwk = chain.root.x509.publicKey.export({ format: 'jwk' });
  bundleDocument = {
    keys: [
      {
        use: 'x509-svid',
        kty: 'EC',
        crv: 'P-256',
        x: String(jwk.x),
        y: String(jwk.y),
        x5c: [Buffer.from(rootDer).toString('base64')],
      },
      { use: 'jwt-svid', kty: 'EC', crv: 'P-256', kid: 'jwt-1', x: String(jwk.x), y: String(jwk.y) },
    ],
    spiffe_sequence: 1,
  };
}, 60_000);

/** Bytes that look like DER often enough to get past the first checks. */
const derish: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 120 }),
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((body) => {
    const len = body.length;
    const header = len < 0x80 ? [0x30, len] : [0x30, 0x81, len];
    return new Uint8Array([...header, ...body]);
  }),
  fc.constantFrom(
    new Uint8Array(0),
    new Uint8Array([0x30, 0x80, 0x00, 0x00]),
    new Uint8Array([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
  ),
);

describe('fuzz: X.509-SVID verification', () => {
  it('positive control: the minted chain verifies', () => {
    const svid = verifyX509Svid(chain.chainDer, bundles, now);
    expect(svid.spiffeId).toBe('spiffe://example.org/ns/prod/sa/api');
    expect(readLeafSpiffeIdUnverified(leafDer).trustDomain).toBe(TD);
  });

  it(
    'random bytes in any chain position: SvidError, never a verified SVID',
    () => {
      fc.assert(
        fc.property(
          fc.array(
            fc.oneof(
              { weight: 3, arbitrary: derish },
              { weight: 1, arbitrary: fc.constantFrom(leafDer, intermediateDer) },
            ),
            {
              maxLength: 9,
            },
          ),
          (ders) => {
            fc.pre(
              !(
                ders.length >= 1 &&
                sameBytes(ders[0]!, leafDer) &&
                ders.slice(1).every((d) => sameBytes(d, intermediateDer))
              ),
            );
            const out = attempt(() => verifyX509Svid(ders, bundles, now));
            expect(out.ok, 'a chain with random certificates verified').toBe(false);
            if (!out.ok) expectCodedError(out.error, SVID_LAYER);
            if (ders[0] !== undefined) {
              const id = attempt(() => readLeafSpiffeIdUnverified(ders[0]!));
              if (!id.ok) expectCodedError(id.error, SVID_LAYER);
            }
          },
        ),
        fuzzParams('x509.random-chains'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'a mutated leaf certificate never verifies (and never crashes)',
    () => {
      fc.assert(
        fc.property(byteMutations, (mutations) => {
          const mutated = applyByteMutations(leafDer, mutations);
          fc.pre(!sameBytes(mutated, leafDer));
          const out = attempt(() => verifyX509Svid([mutated, intermediateDer], bundles, now));
          expect(out.ok, 'a mutated leaf verified').toBe(false);
          if (!out.ok) expectCodedError(out.error, SVID_LAYER);
          // Shape only (no signature check): it may accept, but must not crash.
          const id = attempt(() => readLeafSpiffeIdUnverified(mutated));
          if (!id.ok) expectCodedError(id.error, SVID_LAYER);
        }),
        fuzzParams('x509.mutated-leaf'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'a mutated intermediate certificate never verifies (and never crashes)',
    () => {
      fc.assert(
        fc.property(byteMutations, fc.boolean(), (mutations, withGoodCopy) => {
          const mutated = applyByteMutations(intermediateDer, mutations);
          fc.pre(!sameBytes(mutated, intermediateDer));
          // Alone, or next to the good intermediate (then only the good one may carry the path).
          const ders = withGoodCopy ? [leafDer, mutated, intermediateDer] : [leafDer, mutated];
          const out = attempt(() => verifyX509Svid(ders, bundles, now));
          if (!withGoodCopy) expect(out.ok, 'a mutated intermediate verified').toBe(false);
          if (!out.ok) {
            expectCodedError(out.error, SVID_LAYER);
            return;
          }
          for (const cert of out.value.chain)
            expect(sameBytes(new Uint8Array(cert.raw), mutated)).toBe(false);
        }),
        fuzzParams('x509.mutated-intermediate'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});

describe('fuzz: SPIFFE trust bundles', () => {
  it('positive control: the bundle parses from PEM, JWKS and trust material', () => {
    expect(bundlesFromPem(TD, chain.bundlePem).get(TD)).toHaveLength(1);
    expect(bundlesFromSpiffeBundle(TD, JSON.stringify(bundleDocument)).get(TD)).toHaveLength(1);
    const entry = { trust_domain: TD, ...bundleDocument } as unknown as SpiffeBundle;
    expect(bundlesFromTrustMaterial([entry]).get(TD)).toHaveLength(1);
    expect(parsePemCertificates(chain.chainPem, 'chain', 8)).toHaveLength(2);
  });

  it(
    'PEM, JWKS and trust-material bundles: mutated or random input gives SvidError or roots that never crash verification',
    () => {
      type Input =
        | {
            readonly kind: 'pem';
            readonly base: number;
            readonly edits: Parameters<typeof applyTextMutations>[1];
          }
        | { readonly kind: 'pem-der'; readonly mutations: Parameters<typeof applyByteMutations>[1] }
        | { readonly kind: 'text'; readonly text: string }
        | {
            readonly kind: 'jwks';
            readonly mutations: Parameters<typeof applyJsonMutations>[1];
            readonly asText: boolean;
          }
        | { readonly kind: 'trust-material'; readonly mutations: Parameters<typeof applyJsonMutations>[1] }
        | { readonly kind: 'anything'; readonly value: unknown };
      const input: fc.Arbitrary<Input> = fc.oneof(
        fc.record({ kind: fc.constant('pem' as const), base: fc.nat({ max: 1 }), edits: textMutations }),
        fc.record({ kind: fc.constant('pem-der' as const), mutations: byteMutations }),
        fc.record({
          kind: fc.constant('text' as const),
          text: fc.oneof(
            fc.string({ unit: interestingChar, maxLength: 60 }),
            fc.constantFrom(
              '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
              '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
              '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
              `${'-----BEGIN CERTIFICATE-----\n'.repeat(2000)}`,
              `-----BEGIN CERTIFICATE-----\n${'A'.repeat(100_000)}`,
            ),
          ),
        }),
        fc.record({
          kind: fc.constant('jwks' as const),
          mutations: fc.array(
            jsonMutation(
              ['x509-svid', 'jwt-svid', 'EC', 'RSA', 'OKP', 'P-256', 'AAAA', 'MIIB'],
              ['use', 'kty', 'x5c', 'crv'],
            ),
            {
              minLength: 1,
              maxLength: 3,
            },
          ),
          asText: fc.boolean(),
        }),
        fc.record({
          kind: fc.constant('trust-material' as const),
          mutations: fc.array(
            jsonMutation(['x509-svid', 'example.org', 'Example.org', 'MIIB'], ['use', 'x5c', 'trust_domain']),
            {
              minLength: 1,
              maxLength: 3,
            },
          ),
        }),
        fc.record({ kind: fc.constant('anything' as const), value: fc.anything({ maxDepth: 3 }) }),
      );
      fc.assert(
        fc.property(input, (c) => {
          let parsed: ReturnType<typeof attempt<SpiffeTrustBundles>>;
          switch (c.kind) {
            case 'pem': {
              const text = applyTextMutations(c.base === 0 ? chain.bundlePem : chain.chainPem, c.edits);
              const pems = attempt(() => parsePemCertificates(text, 'fuzz', 8));
              if (!pems.ok) expectCodedError(pems.error, SVID_LAYER);
              parsed = attempt(() => bundlesFromPem(TD, text));
              break;
            }
            case 'pem-der':
              parsed = attempt(() => bundlesFromPem(TD, derToPem(applyByteMutations(rootDer, c.mutations))));
              break;
            case 'text':
              parsed = attempt(() => bundlesFromPem(TD, c.text));
              if (parsed.ok) break;
              expectCodedError(parsed.error, SVID_LAYER);
              parsed = attempt(() => bundlesFromSpiffeBundle(TD, c.text));
              break;
            case 'jwks': {
              const doc = applyJsonMutations(bundleDocument, c.mutations);
              parsed = attempt(() => bundlesFromSpiffeBundle(TD, c.asText ? JSON.stringify(doc) : doc));
              break;
            }
            case 'trust-material': {
              const entry = applyJsonMutations({ trust_domain: TD, ...bundleDocument }, c.mutations);
              parsed = attempt(() => bundlesFromTrustMaterial([entry as SpiffeBundle]));
              break;
            }
            case 'anything':
              parsed = attempt(() => bundlesFromSpiffeBundle(TD, c.value));
              if (parsed.ok) break;
              expectCodedError(parsed.error, SVID_LAYER);
              parsed = attempt(() => bundlesFromTrustMaterial([c.value as SpiffeBundle]));
              break;
          }
          if (!parsed.ok) {
            expectCodedError(parsed.error, SVID_LAYER);
            return;
          }
          // Whatever roots came out (a root's own signature is not checked: it is a trust anchor),
          // verifying the real chain with them answers, or refuses with an SvidError.
          const out = attempt(() => verifyX509Svid(chain.chainDer, parsed.value, now));
          if (!out.ok) expectCodedError(out.error, SVID_LAYER);
        }),
        fuzzParams('x509.bundles'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});
