import { createPublicKey, verify as opensslVerify } from 'node:crypto';
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import { Hono } from 'hono';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadNativeEd25519 } from '../../pkg/adapter/native-crypto.js';
import {
  ed25519Backend,
  MemoryReplayStore,
  parsePublicKey,
  useEd25519Primitive,
  useSha256Primitive,
  type SigningKey,
} from '../../pkg/authcore/index.js';
import { loadTrustMaterial, signDocument } from '../../pkg/bundle/index.js';
import { encodeBase64Url } from '../../pkg/internal/base64url.js';
import { fromHex, toArrayBufferView } from '../../pkg/internal/bytes.js';
import { trustplane, type TrustplaneVariables } from '../../pkg/middleware/hono/index.js';
import { verifyRequest, type Decision } from '../../pkg/verifier/index.js';
import { sendSigned, startTestAdapter, startUpstream } from '../helpers/adapter.js';
import { NOW, createWorld, signed, toRequest, type World } from '../helpers/fixture.js';
import { readVectorJson } from '../helpers/vectors.js';

/*
 * A small-order Ed25519 public key A has [8]A = identity, so [k]A takes at most 8 values whatever
 * the message: a signature (R = -[k]A, S = 0) verifies under a cofactorless verifier that does not
 * refuse such keys (OpenSSL, hence WebCrypto and node:crypto), for any message when A is the
 * identity and for a fraction of messages otherwise, without any private key. libsodium refuses
 * these keys itself; TrustPlane must refuse them on every backend, when the key is imported.
 */

const hex = (text: string): Uint8Array => {
  const bytes = fromHex(text);
  if (!bytes) throw new Error('bad hex');
  return bytes;
};

/**
 * Every 32-byte string a decoder may map to a small-order point: the 8 points (canonical), then
 * x = 0 with the sign bit set (identity, order 2) and y = p, p + 1 (y >= p) with either sign bit.
 * libsodium's blocklist (ge25519_has_small_order) lists the same 7 y values, sign bit ignored.
 */
const CANONICAL = [
  ['identity (order 1)', '0100000000000000000000000000000000000000000000000000000000000000'],
  ['order 2 (y = p - 1)', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ['order 4 (y = 0, x even)', '0000000000000000000000000000000000000000000000000000000000000000'],
  ['order 4 (y = 0, x odd)', '0000000000000000000000000000000000000000000000000000000000000080'],
  ['order 8 (26e8…, x even)', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'],
  ['order 8 (26e8…, x odd)', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85'],
  ['order 8 (c717…, x even)', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'],
  ['order 8 (c717…, x odd)', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa'],
] as const;
const NON_CANONICAL = [
  ['identity, x = 0 with sign bit', '0100000000000000000000000000000000000000000000000000000000000080'],
  ['order 2, x = 0 with sign bit', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'],
  ['order 4, y = p', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ['order 4, y = p, sign bit', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'],
  ['identity, y = p + 1', 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ['identity, y = p + 1, sign bit', 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'],
] as const;
const ENCODINGS = [...CANONICAL, ...NON_CANONICAL].map(([name, h]) => [name, hex(h)] as const);
const IDENTITY = hex(CANONICAL[0][1]);

/** Signature R || S with S = 0. */
function zeroS(r: Uint8Array): Uint8Array {
  const sig = new Uint8Array(64);
  sig.set(r);
  return sig;
}

async function webcryptoVerifies(pk: Uint8Array, sig: Uint8Array, msg: Uint8Array): Promise<boolean> {
  const key = await crypto.subtle.importKey('raw', toArrayBufferView(pk), { name: 'Ed25519' }, false, [
    'verify',
  ]);
  return crypto.subtle.verify({ name: 'Ed25519' }, key, toArrayBufferView(sig), toArrayBufferView(msg));
}

function opensslVerifies(pk: Uint8Array, sig: Uint8Array, msg: Uint8Array): boolean {
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: encodeBase64Url(pk) },
    format: 'jwk',
  });
  return opensslVerify(null, msg, key, sig);
}

/** The forgery: R among the 8 small-order points, S = 0, checked to verify under OpenSSL. */
async function forge(pk: Uint8Array, msg: Uint8Array): Promise<Uint8Array | undefined> {
  for (const r of ED25519_TORSION_SUBGROUP) {
    const sig = zeroS(hex(r));
    if ((await webcryptoVerifies(pk, sig, msg)) && opensslVerifies(pk, sig, msg)) return sig;
  }
  return undefined;
}

/** A "request key" with no private key: it signs by forging. */
function forgingKey(raw: Uint8Array): SigningKey {
  const key = {
    publicKey: { raw, x: encodeBase64Url(raw) },
    async sign(digest: Uint8Array) {
      const sig = await forge(raw, digest);
      if (!sig) throw new Error('no forgery for this transcript');
      return sig;
    },
  };
  return key as unknown as SigningKey;
}

/**
 * A passport signed properly by the trusted issuer (world.caller) with cnf = `raw`, and a request
 * proof forged for it. The nonce is random, so retrying a transcript with no forgery finds one.
 */
async function forgedRequest(world: World, raw: Uint8Array) {
  for (let attempt = 0; attempt < 64; attempt++) {
    try {
      return await signed(world, { requestKey: forgingKey(raw) });
    } catch {
      // this transcript's k gives no small-order R; another nonce will
    }
  }
  throw new Error('could not forge a request proof');
}

function expectCnfDeny(decision: Decision): void {
  expect(decision.allowed).toBe(false);
  if (decision.allowed) return;
  expect({ reason: decision.reason, status: decision.status }).toEqual({
    reason: 'invalid_cnf',
    status: 401,
  });
}

let world: World;

beforeAll(async () => {
  world = await createWorld();
});

afterAll(() => {
  // The adapter installs its native primitives process-wide.
  useEd25519Primitive(undefined);
  useSha256Primitive(undefined);
});

describe('attack: small-order cnf key', () => {
  it('the encodings are exactly the small-order ones (checked with @noble/curves)', () => {
    expect(new Set(CANONICAL.map(([, h]) => h))).toEqual(new Set(ED25519_TORSION_SUBGROUP));
    for (const [, h] of CANONICAL) {
      const point = ed25519.Point.fromBytes(hex(h), false);
      expect(point.isSmallOrder()).toBe(true);
      expect(encodeBase64Url(point.toBytes())).toBe(encodeBase64Url(hex(h)));
    }
    for (const [, h] of NON_CANONICAL) {
      // RFC 8032 §5.1.3 decoding refuses them; a lenient (ZIP-215) decoder finds a small-order point.
      expect(() => ed25519.Point.fromBytes(hex(h), false)).toThrow();
      expect(ed25519.Point.fromBytes(hex(h), true).isSmallOrder()).toBe(true);
    }
  });

  it('the claim holds: for the identity key, R = identity, S = 0 verifies any message under WebCrypto and OpenSSL', async () => {
    const sig = zeroS(IDENTITY);
    for (let i = 0; i < 16; i++) {
      const msg = crypto.getRandomValues(new Uint8Array(1 + i * 7));
      expect(await webcryptoVerifies(IDENTITY, sig, msg)).toBe(true);
      expect(opensslVerifies(IDENTITY, sig, msg)).toBe(true);
    }
  });

  it.each(ENCODINGS)('%s: a forged proof verifies under WebCrypto and OpenSSL', async (_name, raw) => {
    const s = await forgedRequest(world, raw);
    const proof = s.headers['x-trustplane-proof']!;
    expect(proof).toMatch(/A{43}$/); // S = 0
    expect(await forge(raw, s.transcript.digest)).toBeDefined();
  });

  const backends = [
    ['WebCrypto', () => useEd25519Primitive(undefined)],
    ['node:crypto primitive', () => useEd25519Primitive(loadNativeEd25519({ sodium: false }).verify)],
    ['libsodium primitive (the adapter default)', () => useEd25519Primitive(loadNativeEd25519().verify)],
  ] as const;

  describe.each(backends)('verifyRequest with %s', (backend, install) => {
    afterEach(() => useEd25519Primitive(undefined));

    it('control: a genuine request is allowed', async () => {
      install();
      expect(ed25519Backend()).toBe(backend === 'WebCrypto' ? 'webcrypto' : 'primitive');
      const s = await signed(world);
      const decision = await verifyRequest(toRequest(s), {
        trust: world.trust,
        policy: world.policy,
        replayStore: new MemoryReplayStore(),
        clock: () => NOW,
      });
      expect(decision.allowed).toBe(true);
    });

    it.each(ENCODINGS)('%s: denied invalid_cnf (401), twice (the cnf cache)', async (_name, raw) => {
      install();
      const ctx = {
        trust: world.trust,
        policy: world.policy,
        replayStore: new MemoryReplayStore(),
        clock: () => NOW,
      };
      for (let i = 0; i < 2; i++) {
        const s = await forgedRequest(world, raw);
        expectCnfDeny(await verifyRequest(toRequest(s), ctx));
      }
    });
  });

  describe('Hono middleware (app.request)', () => {
    it.each(ENCODINGS)('%s: 401 invalid_cnf and the handler does not run', async (_name, raw) => {
      const calls = { n: 0 };
      const app = new Hono<{ Variables: TrustplaneVariables }>();
      app.use(
        '*',
        trustplane({
          trust: world.trust,
          policy: world.policy,
          replayStore: new MemoryReplayStore(),
          clock: () => NOW,
        }),
      );
      app.all('*', (c) => {
        calls.n += 1;
        return c.text('reached', 200);
      });
      const s = await forgedRequest(world, raw);
      const res = await app.request(s.url, { method: s.method, headers: s.headers });
      expect({ status: res.status, body: (await res.json()) as unknown }).toEqual({
        status: 401,
        body: { allowed: false, reason: 'invalid_cnf' },
      });
      expect(res.headers.get('x-trustplane-reason')).toBe('invalid_cnf');
      expect(calls.n).toBe(0);
    });
  });

  describe('adapter over loopback', () => {
    let upstream: Awaited<ReturnType<typeof startUpstream>>;
    let tp: Awaited<ReturnType<typeof startTestAdapter>>;

    beforeAll(async () => {
      upstream = await startUpstream();
      tp = await startTestAdapter(world, { upstream: upstream.url });
    });

    afterAll(async () => {
      await tp.adapter.close();
      await upstream.close();
    });

    it('control: the adapter verifies with libsodium, and a genuine request reaches the upstream', async () => {
      expect(ed25519Backend()).toBe('primitive');
      const s = await signed(world);
      const res = await sendSigned(tp.base, s);
      expect(res.status).toBe(200);
      expect(upstream.requests).toHaveLength(1);
      upstream.requests.length = 0;
    });

    it.each(ENCODINGS)('%s: 401 invalid_cnf and nothing reaches the upstream', async (_name, raw) => {
      const s = await forgedRequest(world, raw);
      const res = await sendSigned(tp.base, s);
      expect({ status: res.status, body: JSON.parse(res.body) as unknown }).toEqual({
        status: 401,
        body: { allowed: false, reason: 'invalid_cnf' },
      });
      expect(res.headers['x-trustplane-reason']).toBe('invalid_cnf');
      expect(upstream.requests).toHaveLength(0);
    });
  });
});

describe('small-order and non-canonical keys elsewhere', () => {
  /** Trust material whose issuer key (or receipt key) is `x`, signed by the world's bundle signer. */
  async function trustWith(x: string, where: 'issuer' | 'receipt') {
    const doc = structuredClone(world.trustDoc);
    delete doc.signature;
    delete doc.signed_by;
    if (where === 'issuer') {
      (doc.issuers as { keys: { x: string }[] }[])[0]!.keys[0]!.x = x;
    } else {
      doc.receipt_keys = [{ kid: 'receipt-1', kty: 'OKP', crv: 'Ed25519', x }];
    }
    const signedDoc = await signDocument(doc, world.bundleSigner, {
      issuer: 'https://bundles.example',
      kid: 'bundle-signer-1',
    });
    return loadTrustMaterial(signedDoc, {
      signers: [{ kid: 'bundle-signer-1', key: world.bundleSigner.publicKey }],
    });
  }

  it('control: the same document with genuine keys loads', async () => {
    await expect(trustWith(world.other.publicKey.x, 'issuer')).resolves.toBeDefined();
    await expect(trustWith(world.other.publicKey.x, 'receipt')).resolves.toBeDefined();
  });

  it.each(ENCODINGS)(
    'trust material: %s as an issuer or receipt key is invalid_bundle',
    async (_name, raw) => {
      const x = encodeBase64Url(raw);
      for (const where of ['issuer', 'receipt'] as const) {
        const err = (await trustWith(x, where).catch((e: unknown) => e)) as Error & { reason?: string };
        expect(err).toMatchObject({ reason: 'invalid_bundle' });
        expect(err.message).not.toContain(x);
      }
    },
  );

  it.each(ENCODINGS)('parsePublicKey: %s is invalid_key in every encoding', async (_name, raw) => {
    const x = encodeBase64Url(raw);
    const spki = `-----BEGIN PUBLIC KEY-----\n${btoa(
      String.fromCharCode(...hex('302a300506032b6570032100'), ...raw),
    )}\n-----END PUBLIC KEY-----\n`;
    const inputs = [
      x,
      { kty: 'OKP', crv: 'Ed25519', x },
      JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x }),
      spki,
    ];
    for (const input of inputs) {
      const err = (await parsePublicKey(input).catch((e: unknown) => e)) as Error & { reason?: string };
      expect(err).toMatchObject({ reason: 'invalid_key', status: 500 });
      expect(err.message).not.toContain(x);
    }
  });

  it('the RFC 8032 test keys are still accepted', async () => {
    const file = readVectorJson<{ vectors: { publicKey: string }[] }>('external/rfc8032-ed25519.json');
    expect(file.vectors.length).toBeGreaterThanOrEqual(5);
    for (const v of file.vectors) {
      const key = await parsePublicKey(encodeBase64Url(hex(v.publicKey)));
      expect(key.raw).toEqual(hex(v.publicKey));
      await expect(trustWith(key.x, 'issuer')).resolves.toBeDefined();
    }
  });
});
