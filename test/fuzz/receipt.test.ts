import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_RECEIPT_LENGTH,
  ReceiptError,
  receiptPayloadSchema,
  signReceipt,
  verifyReceipt,
  type ReceiptPayload,
  type ReceiptTrust,
  type ReceiptVerifyKey,
  type VerifiedReceipt,
} from '../../pkg/audit/index.js';
import { generateSigningKey, type SigningKey } from '../../pkg/authcore/index.js';
import { encodeBase64Url } from '../../pkg/internal/base64url.js';
import {
  attemptAsync,
  expectCodedError,
  fuzzParams,
  FUZZ_TEST_TIMEOUT_MS,
  type Outcome,
} from './fuzz-config.js';
import {
  applyJsonMutations,
  applyJwsMutations,
  encodeJsonSegment,
  interestingChar,
  jsonMutation,
  jwsHeader,
  jwsMutations,
} from './mutations.js';

/*
 * Fuzz of receipt verification (`verifyReceipt`). Every refusal is a ReceiptError with a
 * registered `receipt` reason; a mutated receipt never verifies; a correctly signed receipt
 * verifies exactly when its header, key, signing window and adapter say it must.
 */

const RECEIPT_LAYER = { layers: ['receipt'], ctor: ReceiptError } as const;
const NOW = 1_767_225_600;
const TYP = 'trustplane-receipt-v1';

let edgeKey: SigningKey;
let anyKey: SigningKey;
let stranger: SigningKey;
let trust: ReceiptTrust;
let validReceipts: string[];

/** Receipt keys: `edge-1` (adapter edge-1, window NOW±1000) and `any-1` (no adapter, no window). */
let keys: Map<string, ReceiptVerifyKey & { signer: SigningKey }>;

function payload(overrides: Partial<ReceiptPayload> = {}): ReceiptPayload {
  return {
    v: TYP,
    adapter: 'edge-1',
    iat: NOW,
    request: {
      transcript_sha256: 'a'.repeat(64),
      method: 'GET',
      authority: 'orders.example',
      path: '/v1/orders/search',
      route_id: 'orders.search',
    },
    identity: {
      iss: 'https://issuer.example/software-jwks',
      sub: 'service:orders-client',
      aud: 'orders-api',
      jti: 'jti-1',
      trust_domain: 'example.local',
      key_binding: 'software',
    },
    decision: 'allow',
    response: { status: 200, body_sha256: 'b'.repeat(64) },
    ...overrides,
  };
}

beforeAll(async () => {
  [edgeKey, anyKey, stranger] = await Promise.all([
    generateSigningKey(),
    generateSigningKey(),
    generateSigningKey(),
  ]);
  keys = new Map([
    [
      'edge-1',
      {
        kid: 'edge-1',
        key: edgeKey.publicKey,
        adapter: 'edge-1',
        nbf: NOW - 1000,
        exp: NOW + 1000,
        signer: edgeKey,
      },
    ],
    ['any-1', { kid: 'any-1', key: anyKey.publicKey, signer: anyKey }],
  ]);
  trust = { receiptKeys: keys };
  validReceipts = await Promise.all([
    signReceipt(payload(), edgeKey, 'edge-1'),
    signReceipt(payload({ decision: 'deny', reason: 'jti_replay', policy_version: 'v7' }), edgeKey, 'edge-1'),
    signReceipt(payload({ adapter: 'edge-2', iat: 0 }), anyKey, 'any-1'),
  ]);
});

const KIDS = ['edge-1', 'any-1', 'missing', '', '__proto__', 'constructor', 'x'.repeat(257)];
const PAYLOAD_MEMBERS = [
  'v',
  'adapter',
  'iat',
  'request',
  'identity',
  'decision',
  'reason',
  'response',
  'policy_version',
];
const DOMAIN_STRINGS = [
  TYP,
  'edge-1',
  'edge-2',
  'allow',
  'deny',
  'jti_replay',
  'GET',
  'software',
  'example.local',
  'Example.local',
];

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Whether trustplane-receipt-v1 accepts this header and payload signed by `signer` (expected adapter optional). */
function referenceAccepts(
  token: string,
  header: unknown,
  body: unknown,
  signer: SigningKey,
  expectAdapter: string | undefined,
): boolean {
  if (token.length > MAX_RECEIPT_LENGTH || !isRecord(header)) return false;
  const names = Object.keys(header).sort().join(',');
  if (names !== 'alg,kid,typ') return false;
  if (header.alg !== 'EdDSA' && header.alg !== 'Ed25519') return false;
  if (header.typ !== TYP || typeof header.kid !== 'string') return false;
  const entry = keys.get(header.kid);
  if (!entry || entry.signer !== signer) return false;
  // The payload schema is the contract's machine form (exported); the rest is checked here.
  const parsed = receiptPayloadSchema.safeParse(body);
  if (!parsed.success) return false;
  const { iat, adapter } = parsed.data;
  if ((entry.nbf !== undefined && iat < entry.nbf) || (entry.exp !== undefined && iat >= entry.exp))
    return false;
  if (entry.adapter !== undefined && entry.adapter !== adapter) return false;
  return expectAdapter === undefined || expectAdapter === adapter;
}

function signJws(header: unknown, body: unknown, key: SigningKey): Promise<string> {
  const input = `${encodeJsonSegment(header)}.${encodeJsonSegment(body)}`;
  return key.sign(new TextEncoder().encode(input)).then((sig) => `${input}.${encodeBase64Url(sig)}`);
}

const verify = (receipt: unknown, expectAdapter?: string) =>
  verifyReceipt(receipt, trust, expectAdapter === undefined ? {} : { expectAdapter });

describe('fuzz: receipts', () => {
  it('positive control: every valid receipt of the corpus verifies', async () => {
    for (const receipt of validReceipts)
      await expect(verify(receipt)).resolves.toMatchObject({ header: { typ: TYP } });
  });

  it(
    'arbitrary strings and JWS-shaped tokens with a forged signature: ReceiptError, never verified',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.string({ maxLength: 64 }),
            fc.string({ unit: interestingChar, maxLength: 64 }),
            fc.anything({ maxDepth: 1 }),
            fc
              .tuple(
                fc.oneof(jwsHeader(KIDS), fc.jsonValue({ maxDepth: 2 })),
                fc.oneof(fc.constant(payload()), fc.jsonValue({ maxDepth: 2 })),
                fc.uint8Array({ maxLength: 70 }),
              )
              .map(([h, p, s]) => `${encodeJsonSegment(h)}.${encodeJsonSegment(p)}.${encodeBase64Url(s)}`),
            fc.constantFrom('', '..', 'a.b.c', `${'A'.repeat(MAX_RECEIPT_LENGTH)}.A.A`),
          ),
          async (receipt) => {
            const out = await attemptAsync(() => verify(receipt));
            expect(out.ok, 'an arbitrary receipt verified').toBe(false);
            if (!out.ok) expectCodedError(out.error, RECEIPT_LAYER);
          },
        ),
        fuzzParams('receipt.arbitrary'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'a mutated valid receipt never verifies (segment edits, swaps, header/payload changes, S+L, non-canonical base64url)',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.nat({ max: 1_000 }),
          jwsMutations({ claims: PAYLOAD_MEMBERS, kids: KIDS, claimValues: DOMAIN_STRINGS }),
          async (pick, mutations) => {
            const original = validReceipts[pick % validReceipts.length]!;
            const receipt = applyJwsMutations(original, mutations);
            fc.pre(receipt !== original);
            const out = await attemptAsync(() => verify(receipt));
            expect(out.ok, 'a mutated receipt verified').toBe(false);
            if (!out.ok) expectCodedError(out.error, RECEIPT_LAYER);
          },
        ),
        fuzzParams('receipt.mutated'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'correctly signed receipts with perturbed header and payload verify exactly when trustplane-receipt-v1 says so',
    async () => {
      let accepted = 0;
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.record({
            kid: fc.constantFrom('edge-1', 'any-1'),
            header: fc.option(jwsHeader(KIDS), { nil: undefined, freq: 3 }),
            signer: fc.constantFrom('own', 'own', 'own', 'edge', 'any', 'stranger'),
            iat: fc.constantFrom(NOW, NOW - 1000, NOW - 1001, NOW + 999, NOW + 1000, 0),
            mutations: fc.array(
              jsonMutation(DOMAIN_STRINGS, [
                'adapter',
                'v',
                'reason',
                'method',
                'path',
                'route_id',
                'trust_domain',
              ]),
              {
                maxLength: 2,
              },
            ),
            expectAdapter: fc.constantFrom(undefined, undefined, 'edge-1', 'edge-2'),
          }),
          async (c) => {
            const entry = keys.get(c.kid)!;
            const signer =
              c.signer === 'own'
                ? entry.signer
                : c.signer === 'edge'
                  ? edgeKey
                  : c.signer === 'any'
                    ? anyKey
                    : stranger;
            const header = c.header ?? { alg: 'EdDSA', kid: c.kid, typ: TYP };
            const body = applyJsonMutations(
              payload({ iat: c.iat }),
              c.mutations,
              (path) => path.length === 0,
            );
            const receipt = await signJws(header, body, signer);
            const seenHeader: unknown = JSON.parse(JSON.stringify(header));
            const seenBody: unknown = JSON.parse(JSON.stringify(body));
            const expected = referenceAccepts(receipt, seenHeader, seenBody, signer, c.expectAdapter);
            const out: Outcome<VerifiedReceipt> = await attemptAsync(() => verify(receipt, c.expectAdapter));
            if (out.ok) {
              accepted++;
              expect(expected, 'verified a receipt the contract refuses').toBe(true);
              expect(out.value.payload).toEqual(seenBody);
              expect(out.value.key.kid).toBe((seenHeader as { kid: string }).kid);
            } else {
              refused++;
              expectCodedError(out.error, RECEIPT_LAYER);
              expect(expected, 'refused a receipt the contract accepts').toBe(false);
            }
          },
        ),
        fuzzParams('receipt.signed-payloads'),
      );
      expect(accepted).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});
