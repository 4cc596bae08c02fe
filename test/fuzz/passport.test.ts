import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  decodePassportUnverified,
  generateSigningKey,
  KEY_BINDINGS,
  MAX_PASSPORT_LENGTH,
  PASSPORT_ALGORITHMS,
  verifyPassport,
  type SigningKey,
  type VerifiedPassport,
} from '../../pkg/authcore/index.js';
import { encodeBase64Url } from '../../pkg/internal/base64url.js';
import {
  BROKER_ISSUER,
  createWorld,
  NOW,
  OTHER_ISSUER,
  SOFTWARE_ISSUER,
  TRUST_DOMAIN,
  UNLISTED_ISSUER,
  type World,
} from '../helpers/fixture.js';
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
  applyJwsMutations,
  cloneJson,
  confusingValue,
  encodeJsonSegment,
  interestingChar,
  jsonMutation,
  jwsHeader,
  jwsMutations,
  setMember,
  type JsonMutation,
} from './mutations.js';

/*
 * Fuzz of the passport parsers: `decodePassportUnverified` and `verifyPassport`.
 * No crash: every refusal is a TrustplaneError with a registered passport-layer reason.
 * No wrong accept: a token is accepted only when a reference model of passport-v1 (written from
 * docs/contracts.md, independently of the code) says it must be, and a mutated token never is.
 */

const AUDIENCE = 'orders-api';
const PASSPORT_LAYER = ['passport'] as const;
const DECODE_REASONS = ['malformed_passport', 'unsupported_algorithm'];

let world: World;
let stranger: SigningKey;
/** Valid tokens of several shapes (alias alg, array aud, ctx/provenance, nbf, another issuer). */
let validTokens: string[];

/** The issuer keys of the fuzz world: issuer, trust domain, kid, signing key. */
let registered: { iss: string; trustDomain: string; kid: string; key: SigningKey }[];

const KIDS = [
  'caller-1',
  'broker-1',
  'other-1',
  'unlisted-1',
  'missing-1',
  '',
  'x'.repeat(257),
  '__proto__',
  'constructor',
];
const ISSUERS = [
  SOFTWARE_ISSUER,
  BROKER_ISSUER,
  OTHER_ISSUER,
  UNLISTED_ISSUER,
  'https://stranger.example',
  '__proto__',
];
const CLAIM_NAMES = [
  'iss',
  'sub',
  'aud',
  'iat',
  'exp',
  'nbf',
  'jti',
  'trust_domain',
  'cnf',
  'ctx',
  'provenance',
];
const CLAIM_STRINGS = [
  ...ISSUERS,
  AUDIENCE,
  TRUST_DOMAIN,
  'other.local',
  'orders-api ',
  'ORDERS-API',
  'software',
];

function signJws(header: unknown, payload: unknown, key: SigningKey): Promise<string> {
  const signingInput = `${encodeJsonSegment(header)}.${encodeJsonSegment(payload)}`;
  return key
    .sign(new TextEncoder().encode(signingInput))
    .then((sig) => `${signingInput}.${encodeBase64Url(sig)}`);
}

function baseClaims(key: SigningKey): Record<string, unknown> {
  return {
    iss: SOFTWARE_ISSUER,
    sub: 'service:orders-client',
    aud: AUDIENCE,
    iat: NOW,
    exp: NOW + 300,
    jti: `jti-${crypto.randomUUID()}`,
    trust_domain: TRUST_DOMAIN,
    cnf: { kid: 'request-key', key_binding: 'software', public_key_b64url: key.publicKey.x },
  };
}

beforeAll(async () => {
  world = await createWorld();
  stranger = await generateSigningKey();
  registered = [
    { iss: SOFTWARE_ISSUER, trustDomain: TRUST_DOMAIN, kid: 'caller-1', key: world.caller },
    { iss: BROKER_ISSUER, trustDomain: TRUST_DOMAIN, kid: 'broker-1', key: world.broker },
    { iss: OTHER_ISSUER, trustDomain: 'other.local', kid: 'other-1', key: world.other },
    { iss: UNLISTED_ISSUER, trustDomain: TRUST_DOMAIN, kid: 'unlisted-1', key: world.unlisted },
  ];
  const claims = baseClaims(world.caller);
  validTokens = await Promise.all([
    signJws({ alg: 'EdDSA', kid: 'caller-1', typ: 'JWT' }, claims, world.caller),
    signJws({ alg: 'Ed25519', kid: 'caller-1' }, { ...claims, aud: [AUDIENCE], nbf: NOW - 10 }, world.caller),
    signJws(
      { kid: 'caller-1', alg: 'EdDSA' },
      {
        ...claims,
        ctx: { purpose: 'refund', max_txn_value: '12.50' },
        provenance: { signer: 'software', spiffe_id: 'spiffe://example.local/a' },
        extra_claim: { ignored: [1, 2, 3] },
      },
      world.caller,
    ),
    signJws(
      { alg: 'EdDSA', kid: 'other-1', typ: 'JWT' },
      { ...claims, iss: OTHER_ISSUER, trust_domain: 'other.local', iat: NOW - 500, exp: NOW + 100 },
      world.other,
    ),
  ]);
});

const verify = (token: unknown) =>
  verifyPassport(token, { issuers: world.trust, audience: AUDIENCE, now: NOW });

// ---------------------------------------------------------------------------------------------
// A reference model of passport-v1 acceptance (docs/contracts.md), for the "no wrong accept" check.

const SKEW = 30;
const MAX_LIFETIME = 600;
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const boundedString = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length >= 1 && v.length <= max;
const numericDate = (v: unknown): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;
const CANONICAL_X = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/** p = 2^255 - 19, and the y coordinates of the 8 points of small order (RFC 7748, "Taming the many EdDSAs"). */
const FIELD_P = 2n ** 255n - 19n;
const SMALL_ORDER_Y = new Set([
  0n,
  1n,
  FIELD_P - 1n,
  0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n,
  0x7a03ac9277fdc74ec6cc392cfa53202a0f67100d760b3cba4fd84d3d706a17c7n,
]);

/**
 * A cnf key the contract refuses: not canonical unpadded base64url of 32 bytes, a non-canonical
 * point encoding (y >= p), or a point of small order (forgeable under cofactorless verification).
 */
function isRefusedCnfKey(x: unknown): boolean {
  if (typeof x !== 'string' || !CANONICAL_X.test(x)) return true;
  const raw = Buffer.from(x, 'base64url');
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? raw[i]! & 0x7f : raw[i]!);
  return y >= FIELD_P || SMALL_ORDER_Y.has(y);
}

function strictStrings(v: unknown, bounds: Readonly<Record<string, number>>): boolean {
  if (!isRecord(v)) return false;
  return Object.keys(v).every((k) => Object.hasOwn(bounds, k) && boundedString(v[k], bounds[k]!));
}

/**
 * Whether passport-v1 (as docs/contracts.md states it) accepts a token with this header and payload,
 * signed by `signer`, at NOW for AUDIENCE. Written from the contract, not from the code.
 */
function referenceAccepts(token: string, header: unknown, payload: unknown, signer: SigningKey): boolean {
  if (token.length > MAX_PASSPORT_LENGTH) return false;
  if (!isRecord(header) || !isRecord(payload)) return false;
  if (!Object.keys(header).every((k) => k === 'alg' || k === 'kid' || k === 'typ')) return false;
  if (header.alg !== 'EdDSA' && header.alg !== 'Ed25519') return false;
  if (!boundedString(header.kid, 256)) return false;
  if (Object.hasOwn(header, 'typ') && header.typ !== 'JWT') return false;
  const p = payload;
  if (!boundedString(p.iss, 2048) || !boundedString(p.sub, 2048) || !boundedString(p.jti, 256)) return false;
  if (!boundedString(p.trust_domain, 255)) return false;
  const aud = Array.isArray(p.aud) && p.aud.length === 1 ? p.aud[0] : p.aud;
  if (!boundedString(aud, 2048)) return false;
  if (!numericDate(p.iat) || !numericDate(p.exp)) return false;
  if (Object.hasOwn(p, 'nbf') && !numericDate(p.nbf)) return false;
  const ctxBounds = { actor_type: 256, purpose: 256, tool_name: 256, workflow_id: 256, max_txn_value: 64 };
  if (Object.hasOwn(p, 'ctx') && !strictStrings(p.ctx, ctxBounds)) return false;
  const provenanceBounds = { profile: 256, posture: 256, spiffe_id: 2048, signer: 256, peer: 2048 };
  if (Object.hasOwn(p, 'provenance') && !strictStrings(p.provenance, provenanceBounds)) return false;
  const entry = registered.find((r) => r.iss === p.iss && r.kid === header.kid);
  if (!entry || entry.key !== signer) return false;
  if (p.exp <= p.iat || p.exp - p.iat > MAX_LIFETIME) return false;
  if (p.iat > NOW + SKEW) return false;
  if (typeof p.nbf === 'number' && p.nbf > NOW + SKEW) return false;
  if (p.exp <= NOW - SKEW) return false;
  if (aud !== AUDIENCE) return false;
  if (p.trust_domain !== entry.trustDomain) return false;
  const cnf = p.cnf;
  if (
    !isRecord(cnf) ||
    !Object.keys(cnf).every((k) => ['kid', 'key_binding', 'public_key_b64url'].includes(k))
  ) {
    return false;
  }
  if (!boundedString(cnf.kid, 256) || !(KEY_BINDINGS as readonly unknown[]).includes(cnf.key_binding))
    return false;
  return !isRefusedCnfKey(cnf.public_key_b64url);
}

/** The verified claims agree with the signed payload. */
function expectFaithful(verified: VerifiedPassport, payload: Record<string, unknown>): void {
  expect(verified.claims.iss).toBe(payload.iss);
  expect(verified.claims.sub).toBe(payload.sub);
  expect(verified.claims.jti).toBe(payload.jti);
  expect(verified.claims.aud).toBe(AUDIENCE);
  expect(verified.claims.exp).toBe(payload.exp);
  expect(verified.issuer.issuer).toBe(payload.iss);
  expect(verified.cnfKey.x).toBe((payload.cnf as Record<string, unknown>).public_key_b64url);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Strings of every kind, most of them shaped like compact JWS. */
const tokenLike: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ unit: interestingChar, maxLength: 64 }),
  fc
    .array(fc.stringMatching(/^[A-Za-z0-9_-]{0,90}$/), { minLength: 1, maxLength: 5 })
    .map((parts) => parts.join('.')),
  fc
    .tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 }), fc.uint8Array({ maxLength: 70 }))
    .map(([h, p, s]) => `${encodeJsonSegment(h)}.${encodeJsonSegment(p)}.${encodeBase64Url(s)}`),
  fc.constantFrom(
    '',
    '.',
    '..',
    '...',
    'a.b.c',
    'eyJ.eyJ.',
    `${'A'.repeat(MAX_PASSPORT_LENGTH)}.A.A`,
    'Bearer x.y.z',
  ),
);

/** A perturbation of the claims that matter: times near every bound, audience, trust domain, cnf, types. */
type ClaimPerturbation =
  | { readonly kind: 'time'; readonly name: string; readonly delta: number }
  | { readonly kind: 'set'; readonly name: string; readonly value: unknown }
  | { readonly kind: 'delete'; readonly name: string }
  | { readonly kind: 'json'; readonly mutations: readonly JsonMutation[] };

const CNF_VARIANTS: readonly unknown[] = [
  null,
  'cnf',
  {},
  { kid: 'k', key_binding: 'software' },
  { kid: 'k', key_binding: 'platinum', public_key_b64url: 'A'.repeat(43) },
  { kid: 'k', key_binding: 'hardware_local', public_key_b64url: 'A'.repeat(43) },
  { kid: 'k', key_binding: 'software', public_key_b64url: `${'A'.repeat(42)}B` },
  { kid: 'k', key_binding: 'software', public_key_b64url: 'A'.repeat(44) },
  { kid: 'k', key_binding: 'software', public_key_b64url: 'A'.repeat(43), extra: 1 },
  { kid: '', key_binding: 'software', public_key_b64url: 'A'.repeat(43) },
  { kid: 'k', key_binding: 'attested_workload', public_key_b64url: `${'_'.repeat(42)}w` },
  // The identity point, an order-8 point, y = p (non-canonical zero), and an ordinary point.
  { kid: 'k', key_binding: 'software', public_key_b64url: 'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
  { kid: 'k', key_binding: 'software', public_key_b64url: 'JuiVj8KyJ7BFw_SJ8u-Y8NXfrAXTxjM5sTgCiG1T_AU' },
  { kid: 'k', key_binding: 'software', public_key_b64url: '7f_______________________________________38' },
  { kid: 'k', key_binding: 'software', public_key_b64url: 'O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik' },
];

const claimPerturbation: fc.Arbitrary<ClaimPerturbation> = fc.oneof(
  fc.record({
    kind: fc.constant('time' as const),
    name: fc.constantFrom('iat', 'exp', 'nbf'),
    delta: fc.constantFrom(
      -700,
      -601,
      -600,
      -331,
      -330,
      -31,
      -30,
      -29,
      -1,
      0,
      1,
      29,
      30,
      31,
      299,
      300,
      301,
      599,
      600,
      601,
      630,
      631,
    ),
  }),
  fc.record({
    kind: fc.constant('set' as const),
    name: fc.constant('aud'),
    value: fc.constantFrom<unknown>(
      AUDIENCE,
      [AUDIENCE],
      [AUDIENCE, AUDIENCE],
      [],
      'orders',
      'ORDERS-API',
      [[AUDIENCE]],
      null,
    ),
  }),
  fc.record({
    kind: fc.constant('set' as const),
    name: fc.constant('trust_domain'),
    value: fc.constantFrom<unknown>(TRUST_DOMAIN, 'other.local', 'Example.local', '', 'example.local.'),
  }),
  fc.record({
    kind: fc.constant('set' as const),
    name: fc.constant('cnf'),
    value: fc.constantFrom(...CNF_VARIANTS),
  }),
  fc.record({
    kind: fc.constant('set' as const),
    name: fc.constantFrom(...CLAIM_NAMES, 'unknown_claim'),
    value: confusingValue(CLAIM_STRINGS),
  }),
  fc.record({ kind: fc.constant('delete' as const), name: fc.constantFrom(...CLAIM_NAMES) }),
  fc.record({
    kind: fc.constant('json' as const),
    mutations: fc.array(jsonMutation(CLAIM_STRINGS), { minLength: 1, maxLength: 2 }),
  }),
);

/** Apply perturbations to a copy of the claims (the root stays an object). */
function perturb(claims: Record<string, unknown>, ps: readonly ClaimPerturbation[]): unknown {
  let out: unknown = cloneJson(claims);
  for (const p of ps) {
    if (p.kind === 'json') {
      out = applyJsonMutations(out, p.mutations, (path) => path.length === 0);
      continue;
    }
    if (!isRecord(out)) continue;
    if (p.kind === 'time') out[p.name] = NOW + p.delta;
    else if (p.kind === 'set') setMember(out, p.name, cloneJson(p.value));
    else delete out[p.name];
  }
  return out;
}

/** A header, a payload and a signer: usually right, often perturbed, sometimes the wrong key. */
const signedCase = fc.record({
  header: fc.oneof(
    { weight: 2, arbitrary: fc.constant<Record<string, unknown> | undefined>(undefined) },
    { weight: 1, arbitrary: jwsHeader(KIDS) },
  ),
  issuer: fc.nat({ max: 3 }),
  signer: fc.oneof({ weight: 4, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat({ max: 4 }) }),
  perturbations: fc.array(claimPerturbation, { maxLength: 3 }),
  ctx: fc.option(
    fc.record(
      {
        purpose: fc.string({ minLength: 1, maxLength: 4 }),
        max_txn_value: fc.constantFrom('1', '0.5', 'x'.repeat(65)),
      },
      { requiredKeys: [] },
    ),
  ),
});

// ---------------------------------------------------------------------------------------------

describe('fuzz: passports', () => {
  it('positive control: every valid token of the corpus verifies and decodes', async () => {
    for (const token of validTokens) {
      await expect(verify(token)).resolves.toMatchObject({ claims: { aud: AUDIENCE } });
      expect(PASSPORT_ALGORITHMS.has(decodePassportUnverified(token).header.alg)).toBe(true);
    }
  });

  it(
    'decodePassportUnverified: arbitrary strings decode consistently or throw malformed_passport/unsupported_algorithm',
    () => {
      fc.assert(
        fc.property(fc.oneof(tokenLike, fc.constantFrom(...validTokens)), (token) => {
          const out = attempt(() => decodePassportUnverified(token));
          if (!out.ok) {
            expectCodedError(out.error, { reasons: DECODE_REASONS });
            return;
          }
          const { header, payload, signingInput, signature } = out.value;
          expect(token.length).toBeLessThanOrEqual(MAX_PASSPORT_LENGTH);
          expect(PASSPORT_ALGORITHMS.has(header.alg)).toBe(true);
          expect(Object.keys(header).every((k) => ['alg', 'kid', 'typ'].includes(k))).toBe(true);
          expect(header.kid.length).toBeGreaterThan(0);
          expect([undefined, 'JWT']).toContain(header.typ);
          expect(isRecord(payload)).toBe(true);
          expect(signature).toHaveLength(64);
          // One accepted encoding per value: the signature segment is the canonical one.
          expect(`${signingInput}.${encodeBase64Url(signature)}`).toBe(token);
        }),
        fuzzParams('passport.decode-arbitrary'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'verifyPassport: arbitrary strings are refused with a passport-layer reason',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(tokenLike, fc.anything({ maxDepth: 1 })), async (token) => {
          const out = await attemptAsync(() => verify(token));
          expect(out.ok).toBe(false);
          if (!out.ok) expectCodedError(out.error, { layers: PASSPORT_LAYER });
        }),
        fuzzParams('passport.verify-arbitrary'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'verifyPassport: JWS-shaped tokens with any header and claims and a forged signature are refused',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          jwsHeader(KIDS),
          fc.array(claimPerturbation, { maxLength: 3 }),
          fc.oneof(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.uint8Array({ maxLength: 80 })),
          async (header, perturbations, signature) => {
            const claims = perturb(baseClaims(world.caller), perturbations);
            const token = `${encodeJsonSegment(header)}.${encodeJsonSegment(claims)}.${encodeBase64Url(signature)}`;
            const out = await attemptAsync(() => verify(token));
            expect(out.ok).toBe(false);
            if (!out.ok) expectCodedError(out.error, { layers: PASSPORT_LAYER });
          },
        ),
        fuzzParams('passport.verify-jws-shaped'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'verifyPassport: correctly signed tokens with perturbed claims are accepted exactly when passport-v1 says so',
    async () => {
      let accepted = 0;
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(signedCase, async (c) => {
          const entry = registered[c.issuer]!;
          const claims: Record<string, unknown> = {
            ...baseClaims(world.caller),
            iss: entry.iss,
            trust_domain: entry.trustDomain,
          };
          if (c.ctx) claims.ctx = c.ctx;
          const payload = perturb(claims, c.perturbations);
          const header = c.header ?? { alg: 'EdDSA', kid: entry.kid, typ: 'JWT' };
          const signer = c.signer < 0 ? entry.key : [...registered.map((r) => r.key), stranger][c.signer]!;
          const token = await signJws(header, payload, signer);
          // The verifier sees the JSON text: compare against what a JSON round trip gives.
          const seenHeader: unknown = JSON.parse(JSON.stringify(header));
          const seenClaims: unknown = JSON.parse(JSON.stringify(payload));
          const expected = referenceAccepts(token, seenHeader, seenClaims, signer);
          const out: Outcome<VerifiedPassport> = await attemptAsync(() => verify(token));
          if (out.ok) {
            accepted++;
            expect(expected, 'accepted a token passport-v1 refuses').toBe(true);
            expectFaithful(out.value, seenClaims as Record<string, unknown>);
          } else {
            refused++;
            expectCodedError(out.error, { layers: PASSPORT_LAYER });
            expect(expected, 'refused a token passport-v1 accepts').toBe(false);
          }
        }),
        fuzzParams('passport.verify-signed-claims'),
      );
      // Not vacuous: both outcomes were exercised.
      expect(accepted).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'verifyPassport: a mutated valid token is never accepted (segment edits, swaps, header/claim changes, S+L, non-canonical base64url)',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.nat({ max: 1_000 }),
          jwsMutations({ claims: CLAIM_NAMES, kids: KIDS, claimValues: CLAIM_STRINGS }),
          async (pick, mutations) => {
            const original = validTokens[pick % validTokens.length]!;
            const token = applyJwsMutations(original, mutations);
            fc.pre(token !== original);
            const decoded = attempt(() => decodePassportUnverified(token));
            if (!decoded.ok) expectCodedError(decoded.error, { reasons: DECODE_REASONS });
            const out = await attemptAsync(() => verify(token));
            expect(out.ok, 'a mutated passport was accepted').toBe(false);
            if (!out.ok) expectCodedError(out.error, { layers: PASSPORT_LAYER });
          },
        ),
        fuzzParams('passport.verify-mutated'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});
