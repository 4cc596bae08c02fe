import { createHmac } from 'node:crypto';
import { SignJWT, importJWK, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_PASSPORT_LENGTH,
  SIGNATURE_FAILURE_MESSAGE,
  createIssuerRegistry,
  decodePassportUnverified,
  generateSigningKey,
  issuePassport,
  toPublicJwk,
  verifyPassport,
  type IssuePassportClaims,
  type IssuerRegistry,
  type KeyBinding,
  type SigningKey,
  type TrustedIssuer,
  type TrustedKey,
  type VerifyPassportOptions,
  TrustplaneError,
} from '../../pkg/authcore/index.js';
import { decodeBase64Url, encodeBase64Url } from '../../pkg/internal/base64url.js';
import { utf8 } from '../../pkg/internal/bytes.js';

const NOW = 1_767_225_600; // 2026-01-01T00:00:00Z
const ISS_A = 'https://issuer-a.example';
const ISS_B = 'https://issuer-b.example';
const KID_A = 'issuer-a-2026-01';
const KID_B = 'issuer-b-2026-01';
const TD_A = 'a.example';
const TD_B = 'b.example';
const AUD = 'orders-api';

let keyA: SigningKey;
let keyB: SigningKey;
let holder: SigningKey;
let issuers: IssuerRegistry;

function trustedIssuer(
  issuer: string,
  trustDomain: string,
  keys: readonly TrustedKey[],
  maxKeyBinding: KeyBinding = 'attested_workload',
): TrustedIssuer {
  return {
    issuer,
    trustDomain,
    sourceType: 'broker',
    maxKeyBinding,
    keys: new Map(keys.map((k) => [k.kid, k])),
  };
}

beforeAll(async () => {
  keyA = await generateSigningKey();
  keyB = await generateSigningKey();
  holder = await generateSigningKey();
  issuers = createIssuerRegistry([
    trustedIssuer(ISS_A, TD_A, [{ kid: KID_A, key: keyA.publicKey }]),
    trustedIssuer(ISS_B, TD_B, [{ kid: KID_B, key: keyB.publicKey }]),
  ]);
});

function baseClaims(): IssuePassportClaims {
  return {
    iss: ISS_A,
    sub: 'spiffe://a.example/agent/billing',
    aud: AUD,
    iat: NOW,
    exp: NOW + 300,
    jti: 'jti-0001',
    trust_domain: TD_A,
    cnf: { kid: 'holder-1', key_binding: 'hardware_local', public_key_b64url: holder.publicKey.x },
  };
}

const b64json = (value: unknown): string => encodeBase64Url(utf8(JSON.stringify(value)));

/** Build and sign an arbitrary compact JWS (header and payload exactly as given). */
async function signJws(header: unknown, payload: unknown, key: SigningKey = keyA): Promise<string> {
  const input = `${b64json(header)}.${b64json(payload)}`;
  return `${input}.${encodeBase64Url(await key.sign(utf8(input)))}`;
}

/** A passport with claim and header overrides (undefined removes a member). */
async function makeToken(
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  key: SigningKey = keyA,
): Promise<string> {
  return signJws({ alg: 'EdDSA', kid: KID_A, typ: 'JWT', ...header }, { ...baseClaims(), ...claims }, key);
}

/**
 * verifyPassport with the default options; every rejection is also checked for leaks: the
 * message must not contain the token or any of its segments.
 */
function verify(token: unknown, options: Partial<VerifyPassportOptions> = {}) {
  return verifyPassport(token, { issuers, audience: AUD, now: NOW, ...options }).catch((err: unknown) => {
    expect(err).toBeInstanceOf(TrustplaneError);
    if (typeof token === 'string' && token.length > 0) {
      const message = (err as Error).message;
      const details = JSON.stringify((err as TrustplaneError).details);
      for (const piece of [token, ...token.split('.').filter((s) => s.length >= 8)]) {
        expect(message).not.toContain(piece);
        expect(details).not.toContain(piece);
      }
    }
    throw err;
  });
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The same bytes with a non-zero unused trailing bit: decodes leniently, but is not canonical. */
function nonCanonical(segment: string): string {
  const last = ALPHABET.indexOf(segment[segment.length - 1]!);
  return segment.slice(0, -1) + ALPHABET[last ^ 1]!;
}

describe('issuePassport + verifyPassport', () => {
  it('round trip', async () => {
    const token = await issuePassport(baseClaims(), keyA, { kid: KID_A });
    const v = await verify(token);
    expect(v.header).toEqual({ alg: 'EdDSA', kid: KID_A, typ: 'JWT' });
    expect(v.claims).toEqual(baseClaims());
    expect(v.issuer.issuer).toBe(ISS_A);
    expect(v.cnfKey.raw).toEqual(holder.publicKey.raw);
    expect(v.effectiveKeyBinding).toBe('hardware_local');
  });

  it('round trip with ctx and provenance', async () => {
    const claims: IssuePassportClaims = {
      ...baseClaims(),
      ctx: { actor_type: 'agent', purpose: 'refund', max_txn_value: '100.00' },
      provenance: { profile: 'k8s', spiffe_id: 'spiffe://a.example/ns/x/sa/y' },
    };
    const v = await verify(await issuePassport(claims, keyA, { kid: KID_A }));
    expect(v.claims.ctx).toEqual(claims.ctx);
    expect(v.claims.provenance).toEqual(claims.provenance);
  });

  it('the issued header is exactly {alg,kid,typ}', async () => {
    const token = await issuePassport(baseClaims(), keyA, { kid: KID_A });
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as unknown;
    expect(header).toEqual({ alg: 'EdDSA', kid: KID_A, typ: 'JWT' });
  });

  it('caller misuse throws TypeError/RangeError', async () => {
    await expect(issuePassport({ ...baseClaims(), exp: NOW }, keyA, { kid: KID_A })).rejects.toBeInstanceOf(
      RangeError,
    );
    await expect(
      issuePassport({ ...baseClaims(), iat: NOW + 0.5 }, keyA, { kid: KID_A }),
    ).rejects.toBeInstanceOf(RangeError);
    await expect(
      issuePassport(
        { ...baseClaims(), cnf: { ...baseClaims().cnf, key_binding: 'tpm' as KeyBinding } },
        keyA,
        { kid: KID_A },
      ),
    ).rejects.toBeInstanceOf(RangeError);
    await expect(issuePassport(baseClaims(), keyA, { kid: '' })).rejects.toBeInstanceOf(TypeError);
    const token = await issuePassport(baseClaims(), keyA, { kid: KID_A });
    await expect(verifyPassport(token, { issuers, audience: '', now: NOW })).rejects.toBeInstanceOf(
      TypeError,
    );
    await expect(verifyPassport(token, { issuers, audience: AUD, now: Number.NaN })).rejects.toBeInstanceOf(
      TypeError,
    );
  });

  it('decodePassportUnverified exposes the parts without verifying', async () => {
    const token = await makeToken({}, {}, keyB); // wrong key: still decodes
    const parsed = decodePassportUnverified(token);
    expect(parsed.header.kid).toBe(KID_A);
    expect(parsed.payload.iss).toBe(ISS_A);
    expect(parsed.signature).toHaveLength(64);
    expect(parsed.signingInput).toBe(token.split('.').slice(0, 2).join('.'));
  });
});

describe('interop with jose', () => {
  it('a passport we issue verifies with jose jwtVerify', async () => {
    const token = await issuePassport(baseClaims(), keyA, { kid: KID_A });
    const key = await importJWK(toPublicJwk(keyA.publicKey, KID_A), 'EdDSA');
    const { payload, protectedHeader } = await jwtVerify(token, key, {
      algorithms: ['EdDSA'],
      audience: AUD,
      issuer: ISS_A,
      typ: 'JWT',
      currentDate: new Date(NOW * 1000),
    });
    expect(protectedHeader).toEqual({ alg: 'EdDSA', kid: KID_A, typ: 'JWT' });
    expect(payload).toEqual(baseClaims());
  });

  it('a token signed by jose SignJWT with our claims verifies with verifyPassport', async () => {
    const key = await importJWK(keyA.exportPrivateJwk(), 'EdDSA');
    const { iss, sub, aud, iat, exp, jti, ...rest } = baseClaims();
    const token = await new SignJWT({ ...rest })
      .setProtectedHeader({ alg: 'EdDSA', kid: KID_A, typ: 'JWT' })
      .setIssuer(iss)
      .setSubject(sub)
      .setAudience(aud)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(key);
    const v = await verify(token);
    expect(v.claims).toEqual(baseClaims());
  });

  it("a jose token using RFC 9864's alg Ed25519 verifies", async () => {
    const key = await importJWK(keyA.exportPrivateJwk(), 'Ed25519');
    const token = await new SignJWT({ ...baseClaims() })
      .setProtectedHeader({ alg: 'Ed25519', kid: KID_A })
      .sign(key);
    const v = await verify(token);
    expect(v.header.alg).toBe('Ed25519');
  });
});

describe('attack: alg none', () => {
  it.each(['none', 'None', 'NONE'])('alg %s with an empty signature', async (alg) => {
    const token = `${b64json({ alg, kid: KID_A, typ: 'JWT' })}.${b64json(baseClaims())}.`;
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unsupported_algorithm', status: 401 });
  });

  it('alg none with a valid EdDSA signature attached', async () => {
    const token = await makeToken({}, { alg: 'none' });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unsupported_algorithm', status: 401 });
  });
});

describe('attack: HS256 with the public key as secret', () => {
  async function hmacToken(alg: string, secret: Uint8Array | string): Promise<string> {
    const input = `${b64json({ alg, kid: KID_A, typ: 'JWT' })}.${b64json(baseClaims())}`;
    const mac = createHmac(alg === 'HS512' ? 'sha512' : 'sha256', secret)
      .update(input)
      .digest('base64url');
    return `${input}.${mac}`;
  }

  it('raw public key bytes as the HMAC secret', async () => {
    const token = await hmacToken('HS256', keyA.publicKey.raw);
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unsupported_algorithm', status: 401 });
  });

  it('the JWK x string as the HMAC secret', async () => {
    const token = await hmacToken('HS256', keyA.publicKey.x);
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unsupported_algorithm', status: 401 });
  });

  it('jose SignJWT HS256 with the public key bytes', async () => {
    const token = await new SignJWT({ ...baseClaims() })
      .setProtectedHeader({ alg: 'HS256', kid: KID_A, typ: 'JWT' })
      .sign(keyA.publicKey.raw);
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unsupported_algorithm', status: 401 });
  });

  it.each(['HS512', 'RS256', 'ES256', 'PS256', 'EdDSA ', 'eddsa', 'ED25519', 'Ed448', ''])(
    'other algorithm %j',
    async (alg) => {
      const token = await makeToken({}, { alg });
      await expect(verify(token)).rejects.toMatchObject({ reason: 'unsupported_algorithm', status: 401 });
    },
  );

  it.each([[['EdDSA']], [null], [1], [{ name: 'EdDSA' }]])('non-string alg %j', async (alg) => {
    const token = await makeToken({}, { alg });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unsupported_algorithm', status: 401 });
  });

  it('missing alg', async () => {
    const token = await makeToken({}, { alg: undefined });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unsupported_algorithm', status: 401 });
  });
});

describe('attack: kid of another issuer', () => {
  it('iss=A with the kid of B, signed by B', async () => {
    const token = await makeToken({}, { kid: KID_B }, keyB);
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unknown_key', status: 401 });
  });

  it('iss=A with the kid of B and trust domain of B, signed by B', async () => {
    const token = await makeToken({ trust_domain: TD_B }, { kid: KID_B }, keyB);
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unknown_key', status: 401 });
  });

  it('the same token with iss=B is accepted (control)', async () => {
    const token = await makeToken({ iss: ISS_B, trust_domain: TD_B }, { kid: KID_B }, keyB);
    expect((await verify(token)).issuer.issuer).toBe(ISS_B);
  });

  it.each(['unknown-kid', 'toString', '__proto__', 'constructor'])('kid %j', async (kid) => {
    const token = await makeToken({}, { kid });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unknown_key', status: 401 });
  });
});

describe('issuer and key lookup', () => {
  it('unknown issuer', async () => {
    const token = await makeToken({ iss: 'https://evil.example' });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'unknown_issuer', status: 401 });
  });

  it.each(['toString', '__proto__', 'constructor', `${ISS_A}/`, ISS_A.toUpperCase()])(
    'issuer %j is unknown',
    async (iss) => {
      const token = await makeToken({ iss });
      await expect(verify(token)).rejects.toMatchObject({ reason: 'unknown_issuer', status: 401 });
    },
  );

  describe('key nbf/exp window in TrustedKey', () => {
    let token: string;
    beforeAll(async () => {
      token = await makeToken();
    });
    function withKeyWindow(window: { nbf?: number; exp?: number }) {
      const registry = createIssuerRegistry([
        trustedIssuer(ISS_A, TD_A, [{ kid: KID_A, key: keyA.publicKey, ...window }]),
      ]);
      return verify(token, { issuers: registry });
    }

    it('key not yet valid -> unknown_key', async () => {
      await expect(withKeyWindow({ nbf: NOW + 31 })).rejects.toMatchObject({
        reason: 'unknown_key',
        status: 401,
      });
    });

    it('key expired -> unknown_key', async () => {
      await expect(withKeyWindow({ exp: NOW - 30 })).rejects.toMatchObject({
        reason: 'unknown_key',
        status: 401,
      });
      await expect(withKeyWindow({ exp: NOW - 3600 })).rejects.toMatchObject({
        reason: 'unknown_key',
        status: 401,
      });
    });

    it('inside the window (skew applies at both ends)', async () => {
      await expect(withKeyWindow({ nbf: NOW + 30 })).resolves.toBeDefined();
      await expect(withKeyWindow({ exp: NOW - 29 })).resolves.toBeDefined();
      await expect(withKeyWindow({ nbf: NOW - 10, exp: NOW + 10 })).resolves.toBeDefined();
    });
  });
});

describe('time claims', () => {
  it('attack: expired but signed', async () => {
    const token = await makeToken({ iat: NOW - 400, exp: NOW - 100 });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'passport_expired', status: 401 });
  });

  it('exp exactly at now - skew is expired; one second later is valid', async () => {
    await expect(verify(await makeToken({ iat: NOW - 330, exp: NOW - 30 }))).rejects.toMatchObject({
      reason: 'passport_expired',
      status: 401,
    });
    await expect(verify(await makeToken({ iat: NOW - 329, exp: NOW - 29 }))).resolves.toBeDefined();
  });

  it('skewSeconds: 0 makes exp == now expired', async () => {
    const token = await makeToken({ iat: NOW - 300, exp: NOW });
    await expect(verify(token, { skewSeconds: 0 })).rejects.toMatchObject({
      reason: 'passport_expired',
      status: 401,
    });
    await expect(
      verify(await makeToken({ iat: NOW - 299, exp: NOW + 1 }), { skewSeconds: 0 }),
    ).resolves.toBeDefined();
  });

  it('attack: future iat', async () => {
    const token = await makeToken({ iat: NOW + 31, exp: NOW + 331 });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'passport_not_yet_valid', status: 401 });
    await expect(verify(await makeToken({ iat: NOW + 30, exp: NOW + 330 }))).resolves.toBeDefined();
  });

  it('nbf in the future', async () => {
    const token = await makeToken({ nbf: NOW + 31 });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'passport_not_yet_valid', status: 401 });
    const ok = await verify(await makeToken({ nbf: NOW + 30 }));
    expect(ok.claims.nbf).toBe(NOW + 30);
  });

  it('attack: lifetime too long (exp - iat = 601)', async () => {
    const token = await makeToken({ iat: NOW, exp: NOW + 601 });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'passport_lifetime_exceeded', status: 401 });
    await expect(verify(await makeToken({ iat: NOW, exp: NOW + 600 }))).resolves.toBeDefined();
  });

  it('maxLifetimeSeconds option', async () => {
    const token = await makeToken({ iat: NOW, exp: NOW + 120 });
    await expect(verify(token, { maxLifetimeSeconds: 119 })).rejects.toMatchObject({
      reason: 'passport_lifetime_exceeded',
      status: 401,
    });
    await expect(verify(token, { maxLifetimeSeconds: 120 })).resolves.toBeDefined();
  });

  it('exp <= iat is malformed', async () => {
    const token = await makeToken({ iat: NOW, exp: NOW });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'malformed_passport', status: 401 });
  });

  it.each([
    ['iat as a string', { iat: String(NOW) }],
    ['exp fractional', { exp: NOW + 0.5 }],
    ['iat negative', { iat: -1 }],
    ['exp missing', { exp: undefined }],
    ['nbf as a string', { nbf: String(NOW) }],
  ])('%s is malformed', async (_name, claims) => {
    await expect(verify(await makeToken(claims))).rejects.toMatchObject({
      reason: 'malformed_passport',
      status: 401,
    });
  });
});

describe('audience and trust domain', () => {
  it('audience mismatch', async () => {
    const token = await makeToken({ aud: 'payments-api' });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'audience_mismatch', status: 403 });
  });

  it('audience mismatch from the verifier side', async () => {
    const token = await makeToken();
    await expect(verify(token, { audience: 'payments-api' })).rejects.toMatchObject({
      reason: 'audience_mismatch',
      status: 403,
    });
  });

  it('aud as a one-element array is accepted (normalized to a string)', async () => {
    const v = await verify(await makeToken({ aud: [AUD] }));
    expect(v.claims.aud).toBe(AUD);
  });

  it('aud as a one-element array of another audience is a mismatch', async () => {
    await expect(verify(await makeToken({ aud: ['payments-api'] }))).rejects.toMatchObject({
      reason: 'audience_mismatch',
      status: 403,
    });
  });

  it.each([
    ['two-element array', [AUD, 'payments-api']],
    ['two-element array, ours second', ['payments-api', AUD]],
    ['empty array', []],
    ['empty string', ''],
    ['number', 1],
  ])('aud as %s is malformed', async (_name, aud) => {
    await expect(verify(await makeToken({ aud }))).rejects.toMatchObject({
      reason: 'malformed_passport',
      status: 401,
    });
  });

  it("trust domain other than the issuer's", async () => {
    const token = await makeToken({ trust_domain: TD_B });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'trust_domain_mismatch', status: 403 });
  });

  it('options.trustDomain mismatch', async () => {
    const token = await makeToken();
    await expect(verify(token, { trustDomain: TD_B })).rejects.toMatchObject({
      reason: 'trust_domain_mismatch',
      status: 403,
    });
    await expect(verify(token, { trustDomain: TD_A })).resolves.toBeDefined();
  });
});

describe('cnf', () => {
  const cnf = (patch: Record<string, unknown>) => ({ ...baseClaims().cnf, ...patch });

  it.each([
    ['key of 31 bytes', () => cnf({ public_key_b64url: encodeBase64Url(new Uint8Array(31)) })],
    ['key of 33 bytes', () => cnf({ public_key_b64url: encodeBase64Url(new Uint8Array(33)) })],
    ['key non-canonical base64url', () => cnf({ public_key_b64url: nonCanonical(holder.publicKey.x) })],
    ['key in standard base64 with padding', () => cnf({ public_key_b64url: `${holder.publicKey.x}=` })],
    ['key not a string', () => cnf({ public_key_b64url: 42 })],
    ['unknown key_binding', () => cnf({ key_binding: 'tpm' })],
    ['key_binding __proto__', () => cnf({ key_binding: '__proto__' })],
    ['extra cnf member (jkt)', () => cnf({ jkt: 'x' })],
    ['extra cnf member (jwk)', () => cnf({ jwk: toPublicJwk(holder.publicKey) })],
    ['missing kid', () => cnf({ kid: undefined })],
    ['empty kid', () => cnf({ kid: '' })],
    ['missing cnf', () => undefined],
    ['cnf null', () => null],
    ['cnf a string', () => holder.publicKey.x],
    ['cnf an array', () => [cnf({})]],
  ])('%s -> invalid_cnf', async (_name, make) => {
    const token = await makeToken({ cnf: make() });
    await expect(verify(token)).rejects.toMatchObject({ reason: 'invalid_cnf', status: 401 });
  });

  it('effectiveKeyBinding is capped by the issuer maxKeyBinding', async () => {
    const registry = createIssuerRegistry([
      trustedIssuer(ISS_A, TD_A, [{ kid: KID_A, key: keyA.publicKey }], 'software'),
    ]);
    const token = await makeToken({ cnf: cnf({ key_binding: 'attested_workload' }) });
    const v = await verify(token, { issuers: registry });
    expect(v.claims.cnf.key_binding).toBe('attested_workload');
    expect(v.effectiveKeyBinding).toBe('software');
  });

  it('a claim below the issuer maximum is kept', async () => {
    const registry = createIssuerRegistry([
      trustedIssuer(ISS_A, TD_A, [{ kid: KID_A, key: keyA.publicKey }], 'hardware_local'),
    ]);
    const v = await verify(await makeToken({ cnf: cnf({ key_binding: 'remote_kms' }) }), {
      issuers: registry,
    });
    expect(v.effectiveKeyBinding).toBe('remote_kms');
  });
});

describe('signatures', () => {
  it('attack: tampered payload (claim flipped, signature kept)', async () => {
    const token = await makeToken();
    const [h, , s] = token.split('.');
    const forged = `${h}.${b64json({ ...baseClaims(), sub: 'spiffe://a.example/agent/admin' })}.${s}`;
    await expect(verify(forged)).rejects.toMatchObject({ reason: 'invalid_passport_signature', status: 401 });
  });

  it('attack: tampered header (typ dropped, signature kept)', async () => {
    const token = await makeToken();
    const [, p, s] = token.split('.');
    const forged = `${b64json({ alg: 'EdDSA', kid: KID_A })}.${p}.${s}`;
    await expect(verify(forged)).rejects.toMatchObject({ reason: 'invalid_passport_signature', status: 401 });
  });

  it('attack: signature from another key', async () => {
    const token = await makeToken({}, {}, keyB);
    await expect(verify(token)).rejects.toMatchObject({ reason: 'invalid_passport_signature', status: 401 });
    const holderSigned = await makeToken({}, {}, holder);
    await expect(verify(holderSigned)).rejects.toMatchObject({
      reason: 'invalid_passport_signature',
      status: 401,
    });
  });

  it('attack: signature malleability (S + L)', async () => {
    const token = await makeToken();
    const [h, p, s] = token.split('.') as [string, string, string];
    const sig = decodeBase64Url(s)!;
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let S = 0n;
    for (let i = 63; i >= 32; i--) S = (S << 8n) | BigInt(sig[i]!);
    S += L;
    for (let i = 32; i < 64; i++) {
      sig[i] = Number(S & 0xffn);
      S >>= 8n;
    }
    const forged = `${h}.${p}.${encodeBase64Url(sig)}`;
    await expect(verify(forged)).rejects.toMatchObject({ reason: 'invalid_passport_signature', status: 401 });
  });

  it('attack: all-zero signature', async () => {
    const [h, p] = (await makeToken()).split('.');
    const forged = `${h}.${p}.${encodeBase64Url(new Uint8Array(64))}`;
    await expect(verify(forged)).rejects.toMatchObject({ reason: 'invalid_passport_signature', status: 401 });
  });

  it('all crypto failures share SIGNATURE_FAILURE_MESSAGE', async () => {
    const good = await makeToken();
    const [h, p, s] = good.split('.') as [string, string, string];
    const bad = [
      `${h}.${b64json({ ...baseClaims(), jti: 'other' })}.${s}`,
      await makeToken({}, {}, keyB),
      await makeToken({}, {}, holder),
      `${h}.${p}.${encodeBase64Url(new Uint8Array(64))}`,
      `${h}.${p}.${encodeBase64Url(Uint8Array.from(decodeBase64Url(s)!, (b, i) => (i === 10 ? b ^ 1 : b)))}`,
    ];
    const messages = new Set<string>();
    for (const token of bad) {
      const err = (await verify(token).catch((e: unknown) => e)) as TrustplaneError;
      expect(err.reason).toBe('invalid_passport_signature');
      messages.add(err.message);
    }
    expect([...messages]).toEqual([SIGNATURE_FAILURE_MESSAGE]);
  });
});

describe('format', () => {
  it.each([
    ['crit', { crit: ['exp'], exp: NOW + 300 }],
    ['crit b64', { crit: ['b64'], b64: false }],
    ['jwk', { jwk: { kty: 'OKP', crv: 'Ed25519', x: 'AAAA' } }],
    ['jku', { jku: 'https://evil.example/jwks.json' }],
    ['x5u', { x5u: 'https://evil.example/cert.pem' }],
    ['x5c', { x5c: ['MIIB'] }],
    ['cty', { cty: 'JWT' }],
    ['unknown parameter', { foo: 'bar' }],
    ['__proto__ parameter', JSON.parse('{"__proto__": {"alg": "EdDSA"}}') as Record<string, unknown>],
  ])('header parameter %s -> malformed_passport', async (_name, extra) => {
    const token = await makeToken({}, extra);
    await expect(verify(token)).rejects.toMatchObject({ reason: 'malformed_passport', status: 401 });
  });

  it.each([
    ['missing kid', { kid: undefined }],
    ['empty kid', { kid: '' }],
    ['kid not a string', { kid: 7 }],
    ['kid over 256 chars', { kid: 'k'.repeat(257) }],
    ["typ 'at+jwt'", { typ: 'at+jwt' }],
    ["typ 'jwt' (lowercase)", { typ: 'jwt' }],
    ["typ 'dpop+jwt'", { typ: 'dpop+jwt' }],
  ])('header %s -> malformed_passport', async (_name, header) => {
    const token = await makeToken({}, header);
    await expect(verify(token)).rejects.toMatchObject({ reason: 'malformed_passport', status: 401 });
  });

  it('typ may be omitted', async () => {
    await expect(verify(await makeToken({}, { typ: undefined }))).resolves.toBeDefined();
  });

  it("alg 'Ed25519' (RFC 9864) is accepted as an alias", async () => {
    const v = await verify(await makeToken({}, { alg: 'Ed25519' }));
    expect(v.header.alg).toBe('Ed25519');
  });

  it('non-canonical base64url in the signature', async () => {
    const token = await makeToken();
    const [h, p, s] = token.split('.') as [string, string, string];
    expect(Buffer.from(nonCanonical(s), 'base64url')).toEqual(Buffer.from(s, 'base64url'));
    for (const sig of [nonCanonical(s), `${s}==`, `+${s.slice(1)}`, `/${s.slice(1)}`, ` ${s}`]) {
      await expect(verify(`${h}.${p}.${sig}`)).rejects.toMatchObject({
        reason: 'malformed_passport',
        status: 401,
      });
    }
  });

  it('non-canonical base64url in the header or payload', async () => {
    const token = await makeToken();
    const [h, p, s] = token.split('.') as [string, string, string];
    await expect(verify(`${h}=.${p}.${s}`)).rejects.toMatchObject({
      reason: 'malformed_passport',
      status: 401,
    });
    await expect(verify(`${h}.${p} .${s}`)).rejects.toMatchObject({
      reason: 'malformed_passport',
      status: 401,
    });
  });

  it('signature of the wrong length', async () => {
    const [h, p, s] = (await makeToken()).split('.') as [string, string, string];
    const sig = decodeBase64Url(s)!;
    for (const bad of [sig.subarray(0, 63), Uint8Array.from([...sig, 0]), new Uint8Array(0)]) {
      await expect(verify(`${h}.${p}.${encodeBase64Url(bad)}`)).rejects.toMatchObject({
        reason: 'malformed_passport',
        status: 401,
      });
    }
  });

  it(`token over ${MAX_PASSPORT_LENGTH} chars, validly signed`, async () => {
    // Find the largest padding claim that keeps the token within the limit; one more char of
    // padding must push it over.
    const bare = await makeToken({ pad: '' });
    // Each 3 padding chars add 4 base64url chars; start just below the limit and step up.
    let pad = Math.max(0, Math.floor(((MAX_PASSPORT_LENGTH - bare.length) * 3) / 4) - 6);
    let token = await makeToken({ pad: 'x'.repeat(pad) });
    expect(token.length).toBeLessThanOrEqual(MAX_PASSPORT_LENGTH);
    while (token.length <= MAX_PASSPORT_LENGTH) {
      pad += 1;
      token = await makeToken({ pad: 'x'.repeat(pad) });
    }
    expect(token.length).toBeGreaterThan(MAX_PASSPORT_LENGTH);
    await expect(verify(token)).rejects.toMatchObject({ reason: 'malformed_passport', status: 401 });
    const within = await makeToken({ pad: 'x'.repeat(pad - 1) });
    expect(within.length).toBeLessThanOrEqual(MAX_PASSPORT_LENGTH);
    await expect(verify(within)).resolves.toBeDefined();
  });

  it('4-part, 2-part and 5-part tokens', async () => {
    const token = await makeToken();
    const [h, p, s] = token.split('.') as [string, string, string];
    for (const bad of [`${token}.${s}`, `${h}.${p}`, `${h}.${p}.${s}..`, `${h}.${h}.${p}.${s}`]) {
      await expect(verify(bad)).rejects.toMatchObject({ reason: 'malformed_passport', status: 401 });
    }
  });

  it.each([[''], ['.'], ['..'], [null], [undefined], [42], [{}], [['a', 'b', 'c']]])(
    'non-token %j',
    async (token) => {
      await expect(verify(token)).rejects.toMatchObject({ reason: 'malformed_passport', status: 401 });
    },
  );

  it('header or payload that is not a JSON object', async () => {
    const key = keyA;
    const cases = [
      signJws({ alg: 'EdDSA', kid: KID_A }, [baseClaims()], key),
      signJws({ alg: 'EdDSA', kid: KID_A }, 'a string', key),
      signJws({ alg: 'EdDSA', kid: KID_A }, null, key),
    ];
    for (const token of await Promise.all(cases)) {
      await expect(verify(token)).rejects.toMatchObject({ reason: 'malformed_passport', status: 401 });
    }
    const [, p, s] = (await makeToken()).split('.');
    for (const header of ['["EdDSA"]', 'null', '{"alg":"EdDSA"', 'not json']) {
      const token = `${encodeBase64Url(utf8(header))}.${p}.${s}`;
      await expect(verify(token)).rejects.toMatchObject({ reason: 'malformed_passport', status: 401 });
    }
  });

  it('payload with invalid UTF-8', async () => {
    const h = b64json({ alg: 'EdDSA', kid: KID_A });
    const p = encodeBase64Url(Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])); // {"\xff":1}
    const input = `${h}.${p}`;
    const token = `${input}.${encodeBase64Url(await keyA.sign(utf8(input)))}`;
    await expect(verify(token)).rejects.toMatchObject({ reason: 'malformed_passport', status: 401 });
  });

  it.each([
    ['missing sub', { sub: undefined }],
    ['missing jti', { jti: undefined }],
    ['empty jti', { jti: '' }],
    ['missing trust_domain', { trust_domain: undefined }],
    ['iss not a string', { iss: 1 }],
    ['unknown ctx member', { ctx: { actor_type: 'agent', admin: 'yes' } }],
    ['provenance not an object', { provenance: 'x' }],
  ])('claims: %s -> malformed_passport', async (_name, claims) => {
    await expect(verify(await makeToken(claims))).rejects.toMatchObject({
      reason: 'malformed_passport',
      status: 401,
    });
  });

  it('unknown top-level claims are ignored (RFC 7519 section 4)', async () => {
    const v = await verify(await makeToken({ scope: 'admin', roles: ['x'] }));
    expect(v.claims).toEqual(baseClaims());
  });
});

describe('error messages', () => {
  it('never contain the token, its parts, keys or claims', async () => {
    const good = await makeToken();
    const [h, p, s] = good.split('.') as [string, string, string];
    const tokens = [
      `${h}.${b64json({ ...baseClaims(), sub: 'spiffe://a.example/secret-subject' })}.${s}`,
      await makeToken({ iss: 'https://secret-issuer.example' }),
      await makeToken({ aud: 'secret-audience' }),
      await makeToken({}, { kid: 'secret-kid' }),
      await makeToken({ iat: NOW - 4000, exp: NOW - 3700 }),
      await makeToken({
        cnf: { kid: 'k', key_binding: 'secret-binding', public_key_b64url: holder.publicKey.x },
      }),
      `${h}.${p}.${s}x`,
      `${good}.${good}`,
    ];
    for (const token of tokens) {
      const err = (await verify(token).catch((e: unknown) => e)) as TrustplaneError;
      expect(err).toBeInstanceOf(TrustplaneError);
      const text = `${String(err)} ${err.message} ${JSON.stringify(err.details)}`;
      for (const secret of [
        'secret',
        h,
        p,
        s,
        holder.publicKey.x,
        keyA.publicKey.x,
        'spiffe://',
        'https://',
        KID_A,
      ]) {
        expect(text).not.toContain(secret);
      }
    }
  });
});
