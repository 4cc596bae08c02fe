import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { passportClaimsSchema, passportCnfSchema } from '../../pkg/authcore/claims.js';
import { checkPassportClaims, checkPassportCnf } from '../../pkg/authcore/claims-check.js';
import { KEY_BINDINGS } from '../../pkg/authcore/signer-taxonomy.js';

// The hand-written claim checks of the verifier's hot path must accept exactly what the zod
// schemas (the source of truth) accept, with equal output. Inputs are JSON values, as a decoded
// passport payload is: valid claims, then every member replaced by values around each bound.

const X = 'A'.repeat(43);
const valid = {
  iss: 'https://issuer.example',
  sub: 'spiffe://example.local/ns/orders/sa/worker',
  aud: 'orders-api',
  iat: 1_767_225_600,
  exp: 1_767_225_900,
  jti: 'jti-1',
  trust_domain: 'example.local',
  cnf: { kid: 'request-key', key_binding: 'software', public_key_b64url: X },
};

const strings = (max: number) => ['', 'a', 'é', '\u{1F600}', 'x'.repeat(max), 'x'.repeat(max + 1)];
const numbers = [0, -0, 1, -1, 1.5, 1e21, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 2 ** 60];
const others = [null, true, false, [], {}, ['orders-api'], ['orders-api', 'x'], [''], [1], { a: 1 }];

/** Values a member may be replaced with: bounds of each kind, and the other JSON kinds. */
const memberValue = fc.oneof(
  fc.constantFrom(...strings(64), ...strings(255), ...strings(256), ...strings(2048)),
  fc.constantFrom(...numbers),
  fc.constantFrom(...others),
  fc.constantFrom(...KEY_BINDINGS, 'Software', X, X.slice(1)),
  fc.jsonValue({ maxDepth: 2 }),
);
const contextKeys = [
  'actor_type',
  'purpose',
  'tool_name',
  'workflow_id',
  'max_txn_value',
  'other',
  '__proto__',
];
const provenanceKeys = ['profile', 'posture', 'spiffe_id', 'signer', 'peer', 'extra'];
const strictObject = (keys: string[]) => fc.dictionary(fc.constantFrom(...keys), memberValue, { maxKeys: 4 });
const claimKeys = [...Object.keys(valid), 'nbf', 'ctx', 'provenance', 'unknown_claim'];

const payload = fc
  .record({
    edits: fc.array(
      fc.tuple(
        fc.constantFrom(...claimKeys),
        fc.oneof(
          memberValue,
          strictObject(contextKeys),
          strictObject(provenanceKeys),
          fc.constant(undefined),
        ),
      ),
      { maxLength: 3 },
    ),
  })
  .map(({ edits }) => {
    const p: Record<string, unknown> = { ...valid };
    for (const [k, v] of edits) {
      if (v === undefined) delete p[k];
      else p[k] = v;
    }
    // Through JSON, as a decoded passport payload is.
    return JSON.parse(JSON.stringify(p)) as unknown;
  });

function zodClaims(x: unknown) {
  const r = passportClaimsSchema.safeParse(x);
  return r.success ? r.data : undefined;
}
function zodCnf(x: unknown) {
  const r = passportCnfSchema.safeParse(x);
  return r.success ? r.data : undefined;
}

describe('hand-written passport claim checks agree with the zod schemas', () => {
  it('valid claims pass both, with equal output', () => {
    expect(checkPassportClaims(valid)).toEqual(zodClaims(valid));
    expect(checkPassportClaims(valid)).toBeDefined();
    expect(checkPassportCnf(valid.cnf)).toEqual(zodCnf(valid.cnf));
  });

  it('claims: 20,000 generated payloads, the same verdict and output', () => {
    let accepted = 0;
    fc.assert(
      fc.property(payload, (p) => {
        const expected = zodClaims(p);
        const actual = checkPassportClaims(p);
        expect(actual).toEqual(expected);
        if (expected !== undefined) accepted++;
      }),
      { numRuns: 20_000, seed: 1806 },
    );
    // Both verdicts are exercised.
    expect(accepted).toBeGreaterThan(1_000);
    expect(accepted).toBeLessThan(19_000);
  });

  it('cnf: 20,000 generated values, the same verdict and output', () => {
    const cnfKeys = ['kid', 'key_binding', 'public_key_b64url', 'x', 'kty'];
    const cnf = fc
      .record({
        base: fc.boolean(),
        edits: fc.dictionary(fc.constantFrom(...cnfKeys), memberValue, { maxKeys: 3 }),
        drop: fc.option(fc.constantFrom('kid', 'key_binding', 'public_key_b64url'), { freq: 10 }),
      })
      .map(({ base, edits, drop }) => {
        const c: Record<string, unknown> = base ? { ...valid.cnf, ...edits } : { ...edits };
        if (drop !== null) delete c[drop];
        return JSON.parse(JSON.stringify(c)) as unknown;
      });
    let accepted = 0;
    fc.assert(
      fc.property(fc.oneof(cnf, memberValue), (c) => {
        const expected = zodCnf(c);
        expect(checkPassportCnf(c)).toEqual(expected);
        if (expected !== undefined) accepted++;
      }),
      { numRuns: 20_000, seed: 1807 },
    );
    expect(accepted).toBeGreaterThan(50);
  });

  it('refuses what zod refuses, case by case', () => {
    const cases: unknown[] = [
      null,
      [],
      'x',
      { ...valid, iat: -1 },
      { ...valid, iat: 1.5 },
      { ...valid, exp: Number.MAX_SAFE_INTEGER + 1 },
      { ...valid, aud: [] },
      { ...valid, aud: ['a', 'b'] },
      { ...valid, jti: '' },
      { ...valid, trust_domain: 'x'.repeat(256) },
      { ...valid, ctx: { purpose: 'x', other: 'y' } },
      { ...valid, ctx: { max_txn_value: 'x'.repeat(65) } },
      { ...valid, provenance: [] },
      JSON.parse(
        '{"iss":"a","sub":"b","aud":"c","iat":1,"exp":2,"jti":"j","trust_domain":"t","ctx":{"__proto__":"x"}}',
      ),
    ];
    for (const c of cases) {
      expect(zodClaims(c), JSON.stringify(c)).toBeUndefined();
      expect(checkPassportClaims(c), JSON.stringify(c)).toBeUndefined();
    }
    for (const c of [
      { ...valid.cnf, x: 1 },
      { ...valid.cnf, key_binding: 'root' },
      { ...valid.cnf, public_key_b64url: X + 'A' },
    ]) {
      expect(zodCnf(c)).toBeUndefined();
      expect(checkPassportCnf(c)).toBeUndefined();
    }
  });
});
