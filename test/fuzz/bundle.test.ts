import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  documentSigningInput,
  loadPolicyBundle,
  loadTrustMaterial,
  MAX_DOCUMENT_BYTES,
  parsePolicyBundle,
  parsePolicyBundleText,
  parseTrustMaterial,
  parseTrustMaterialText,
  SIGNED_DOCUMENT_PREFIX,
  signDocument,
  verifyDocument,
  type DocumentSigner,
} from '../../pkg/bundle/index.js';
import { canonicalizeJson, MAX_JCS_DEPTH } from '../../pkg/internal/jcs.js';
import { createWorld, SOFTWARE_ISSUER, type World } from '../helpers/fixture.js';
import {
  attempt,
  attemptAsync,
  expectCodedError,
  fuzzParams,
  FUZZ_TEST_TIMEOUT_MS,
  type Outcome,
} from './fuzz-config.js';
import {
  applyJsonMutations,
  applyTextMutations,
  cloneJson,
  interestingChar,
  jsonMutation,
  textMutations,
  type JsonMutation,
  type JsonPath,
} from './mutations.js';

/*
 * Fuzz of the signed documents (trust material, policy bundle): parsing, signature verification,
 * loading, and the RFC 8785 canonicalization (JCS) their signatures cover.
 * No crash: every refusal is a TrustplaneError of the bundle layer. No wrong accept: a signed
 * document whose canonical form changed anywhere (outside the `signature` member, which the
 * signature does not cover, and inside it too) never loads with the original key.
 */

const BUNDLE_LAYER = { layers: ['bundle'] } as const;
const INVALID = { reasons: ['invalid_bundle'] } as const;

let world: World;
let signers: DocumentSigner[];
/** The two signed documents of the world, by label. */
let documents: { readonly label: 'policy' | 'trust'; readonly doc: Record<string, unknown> }[];

beforeAll(async () => {
  world = await createWorld();
  signers = [{ kid: 'bundle-signer-1', key: world.bundleSigner.publicKey }];
  documents = [
    { label: 'policy', doc: world.policyDoc },
    { label: 'trust', doc: world.trustDoc },
  ];
});

/** Words that mean something to the schemas, so mutations often stay close to valid. */
const DOMAIN_STRINGS = [
  'trustplane-bundle-v1',
  'policy_runtime_bundle',
  'trustplane-trust-material-v1',
  'trust_material',
  'orders-api',
  'orders',
  'orders.search',
  'orders.get',
  'GET',
  'POST',
  'get',
  'HEAD',
  '/v1/orders/{order_id}',
  '/v1/orders/{a}/{a}',
  '/v1/orders/{x}',
  '/v1/orders/search',
  '/V1/Orders/Search',
  '/v1//x',
  '/v1/%2F',
  '/v1/..',
  '/v1/a;b',
  '/',
  'software',
  'hardware_local',
  'attested_workload',
  'software_jwks',
  'spiffe_spire',
  'example.local',
  'Example.local',
  'other.local',
  'realtime',
  'bounded',
  'offline-ok',
  'dry-run',
  'enforce',
  'required',
  'best_effort',
  'https://orders.example',
  'javascript:alert(1)',
  'EdDSA',
  'none',
  'ed25519-jcs-v1',
  'unsigned-skeleton',
  'bundle-signer-1',
  'caller-1',
  'x-trustplane-nonce',
  'X-Tenant',
  'jti',
  'subject',
  'key',
  'OKP',
  'Ed25519',
  'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  SOFTWARE_ISSUER,
];

/** String members worth editing in place (URLs, ids, templates, keys). */
const MEMBER_NAMES = [
  'base_url',
  'x5u',
  'audience',
  'path_template',
  'method',
  'route_id',
  'api_id',
  'issuer',
  'kid',
  'x',
  'trust_domain',
  'subject_exact',
  'subject_prefix',
  'value',
  'version',
  'kind',
  'policy_version',
  'source_type',
];

const mutationsArb = fc.array(jsonMutation(DOMAIN_STRINGS, MEMBER_NAMES), { minLength: 1, maxLength: 3 });

/**
 * Known counterexamples, replayed first on every run (fast-check `examples`): ASCII TAB/LF/CR or
 * surrounding whitespace in the signed `apis[].base_url` (found by this suite; see the report).
 */
const URL_WHITESPACE_EXAMPLES: [number, JsonMutation[]][] = [
  [0, [{ op: 'edit-member', name: 'base_url', target: 0, edits: [{ op: 'insert', at: 8, text: '\t' }] }]],
  [0, [{ op: 'edit-member', name: 'base_url', target: 0, edits: [{ op: 'append', text: '\n' }] }]],
  [0, [{ op: 'edit-member', name: 'base_url', target: 0, edits: [{ op: 'prepend', text: ' ' }] }]],
];

/** Canonical JSON, or undefined when the value has none (lone surrogate, not JSON data). */
function canonicalOrUndefined(value: unknown): string | undefined {
  try {
    return canonicalizeJson(value);
  } catch {
    return undefined;
  }
}

/** JSON values with every kind of string and number (and -0), no lone surrogates. */
const jsonData = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }),
  fc.jsonValue({ maxDepth: 2, stringUnit: 'grapheme' }),
);

/** Shuffle the members of every object (the canonical form must not depend on member order). */
function reorder(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v, i) => reorder(v, seed + i));
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value);
    const rotated =
      keys.length === 0 ? keys : [...keys.slice(seed % keys.length), ...keys.slice(0, seed % keys.length)];
    const out: Record<string, unknown> = {};
    for (const key of rotated.reverse()) {
      Object.defineProperty(out, key, {
        value: reorder((value as Record<string, unknown>)[key], seed + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

const nested = (depth: number): unknown => {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
};

describe('fuzz: JCS (RFC 8785)', () => {
  it(
    'canonicalizeJson is stable: canonical(JSON.parse(canonical(x))) === canonical(x), whatever the member order',
    () => {
      fc.assert(
        fc.property(jsonData, fc.nat(), (value, seed) => {
          const out = attempt(() => canonicalizeJson(value));
          if (!out.ok) throw out.error;
          const text = out.value;
          const reparsed: unknown = JSON.parse(text);
          expect(canonicalizeJson(reparsed)).toBe(text);
          expect(canonicalizeJson(reorder(value, seed))).toBe(text);
          // The signing input of a document is the prefix and the canonical form without `signature`.
          if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
            const input = new TextDecoder().decode(documentSigningInput(value as Record<string, unknown>));
            const { signature: _ignored, ...covered } = value as Record<string, unknown>;
            expect(input).toBe(SIGNED_DOCUMENT_PREFIX + canonicalizeJson(covered));
          }
        }),
        fuzzParams('bundle.jcs-stable'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'canonicalizeJson on anything: canonical text, or the documented TypeError/RangeError (never a stack overflow)',
    () => {
      const deep = [nested(MAX_JCS_DEPTH - 1), nested(MAX_JCS_DEPTH + 1), nested(20_000)];
      fc.assert(
        fc.property(
          fc.oneof(
            {
              weight: 9,
              arbitrary: fc.anything({
                maxDepth: 3,
                withBigInt: true,
                withBoxedValues: true,
                withDate: true,
                withMap: true,
                withSet: true,
                withNullPrototype: true,
                withObjectString: true,
                withSparseArray: true,
                withTypedArray: true,
                stringUnit: 'binary',
              }),
            },
            {
              weight: 1,
              arbitrary: fc.constantFrom<unknown>(
                ...deep,
                '\ud800',
                { '\udc00': 1 },
                [undefined],
                NaN,
                -Infinity,
              ),
            },
          ),
          (value) => {
            const out = attempt(() => canonicalizeJson(value));
            if (!out.ok) {
              const isDocumented =
                out.error instanceof TypeError ||
                (out.error instanceof RangeError && !/call stack/i.test(out.error.message));
              if (!isDocumented) throw out.error;
              return;
            }
            expect(canonicalizeJson(JSON.parse(out.value))).toBe(out.value);
          },
        ),
        fuzzParams('bundle.jcs-anything'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});

describe('fuzz: policy bundle and trust material parsing', () => {
  it('positive control: the world documents parse and load', async () => {
    expect(parsePolicyBundle(world.policyDoc)).toEqual(world.policyDoc);
    expect(parseTrustMaterial(world.trustDoc)).toEqual(world.trustDoc);
    await expect(loadPolicyBundle(world.policyDoc, { signers })).resolves.toMatchObject({ signed: true });
    await expect(loadTrustMaterial(world.trustDoc, { signers })).resolves.toMatchObject({ signed: true });
  });

  /** A parse outcome: invalid_bundle, or a document equal (canonically) to its input. */
  function expectParsed(out: Outcome<unknown>, input: unknown): boolean {
    if (!out.ok) {
      expectCodedError(out.error, INVALID);
      return false;
    }
    // No defaults or transforms: what is signed, stored and enforced is the same value.
    expect(canonicalOrUndefined(out.value)).toBe(canonicalOrUndefined(input));
    return true;
  }

  it(
    'parsePolicyBundle / parseTrustMaterial on anything: invalid_bundle, or a document equal to its input',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.anything({
              maxDepth: 3,
              withNullPrototype: true,
              withMap: true,
              withDate: true,
              withSparseArray: true,
            }),
            jsonData,
            fc.dictionary(
              fc.constantFrom('version', 'kind', 'issuers', 'apis', 'route_groups', 'trust_domain'),
              fc.jsonValue({ maxDepth: 2 }),
            ),
          ),
          (value) => {
            expectParsed(
              attempt(() => parsePolicyBundle(value)),
              value,
            );
            expectParsed(
              attempt(() => parseTrustMaterial(value)),
              value,
            );
          },
        ),
        fuzzParams('bundle.parse-anything'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'parsePolicyBundle / parseTrustMaterial on mutated documents: invalid_bundle, or a document equal to its input',
    () => {
      let accepted = 0;
      fc.assert(
        fc.property(fc.nat({ max: 1 }), mutationsArb, (pick, mutations) => {
          const { label, doc } = documents[pick]!;
          const mutated = applyJsonMutations(doc, mutations);
          const parse = label === 'policy' ? parsePolicyBundle : parseTrustMaterial;
          if (
            expectParsed(
              attempt(() => parse(mutated)),
              mutated,
            )
          )
            accepted++;
        }),
        fuzzParams('bundle.parse-mutated', { examples: URL_WHITESPACE_EXAMPLES }),
      );
      expect(accepted, 'no mutated document parsed: the property is vacuous').toBeGreaterThan(0);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'parsePolicyBundleText / parseTrustMaterialText on any text or bytes: invalid_bundle, or the document',
    () => {
      const huge = `{"version":"${'x'.repeat(MAX_DOCUMENT_BYTES)}"}`;
      const deepText = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
      fc.assert(
        fc.property(
          fc.nat({ max: 1 }),
          fc.oneof(
            { weight: 16, arbitrary: textMutations.map((edits) => ({ edits })) },
            {
              weight: 8,
              arbitrary: fc.string({ unit: interestingChar, maxLength: 40 }).map((text) => ({ text })),
            },
            { weight: 8, arbitrary: fc.uint8Array({ maxLength: 40 }).map((bytes) => ({ bytes })) },
            {
              weight: 1,
              arbitrary: fc.constantFrom(
                { text: huge },
                { text: deepText },
                { text: '' },
                { text: '\ufeff{}' },
              ),
            },
          ),
          (pick, input) => {
            const { label, doc } = documents[pick]!;
            let text: string | Uint8Array;
            if ('edits' in input)
              text = applyTextMutations(JSON.stringify(doc, null, pick === 0 ? undefined : 1), input.edits);
            else if ('bytes' in input) text = input.bytes;
            else text = input.text;
            const parse = label === 'policy' ? parsePolicyBundleText : parseTrustMaterialText;
            const out = attempt(() => parse(text));
            if (!out.ok) {
              expectCodedError(out.error, INVALID);
              return;
            }
            const source =
              typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: true }).decode(text);
            expect(canonicalOrUndefined(out.value)).toBe(canonicalOrUndefined(JSON.parse(source)));
          },
        ),
        fuzzParams('bundle.parse-text'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});

describe('fuzz: signed documents', () => {
  it(
    'verifyDocument on anything and on mutated documents: a bundle-layer refusal unless the covered bytes are unchanged',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.record({
              kind: fc.constant('mutated' as const),
              pick: fc.nat({ max: 1 }),
              mutations: mutationsArb,
            }),
            fc.record({
              kind: fc.constant('anything' as const),
              value: fc.oneof(
                fc.anything({ maxDepth: 2, withNullPrototype: true }),
                fc.record(
                  {
                    signature: fc.oneof(
                      fc.jsonValue({ maxDepth: 1 }),
                      fc.record({
                        format: fc.constantFrom('ed25519-jcs-v1', 'unsigned-skeleton', 'x'),
                        value: fc.string(),
                      }),
                    ),
                    signed_by: fc.oneof(
                      fc.jsonValue({ maxDepth: 1 }),
                      fc.record({
                        issuer: fc.string(),
                        kid: fc.constantFrom('bundle-signer-1', 'other', '__proto__'),
                        alg: fc.constantFrom('EdDSA', 'none', 'Ed25519'),
                      }),
                    ),
                    body: fc.jsonValue({ maxDepth: 2 }),
                  },
                  { requiredKeys: [] },
                ),
              ),
            }),
          ),
          fc.boolean(),
          async (c, allowUnsigned) => {
            const original = c.kind === 'mutated' ? documents[c.pick]!.doc : undefined;
            const doc = c.kind === 'mutated' ? applyJsonMutations(original, c.mutations) : c.value;
            const out = await attemptAsync(() =>
              verifyDocument(doc as Record<string, unknown>, { keys: signers, allowUnsigned }),
            );
            if (!out.ok) {
              expectCodedError(out.error, {
                reasons: ['bundle_signature_invalid', 'unsigned_bundle_rejected'],
              });
              if (!allowUnsigned || (out.error as { reason?: string }).reason !== 'unsigned_bundle_rejected')
                return;
              throw new Error('unsigned_bundle_rejected although unsigned documents are allowed');
            }
            if (!out.value.signed) {
              expect(allowUnsigned).toBe(true);
              return;
            }
            // Signed and verified: only the original document (canonically) can be.
            expect(original, 'an arbitrary document verified').toBeDefined();
            const strip = (d: unknown) => {
              const { signature: _s, ...rest } = d as Record<string, unknown>;
              return canonicalOrUndefined(rest);
            };
            expect(strip(doc), 'a document changed under its signature verified').toBe(strip(original));
          },
        ),
        fuzzParams('bundle.verify-document'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'loadPolicyBundle / loadTrustMaterial: a signed document mutated anywhere never loads with the original key',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: 1 }), mutationsArb, async (pick, mutations) => {
          const { label, doc } = documents[pick]!;
          const mutated = applyJsonMutations(doc, mutations);
          const before = canonicalOrUndefined(doc);
          fc.pre(canonicalOrUndefined(mutated) !== before);
          const load = label === 'policy' ? loadPolicyBundle : loadTrustMaterial;
          const out = await attemptAsync<unknown>(() => load(mutated, { signers }));
          expect(out.ok, 'a mutated signed document loaded').toBe(false);
          if (!out.ok) expectCodedError(out.error, BUNDLE_LAYER);
        }),
        fuzzParams('bundle.load-mutated-signed', { examples: URL_WHITESPACE_EXAMPLES }),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'loadPolicyBundle / loadTrustMaterial of mutated documents signed again: loads consistently, or invalid_bundle',
    async () => {
      let loaded = 0;
      const unsignedPart = (path: JsonPath) => path[0] === 'signature' || path[0] === 'signed_by';
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: 1 }), mutationsArb, async (pick, mutations) => {
          const { label, doc } = documents[pick]!;
          const mutated = applyJsonMutations(
            doc,
            mutations,
            (path) => path.length === 0 || unsignedPart(path),
          );
          const resigned = await attemptAsync(() =>
            signDocument(cloneJson(mutated) as object, world.bundleSigner, {
              issuer: 'https://bundles.example',
              kid: 'bundle-signer-1',
            }),
          );
          // Data with no canonical form (a lone surrogate) cannot be signed at all.
          fc.pre(resigned.ok);
          if (!resigned.ok) return;
          if (label === 'policy') {
            const out = await attemptAsync(() => loadPolicyBundle(resigned.value, { signers }));
            if (!out.ok) {
              expectCodedError(out.error, INVALID);
              return;
            }
            loaded++;
            const policy = out.value;
            for (const group of policy.document.route_groups) {
              for (const route of group.routes) {
                expect(policy.routesById.get(route.route_id)?.route).toBe(route);
                expect(policy.apisById.get(group.api_id)).toBeDefined();
              }
            }
          } else {
            const out = await attemptAsync(() => loadTrustMaterial(resigned.value, { signers }));
            if (!out.ok) {
              expectCodedError(out.error, INVALID);
              return;
            }
            loaded++;
            const trust = out.value;
            expect([...trust.issuers.keys()]).toEqual(trust.document.issuers.map((i) => i.issuer));
            for (const issuer of trust.document.issuers) {
              expect([...trust.getIssuer(issuer.issuer)!.keys.keys()]).toEqual(issuer.keys.map((k) => k.kid));
            }
          }
        }),
        fuzzParams('bundle.load-resigned', { examples: URL_WHITESPACE_EXAMPLES }),
      );
      expect(loaded, 'no re-signed document loaded: the property is vacuous').toBeGreaterThan(0);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});
