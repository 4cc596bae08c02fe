import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MAX_RECEIPT_LENGTH,
  RECEIPT_ERROR_CODES,
  RECEIPT_VERSION,
  ReceiptError,
  receiptPayloadSchema,
  responseBodyDigest,
  signReceipt,
  verifyReceipt,
  type ReceiptErrorCode,
  type ReceiptPayload,
  type ReceiptTrust,
  type ReceiptVerifyKey,
} from '../../pkg/audit/index.js';
import { issuePassport } from '../../pkg/authcore/issue-passport.js';
import { generateSigningKey, type SigningKey } from '../../pkg/authcore/signing-key.js';
import { verifyPassport } from '../../pkg/authcore/verify-passport.js';
import {
  loadTrustMaterial,
  parseTrustMaterial,
  signDocument,
  type TrustMaterial,
} from '../../pkg/bundle/index.js';
import { encodeBase64Url } from '../../pkg/internal/base64url.js';
import { utf8 } from '../../pkg/internal/bytes.js';

const KID = 'receipt-2026-01';
const ADAPTER = 'edge-1';
/** 2026-01-01T00:00:00Z: when the receipts of these tests are signed. */
const T0 = 1_767_225_600;
const DAY = 86_400;
const wallClock = () => Math.floor(Date.now() / 1000);

const receiptKey = await generateSigningKey();
const otherKey = await generateSigningKey();

function payload(extra: Partial<ReceiptPayload> = {}): ReceiptPayload {
  return {
    v: RECEIPT_VERSION,
    adapter: ADAPTER,
    iat: T0,
    request: {
      transcript_sha256: 'a'.repeat(64),
      method: 'POST',
      authority: 'orders.example:8443',
      path: '/v1/orders/42',
      route_id: 'orders.update',
    },
    identity: {
      iss: 'https://issuer.example',
      sub: 'service:orders-client',
      aud: 'orders-api',
      jti: 'jti-1',
      trust_domain: 'example.local',
      key_binding: 'software',
    },
    decision: 'allow',
    response: { status: 200, body_sha256: 'b'.repeat(64) },
    policy_version: '2026-01-01.1',
    ...extra,
  };
}

function trustWith(entry: Partial<ReceiptVerifyKey> = {}, kid = KID): ReceiptTrust {
  const key: ReceiptVerifyKey = { kid, key: receiptKey.publicKey, adapter: ADAPTER, ...entry };
  return { receiptKeys: new Map([[kid, key]]) };
}

const b64json = (value: unknown) => encodeBase64Url(utf8(JSON.stringify(value)));

/** A compact JWS over arbitrary header and payload JSON, signed by `key` (bypasses signReceipt's checks). */
async function signRaw(header: unknown, body: unknown, key: SigningKey = receiptKey): Promise<string> {
  const input = `${b64json(header)}.${b64json(body)}`;
  return `${input}.${encodeBase64Url(await key.sign(utf8(input)))}`;
}

const HEADER = { alg: 'EdDSA', kid: KID, typ: RECEIPT_VERSION };

async function rejection(promise: Promise<unknown>): Promise<ReceiptError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(ReceiptError);
    return e as ReceiptError;
  }
  throw new Error('expected a ReceiptError, the receipt verified');
}

async function expectCode(promise: Promise<unknown>, code: ReceiptErrorCode): Promise<void> {
  const e = await rejection(promise);
  expect(e.reason).toBe(code);
}

describe('signReceipt / verifyReceipt', () => {
  it('round-trips: the verified payload deep-equals what was signed', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    expect(receipt).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/);
    const verified = await verifyReceipt(receipt, trustWith({ nbf: T0 - DAY, exp: T0 + DAY }));
    expect(verified.payload).toEqual(payload());
    expect(verified.header).toEqual(HEADER);
    expect(verified.key).toEqual({ kid: KID, adapter: ADAPTER, nbf: T0 - DAY, exp: T0 + DAY });
    expect(Object.isFrozen(verified)).toBe(true);
  });

  it('signs the exact header {"alg":"EdDSA","kid":…,"typ":"trustplane-receipt-v1"}', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    const header = Buffer.from(receipt.split('.')[0]!, 'base64url').toString('utf8');
    expect(header).toBe(`{"alg":"EdDSA","kid":"${KID}","typ":"trustplane-receipt-v1"}`);
  });

  it('round-trips a deny with its reason, without the optional policy_version', async () => {
    const { policy_version: _, ...rest } = payload({ decision: 'deny', reason: 'policy_denied' });
    const receipt = await signReceipt(rest, receiptKey, KID);
    const verified = await verifyReceipt(receipt, trustWith());
    expect(verified.payload).toEqual(rest);
    expect(verified.payload.reason).toBe('policy_denied');
  });

  it('accepts a key without adapter, nbf or exp (no window: any iat)', async () => {
    const receipt = await signReceipt(payload({ iat: 0 }), receiptKey, KID);
    const trust: ReceiptTrust = { receiptKeys: new Map([[KID, { kid: KID, key: receiptKey.publicKey }]]) };
    expect((await verifyReceipt(receipt, trust)).key).toEqual({ kid: KID });
  });

  it('accepts Ed25519, the RFC 9864 name, as an alias of EdDSA', async () => {
    const receipt = await signRaw({ ...HEADER, alg: 'Ed25519' }, payload());
    expect((await verifyReceipt(receipt, trustWith())).header.alg).toBe('Ed25519');
  });

  it('the codes are the documented five', () => {
    expect([...RECEIPT_ERROR_CODES]).toEqual([
      'receipt_malformed',
      'receipt_unknown_key',
      'receipt_signature_invalid',
      'receipt_key_not_valid_at_iat',
      'receipt_adapter_mismatch',
    ]);
  });
});

describe('attack: tampering', () => {
  it('changing any single character of the compact receipt fails', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    const trust = trustWith();
    await verifyReceipt(receipt, trust);
    const codes = new Map<string, number>();
    let accepted = 0;
    for (let i = 0; i < receipt.length; i++) {
      const original = receipt[i]!;
      // Another base64url character (a '.' becomes one too, which merges two segments).
      const replacement = original === 'A' ? 'B' : 'A';
      const variant = `${receipt.slice(0, i)}${replacement}${receipt.slice(i + 1)}`;
      try {
        await verifyReceipt(variant, trust);
        accepted++;
      } catch (e) {
        expect(e).toBeInstanceOf(ReceiptError);
        const code = (e as ReceiptError).reason;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    expect(accepted).toBe(0);
    expect([...codes.values()].reduce((a, b) => a + b, 0)).toBe(receipt.length);
    // Payload and signature bytes fail the signature; header bytes fail the header or the kid.
    expect(codes.get('receipt_signature_invalid')).toBeGreaterThan(receipt.length / 2);
  });

  it('every other base64url character at every position of the payload and signature fails too', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    const trust = trustWith();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const start = receipt.indexOf('.') + 1;
    // Every position would be ~60k verifications; sample one position in 7 across the tail.
    let tried = 0;
    for (let i = start; i < receipt.length; i += 7) {
      if (receipt[i] === '.') continue;
      for (const c of alphabet) {
        if (c === receipt[i]) continue;
        await rejection(verifyReceipt(`${receipt.slice(0, i)}${c}${receipt.slice(i + 1)}`, trust));
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(1000);
  });

  it('a payload edited and re-encoded fails the signature', async () => {
    const [h, , s] = (await signReceipt(payload(), receiptKey, KID)).split('.') as [string, string, string];
    const forged = `${h}.${b64json(payload({ decision: 'deny', reason: 'policy_denied' }))}.${s}`;
    await expectCode(verifyReceipt(forged, trustWith()), 'receipt_signature_invalid');
    const status = `${h}.${b64json(payload({ response: { status: 500, body_sha256: 'b'.repeat(64) } }))}.${s}`;
    await expectCode(verifyReceipt(status, trustWith()), 'receipt_signature_invalid');
  });

  it('a signature by another key under the same kid fails', async () => {
    const forged = await signReceipt(payload(), otherKey, KID);
    await expectCode(verifyReceipt(forged, trustWith()), 'receipt_signature_invalid');
    const honest = await signReceipt(payload(), receiptKey, KID);
    await expectCode(
      verifyReceipt(honest, trustWith({ key: otherKey.publicKey })),
      'receipt_signature_invalid',
    );
  });

  it('the signature failure message is fixed and carries no receipt material', async () => {
    const forged = await signReceipt(payload(), otherKey, KID);
    const e = await rejection(verifyReceipt(forged, trustWith()));
    expect(e.message).toBe('signature verification failed');
    for (const part of forged.split('.')) expect(e.message).not.toContain(part.slice(0, 16));
  });

  it('an unknown kid fails', async () => {
    const receipt = await signReceipt(payload(), receiptKey, 'receipt-unknown');
    await expectCode(verifyReceipt(receipt, trustWith()), 'receipt_unknown_key');
    await expectCode(
      verifyReceipt(receipt, { receiptKeys: new Map<string, ReceiptVerifyKey>() }),
      'receipt_unknown_key',
    );
    const proto = await signRaw({ ...HEADER, kid: '__proto__' }, payload());
    await expectCode(verifyReceipt(proto, trustWith()), 'receipt_unknown_key');
  });

  it('a trust entry filed under another kid than its own is not used', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    const trust: ReceiptTrust = {
      receiptKeys: new Map([[KID, { kid: 'another', key: receiptKey.publicKey }]]),
    };
    await expectCode(verifyReceipt(receipt, trust), 'receipt_unknown_key');
  });
});

describe('attack: alg none, HS256, typ confusion', () => {
  it('refuses alg none (with and without a signature)', async () => {
    const unsigned = `${b64json({ ...HEADER, alg: 'none' })}.${b64json(payload())}.`;
    await expectCode(verifyReceipt(unsigned, trustWith()), 'receipt_malformed');
    const signed = await signRaw({ ...HEADER, alg: 'none' }, payload());
    await expectCode(verifyReceipt(signed, trustWith()), 'receipt_malformed');
  });

  it('refuses HS256 keyed with the public key bytes (key confusion)', async () => {
    const input = `${b64json({ ...HEADER, alg: 'HS256' })}.${b64json(payload())}`;
    for (const secret of [receiptKey.publicKey.raw, utf8(receiptKey.publicKey.x)]) {
      const mac = createHmac('sha256', secret).update(input).digest('base64url');
      await expectCode(verifyReceipt(`${input}.${mac}`, trustWith()), 'receipt_malformed');
    }
    for (const alg of ['HS384', 'HS512', 'RS256', 'ES256', 'eddsa', 'EDDSA', '']) {
      await expectCode(
        verifyReceipt(await signRaw({ ...HEADER, alg }, payload()), trustWith()),
        'receipt_malformed',
      );
    }
  });

  it('refuses a passport typ (JWT), a missing typ, and another typ', async () => {
    for (const typ of ['JWT', 'trustplane-receipt-v2', 'TRUSTPLANE-RECEIPT-V1', undefined]) {
      const receipt = await signRaw(
        { alg: 'EdDSA', kid: KID, ...(typ !== undefined ? { typ } : {}) },
        payload(),
      );
      await expectCode(verifyReceipt(receipt, trustWith()), 'receipt_malformed');
    }
  });

  it('refuses header parameters other than alg, kid and typ (jwk, jku, crit, b64)', async () => {
    const extras = [
      { jwk: { kty: 'OKP', crv: 'Ed25519', x: otherKey.publicKey.x } },
      { jku: 'https://attacker.example/jwks' },
      { crit: ['b64'], b64: false },
      { x5c: ['MIIB'] },
    ];
    for (const extra of extras) {
      const receipt = await signRaw({ ...HEADER, ...extra }, payload(), otherKey);
      await expectCode(verifyReceipt(receipt, trustWith()), 'receipt_malformed');
    }
  });
});

describe('validity: the key window is checked against the receipt iat, never the clock', () => {
  it('verifies long after the passport expired, the caller key is gone and the receipt key was rotated out', async () => {
    // The request: a real passport, valid when the adapter signed the receipt at T0.
    const issuerKey = await generateSigningKey();
    const callerKey = await generateSigningKey();
    const issuer = 'https://issuer.example';
    const passportTrust = await loadTrustMaterial(
      {
        version: 'trustplane-trust-material-v1',
        kind: 'trust_material',
        issuers: [
          {
            issuer,
            trust_domain: 'example.local',
            source_type: 'software_jwks',
            keys: [{ kty: 'OKP', crv: 'Ed25519', x: issuerKey.publicKey.x, kid: 'issuer-1' }],
          },
        ],
      },
      { signers: [], allowUnsigned: true },
    );
    const token = await issuePassport(
      {
        iss: issuer,
        sub: 'service:orders-client',
        aud: 'orders-api',
        iat: T0 - 10,
        exp: T0 + 110,
        jti: 'jti-rotated',
        trust_domain: 'example.local',
        cnf: { kid: 'caller-1', key_binding: 'software', public_key_b64url: callerKey.publicKey.x },
      },
      issuerKey,
      { kid: 'issuer-1' },
    );
    const passport = await verifyPassport(token, { issuers: passportTrust, audience: 'orders-api', now: T0 });
    const receipt = await signReceipt(
      payload({
        identity: {
          iss: passport.claims.iss,
          sub: passport.claims.sub,
          aud: passport.claims.aud,
          jti: passport.claims.jti,
          trust_domain: passport.claims.trust_domain,
          key_binding: passport.effectiveKeyBinding,
        },
      }),
      receiptKey,
      KID,
    );
    // Today the passport is long expired.
    const now = wallClock();
    expect(now).toBeGreaterThan(passport.claims.exp + 30);
    await expect(
      verifyPassport(token, { issuers: passportTrust, audience: 'orders-api', now }),
    ).rejects.toMatchObject({
      reason: 'passport_expired',
    });

    // Current trust material: the issuer and the caller's key are gone, and the receipt key was
    // rotated out (exp in the past, well before now) but is still listed.
    const keyExp = T0 + 30 * DAY;
    expect(keyExp).toBeLessThan(now);
    const current = await loadTrustMaterial(
      {
        version: 'trustplane-trust-material-v1',
        kind: 'trust_material',
        issuers: [],
        receipt_keys: [
          {
            kid: KID,
            kty: 'OKP',
            crv: 'Ed25519',
            x: receiptKey.publicKey.x,
            adapter: ADAPTER,
            nbf: T0 - DAY,
            exp: keyExp,
          },
          { kid: 'receipt-2026-02', kty: 'OKP', crv: 'Ed25519', x: otherKey.publicKey.x, nbf: keyExp },
        ],
      },
      { signers: [], allowUnsigned: true, now },
    );
    expect(current.getIssuer(issuer)).toBeUndefined();
    const verified = await verifyReceipt(receipt, current);
    expect(verified.payload.identity.jti).toBe('jti-rotated');
    expect(verified.key).toEqual({ kid: KID, adapter: ADAPTER, nbf: T0 - DAY, exp: keyExp });
  });

  it('the window is [nbf, exp): iat == nbf verifies, iat == exp does not', async () => {
    const trust = trustWith({ nbf: T0, exp: T0 + 100 });
    await verifyReceipt(await signReceipt(payload({ iat: T0 }), receiptKey, KID), trust);
    await verifyReceipt(await signReceipt(payload({ iat: T0 + 99 }), receiptKey, KID), trust);
    await expectCode(
      verifyReceipt(await signReceipt(payload({ iat: T0 + 100 }), receiptKey, KID), trust),
      'receipt_key_not_valid_at_iat',
    );
  });

  it('refuses a receipt whose iat is after the key exp (signed by a retired key)', async () => {
    const receipt = await signReceipt(payload({ iat: T0 + 2 * DAY }), receiptKey, KID);
    await expectCode(verifyReceipt(receipt, trustWith({ exp: T0 + DAY })), 'receipt_key_not_valid_at_iat');
  });

  it('refuses a receipt whose iat is before the key nbf (backdated, or signed before activation)', async () => {
    const receipt = await signReceipt(payload({ iat: T0 - 1 }), receiptKey, KID);
    await expectCode(verifyReceipt(receipt, trustWith({ nbf: T0 })), 'receipt_key_not_valid_at_iat');
    await expectCode(
      verifyReceipt(receipt, trustWith({ nbf: T0, exp: T0 + DAY })),
      'receipt_key_not_valid_at_iat',
    );
  });

  it('checks the window only after the signature (a forged iat is a signature failure)', async () => {
    const forged = await signReceipt(payload({ iat: T0 + 2 * DAY }), otherKey, KID);
    await expectCode(verifyReceipt(forged, trustWith({ exp: T0 + DAY })), 'receipt_signature_invalid');
  });
});

describe('adapter binding', () => {
  it('refuses a receipt naming another adapter than its key', async () => {
    const receipt = await signReceipt(payload({ adapter: 'edge-2' }), receiptKey, KID);
    await expectCode(verifyReceipt(receipt, trustWith({ adapter: 'edge-1' })), 'receipt_adapter_mismatch');
  });

  it('expectAdapter must equal the receipt adapter', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    await verifyReceipt(receipt, trustWith(), { expectAdapter: ADAPTER });
    await expectCode(
      verifyReceipt(receipt, trustWith(), { expectAdapter: 'edge-2' }),
      'receipt_adapter_mismatch',
    );
    const trust: ReceiptTrust = { receiptKeys: new Map([[KID, { kid: KID, key: receiptKey.publicKey }]]) };
    await verifyReceipt(receipt, trust);
    await expectCode(verifyReceipt(receipt, trust, { expectAdapter: 'edge-2' }), 'receipt_adapter_mismatch');
  });

  it('refuses an empty expectAdapter as caller misuse', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    await expect(verifyReceipt(receipt, trustWith(), { expectAdapter: '' })).rejects.toBeInstanceOf(
      TypeError,
    );
  });
});

describe('schema strictness', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['an unknown top-level member', { ...payload(), extra: 1 }],
    ['an unknown request member', { ...payload(), request: { ...payload().request, query: 'a=1' } }],
    ['an unknown identity member', { ...payload(), identity: { ...payload().identity, cnf: {} } }],
    ['an unknown response member', { ...payload(), response: { ...payload().response, headers: {} } }],
    ['another version', { ...payload(), v: 'trustplane-receipt-v2' }],
    ['a reason on allow', { ...payload(), reason: 'policy_denied' }],
    ['a deny without reason', { ...payload(), decision: 'deny' }],
    ['an unknown decision', { ...payload(), decision: 'maybe' }],
    ['a missing response', (({ response: _, ...rest }) => rest)(payload())],
    ['an uppercase digest', { ...payload(), response: { status: 200, body_sha256: 'B'.repeat(64) } }],
    [
      'a short transcript digest',
      { ...payload(), request: { ...payload().request, transcript_sha256: 'a' } },
    ],
    ['a status out of range', { ...payload(), response: { status: 99, body_sha256: 'b'.repeat(64) } }],
    ['a fractional iat', { ...payload(), iat: T0 + 0.5 }],
    ['a negative iat', { ...payload(), iat: -1 }],
    ['a string iat', { ...payload(), iat: String(T0) }],
    ['a lowercase method', { ...payload(), request: { ...payload().request, method: 'get' } }],
    ['a control character in the path', { ...payload(), request: { ...payload().request, path: '/a\nb' } }],
    ['an unknown key binding', { ...payload(), identity: { ...payload().identity, key_binding: 'magic' } }],
    ['an over-long subject', { ...payload(), identity: { ...payload().identity, sub: 's'.repeat(2049) } }],
    ['an empty adapter', { ...payload(), adapter: '' }],
  ];

  it.each(cases)('a correctly signed receipt with %s is receipt_malformed', async (_name, body) => {
    await expectCode(verifyReceipt(await signRaw(HEADER, body), trustWith()), 'receipt_malformed');
  });

  it.each(cases)('signReceipt refuses a payload with %s (TypeError)', async (_name, body) => {
    await expect(signReceipt(body as ReceiptPayload, receiptKey, KID)).rejects.toBeInstanceOf(TypeError);
  });

  it('the payload schema is strict at every level', () => {
    expect(receiptPayloadSchema.safeParse(payload()).success).toBe(true);
    for (const [, body] of cases) expect(receiptPayloadSchema.safeParse(body).success).toBe(false);
  });

  it('a payload that is not a JSON object is receipt_malformed', async () => {
    for (const body of [[payload()], 'receipt', null, 42]) {
      await expectCode(verifyReceipt(await signRaw(HEADER, body), trustWith()), 'receipt_malformed');
    }
  });
});

describe('bounds and encoding', () => {
  it('refuses non-strings, empty, over-long, and wrongly segmented input', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    const inputs: unknown[] = [
      undefined,
      null,
      42,
      { receipt },
      '',
      'a.b',
      `${receipt}.x`,
      `${receipt}=`,
      ` ${receipt}`,
      `${receipt.slice(0, receipt.lastIndexOf('.') + 1)}`,
      'x'.repeat(MAX_RECEIPT_LENGTH + 1),
    ];
    for (const input of inputs) await expectCode(verifyReceipt(input, trustWith()), 'receipt_malformed');
  });

  it('refuses a padded or standard-base64 signature (one accepted encoding per signature)', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    const [h, p, s] = receipt.split('.') as [string, string, string];
    const standard = Buffer.from(s, 'base64url').toString('base64');
    await expectCode(verifyReceipt(`${h}.${p}.${standard}`, trustWith()), 'receipt_malformed');
    await expectCode(verifyReceipt(`${h}.${p}.${s}==`, trustWith()), 'receipt_malformed');
  });

  it('refuses invalid UTF-8 and non-JSON segments', async () => {
    const bad = encodeBase64Url(Uint8Array.from([0xff, 0xfe, 0x7b]));
    const receipt = await signReceipt(payload(), receiptKey, KID);
    const [h, p, s] = receipt.split('.') as [string, string, string];
    await expectCode(verifyReceipt(`${bad}.${p}.${s}`, trustWith()), 'receipt_malformed');
    await expectCode(
      verifyReceipt(`${encodeBase64Url(utf8('{'))}.${p}.${s}`, trustWith()),
      'receipt_malformed',
    );
    await expectCode(verifyReceipt(`${h}.${bad}.${s}`, trustWith()), 'receipt_signature_invalid');
  });

  it('signReceipt refuses a bad kid and a receipt that would exceed the length bound', async () => {
    await expect(signReceipt(payload(), receiptKey, '')).rejects.toBeInstanceOf(TypeError);
    await expect(signReceipt(payload(), receiptKey, 'k'.repeat(257))).rejects.toBeInstanceOf(TypeError);
    const big = payload({
      identity: {
        ...payload().identity,
        iss: 'i'.repeat(2048),
        sub: 's'.repeat(2048),
        aud: 'a'.repeat(2048),
      },
    });
    await expect(signReceipt(big, receiptKey, KID)).rejects.toBeInstanceOf(RangeError);
  });

  it('refuses a trust argument without receiptKeys (caller misuse)', async () => {
    const receipt = await signReceipt(payload(), receiptKey, KID);
    await expect(verifyReceipt(receipt, {} as ReceiptTrust)).rejects.toBeInstanceOf(TypeError);
  });
});

describe('responseBodyDigest', () => {
  it('is the lowercase hex SHA-256 of the exact bytes', async () => {
    expect(await responseBodyDigest('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(await responseBodyDigest(new Uint8Array())).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    const large = new Uint8Array(100_000).fill(7);
    expect(await responseBodyDigest(large)).toBe(createHash('sha256').update(large).digest('hex'));
  });
});

describe('trust material receipt keys (nbf/exp)', () => {
  const base = (keys: unknown[]): unknown => ({
    version: 'trustplane-trust-material-v1',
    kind: 'trust_material',
    issuers: [],
    receipt_keys: keys,
  });
  const jwk = { kid: KID, kty: 'OKP', crv: 'Ed25519', x: receiptKey.publicKey.x };

  it('loads nbf/exp onto the receipt key and verifies against them', async () => {
    const doc = base([{ ...jwk, adapter: ADAPTER, nbf: T0 - DAY, exp: T0 + DAY }]) as TrustMaterial;
    const signer = await generateSigningKey();
    const signed = await signDocument(doc, signer, { issuer: 'ops@example.local', kid: 'docs-1' });
    const trust = await loadTrustMaterial(signed, { signers: [{ kid: 'docs-1', key: signer.publicKey }] });
    expect(trust.receiptKeys.get(KID)).toMatchObject({
      kid: KID,
      adapter: ADAPTER,
      nbf: T0 - DAY,
      exp: T0 + DAY,
    });
    await verifyReceipt(await signReceipt(payload(), receiptKey, KID), trust);
    await expectCode(
      verifyReceipt(await signReceipt(payload({ iat: T0 + DAY }), receiptKey, KID), trust),
      'receipt_key_not_valid_at_iat',
    );
  });

  it('omits nbf/exp when the document does not set them', async () => {
    const trust = await loadTrustMaterial(base([jwk]), { signers: [], allowUnsigned: true });
    const key = trust.receiptKeys.get(KID)!;
    expect(Object.hasOwn(key, 'nbf') || Object.hasOwn(key, 'exp') || Object.hasOwn(key, 'adapter')).toBe(
      false,
    );
  });

  it('refuses exp <= nbf, non-integer or negative times, and unknown members', () => {
    expect(() => parseTrustMaterial(base([{ ...jwk, nbf: T0, exp: T0 }]))).toThrow(/exp must be after nbf/);
    expect(() => parseTrustMaterial(base([{ ...jwk, nbf: T0, exp: T0 - 1 }]))).toThrow(
      /exp must be after nbf/,
    );
    for (const bad of [{ nbf: 1.5 }, { exp: -1 }, { exp: '1' }, { not_after: T0 }]) {
      expect(() => parseTrustMaterial(base([{ ...jwk, ...bad }]))).toThrow();
    }
    expect(() => parseTrustMaterial(base([{ ...jwk, nbf: T0 }]))).not.toThrow();
    expect(() => parseTrustMaterial(base([{ ...jwk, exp: T0 }]))).not.toThrow();
  });
});
