import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../pkg/runtime/logger.js';
import { resolveAdapterConfig } from '../../pkg/adapter/resolve-adapter-config.js';
import { startAdapter, type Adapter } from '../../pkg/adapter/server.js';
import { generateSigningKey, type SigningKey } from '../../pkg/authcore/index.js';
import { auditEventSchema, MemoryAuditSink, type AuditEvent } from '../../pkg/audit/index.js';
import { verifyReceipt } from '../../pkg/audit/index.js';
import { loadTrustMaterial, signDocument } from '../../pkg/bundle/index.js';
import { NOW, createWorld, signed, signedJson, type World } from '../helpers/fixture.js';
import { rawSend, sendSigned, startUpstream, writeWorld, type Upstream } from '../helpers/adapter.js';

/** A sink whose durable writes can be made to fail (a stand-in for a ledger outage). */
class SwitchableDurableSink extends MemoryAuditSink {
  durableAvailable = true;
  failDurable = false;
  readonly durable: AuditEvent[] = [];
  async writeDurable(event: AuditEvent): Promise<void> {
    if (this.failDurable) throw new Error('ledger down');
    await new Promise((r) => setTimeout(r, 1));
    this.durable.push(event);
    this.events.push(event);
  }
}

let world: World;
let upstream: Upstream;
let adapter: Adapter;
let base: string;
let receiptKey: SigningKey;
let trustWithReceipts: Awaited<ReturnType<typeof loadTrustMaterial>>;
const sink = new SwitchableDurableSink();
const INSTANCE = 'edge-test-1';

beforeAll(async () => {
  world = await createWorld({
    policyPatch: (doc) => {
      const routes = (doc.route_groups as { routes: Record<string, unknown>[] }[])[0]!.routes;
      routes.find((r) => r.route_id === 'orders.search')!.audit = 'required';
      routes.find((r) => r.route_id === 'orders.create')!.receipt = true;
    },
  });
  receiptKey = await generateSigningKey();
  const { signature: _s, signed_by: _b, ...unsigned } = world.trustDoc;
  const trustDoc = await signDocument(
    {
      ...unsigned,
      receipt_keys: [
        {
          kid: 'receipt-1',
          kty: 'OKP',
          crv: 'Ed25519',
          x: receiptKey.publicKey.x,
          adapter: INSTANCE,
          nbf: NOW - 3600,
          exp: NOW + 3600,
        },
      ],
    },
    world.bundleSigner,
    { issuer: 'https://bundles.example', kid: 'bundle-signer-1' },
  );
  trustWithReceipts = await loadTrustMaterial(trustDoc, {
    signers: [{ kid: 'bundle-signer-1', key: world.bundleSigner.publicKey }],
  });
  const files = writeWorld(world);
  writeFileSync(files.trustMaterial, JSON.stringify(trustDoc));
  upstream = await startUpstream();
  adapter = await startAdapter(
    resolveAdapterConfig({
      flags: {
        listen: '127.0.0.1:0',
        adminListen: '127.0.0.1:0',
        upstream: upstream.url,
        trustMaterial: files.trustMaterial,
        policyBundle: files.policyBundle,
        trustMaterialPublicKeys: [files.signerKey],
        policyBundlePublicKeys: [files.signerKey],
        replayJournal: path.join(files.dir, 'replay.journal'),
        reloadIntervalMs: 0,
        instance: INSTANCE,
        receiptPrivateKey: receiptKey.exportKeyText(),
        receiptKid: 'receipt-1',
        auditDurableTimeoutMs: 500,
      },
    }),
    { clock: () => NOW, audit: sink, log: createLogger('silent') },
  );
  base = `http://127.0.0.1:${adapter.address.port}`;
});

afterAll(async () => {
  await adapter.close();
  await upstream.close();
});

describe('audit: "required" routes', () => {
  it('allow only after the durable write; 503 audit_unavailable when it fails or the sink is down', async () => {
    const before = upstream.requests.length;
    const ok = await sendSigned(base, await signed(world));
    expect(ok.status).toBe(200);
    expect(sink.durable.at(-1)).toMatchObject({ decision: 'allow', route_id: 'orders.search' });

    sink.failDurable = true;
    const failed = await sendSigned(base, await signed(world));
    expect(failed.status).toBe(503);
    expect(JSON.parse(failed.body)).toEqual({ allowed: false, reason: 'audit_unavailable' });
    sink.failDurable = false;

    sink.durableAvailable = false;
    const down = await sendSigned(base, await signed(world));
    expect(down.status).toBe(503);
    sink.durableAvailable = true;

    // The upstream saw only the request whose allow was durable.
    expect(upstream.requests.length - before).toBe(1);
    const last = sink.events.slice(-2).map((e) => auditEventSchema.parse(e));
    expect(last.map((e) => [e.decision, e.reason, e.status])).toEqual([
      ['deny', 'audit_unavailable', 503],
      ['deny', 'audit_unavailable', 503],
    ]);
  });

  it('forward-auth mode applies audit: required too', async () => {
    const files = writeWorld(world);
    const fa = await startAdapter(
      resolveAdapterConfig({
        flags: {
          mode: 'forward-auth',
          forwardAuthGateway: 'nginx',
          listen: '127.0.0.1:0',
          adminListen: '127.0.0.1:0',
          trustMaterial: files.trustMaterial,
          policyBundle: files.policyBundle,
          trustMaterialPublicKeys: [files.signerKey],
          policyBundlePublicKeys: [files.signerKey],
          replayJournal: path.join(files.dir, 'fa-replay.journal'),
          reloadIntervalMs: 0,
          auditDurableTimeoutMs: 500,
        },
      }),
      { clock: () => NOW, audit: sink, log: createLogger('silent') },
    );
    try {
      const faBase = `http://127.0.0.1:${fa.address.port}`;
      const ask = async () => {
        const s = await signed(world);
        return rawSend(faBase, {
          method: 'GET',
          target: '/auth',
          headers: {
            ...s.headers,
            'x-original-method': 'GET',
            'x-original-uri': '/v1/orders/search',
            'x-original-content-length': '',
            'x-forwarded-host': 'orders.example',
          },
        });
      };
      expect((await ask()).status).toBe(200);
      sink.durableAvailable = false;
      const refused = await ask();
      expect([refused.status, JSON.parse(refused.body)]).toEqual([
        503,
        { allowed: false, reason: 'audit_unavailable' },
      ]);
    } finally {
      sink.durableAvailable = true;
      await fa.close();
    }
  });

  it('other routes never wait on the ledger', async () => {
    sink.failDurable = true;
    sink.durableAvailable = false;
    try {
      const res = await sendSigned(base, await signedJson(world, '{"a":1}'), {}, '{"a":1}');
      expect(res.status).toBe(200);
    } finally {
      sink.failDurable = false;
      sink.durableAvailable = true;
    }
  });
});

describe('route options are validated with the bundle', () => {
  it('an unknown audit mode or a non-boolean receipt is refused with the path', async () => {
    const { loadPolicyBundle } = await import('../../pkg/bundle/index.js');
    for (const [key, value] of [
      ['audit', 'sometimes'],
      ['receipt', 'yes'],
    ] as const) {
      const { signature: _s, signed_by: _b, ...doc } = structuredClone(world.policyDoc);
      const routes = (doc.route_groups as { routes: Record<string, unknown>[] }[])[0]!.routes;
      routes[0]![key] = value;
      await expect(loadPolicyBundle(doc, { signers: [], allowUnsigned: true })).rejects.toMatchObject({
        reason: 'invalid_bundle',
        message: expect.stringContaining(key) as unknown,
      });
    }
  });
});

describe('receipts', () => {
  it('receipt routes return X-TrustPlane-Receipt over the answer; it verifies offline and is in the ledger', async () => {
    const body = '{"sku":"A-1"}';
    const s = await signedJson(world, body);
    const res = await sendSigned(base, s, {}, body);
    expect(res.status).toBe(200);
    const receipt = res.headers['x-trustplane-receipt'] as string;
    expect(receipt).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const verified = await verifyReceipt(receipt, trustWithReceipts);
    expect(verified.payload).toMatchObject({
      v: 'trustplane-receipt-v1',
      adapter: INSTANCE,
      decision: 'allow',
      request: {
        transcript_sha256: s.transcript.sha256,
        route_id: 'orders.create',
        method: 'POST',
        path: '/v1/orders',
      },
      identity: { sub: 'service:orders-client', jti: s.claims.jti, aud: 'orders-api' },
      response: { status: 200, body_sha256: createHash('sha256').update(res.body).digest('hex') },
    });
    const stored = sink.events.find((e) => e.event_type === 'receipt_issued' && e.receipt === receipt);
    expect(stored && auditEventSchema.parse(stored)).toMatchObject({
      upstream_status: 200,
      jti: s.claims.jti,
    });

    // Any changed byte, or another key, fails.
    const flipped = `${receipt.slice(0, -2)}${receipt.at(-2) === 'A' ? 'B' : 'A'}${receipt.at(-1)}`;
    await expect(verifyReceipt(flipped, trustWithReceipts)).rejects.toMatchObject({ name: 'ReceiptError' });
  });

  it('a receipt still verifies after the passport expired, the caller key was removed and the receipt key rotated out', async () => {
    const body = '{"sku":"B-2"}';
    const s = await signedJson(world, body, { ttl: 60 });
    const res = await sendSigned(base, s, {}, body);
    const receipt = res.headers['x-trustplane-receipt'] as string;
    const signers = [{ kid: 'bundle-signer-1', key: world.bundleSigner.publicKey }];
    const rotated = await generateSigningKey();
    const { signature: _s, signed_by: _b, ...unsigned } = world.trustDoc as Record<string, unknown>;
    const later = await signDocument(
      {
        ...unsigned,
        issued_at: NOW + 86_400 * 90,
        // The caller's issuer is gone; receipt-1 may no longer sign (its window ended right after
        // this receipt), and receipt-2 is the active key.
        issuers: (unsigned.issuers as { issuer: string }[]).filter(
          (i) => i.issuer !== 'https://issuer.example/software-jwks',
        ),
        receipt_keys: [
          {
            kid: 'receipt-1',
            kty: 'OKP',
            crv: 'Ed25519',
            x: receiptKey.publicKey.x,
            adapter: INSTANCE,
            nbf: NOW - 3600,
            exp: NOW + 1,
          },
          {
            kid: 'receipt-2',
            kty: 'OKP',
            crv: 'Ed25519',
            x: rotated.publicKey.x,
            adapter: INSTANCE,
            nbf: NOW + 1,
          },
        ],
      },
      world.bundleSigner,
      { issuer: 'https://bundles.example', kid: 'bundle-signer-1' },
    );
    const trustLater = await loadTrustMaterial(later, { signers, now: NOW + 86_400 * 90 });
    expect(trustLater.getIssuer('https://issuer.example/software-jwks')).toBeUndefined();
    const verified = await verifyReceipt(receipt, trustLater);
    expect(verified.payload.identity.jti).toBe(s.claims.jti);
    expect(s.claims.exp).toBeLessThan(NOW + 86_400 * 90);

    // The same kid bound to another key (a wrong key) fails.
    const wrong = await signDocument(
      {
        ...unsigned,
        receipt_keys: [
          { kid: 'receipt-1', kty: 'OKP', crv: 'Ed25519', x: rotated.publicKey.x, adapter: INSTANCE },
        ],
      },
      world.bundleSigner,
      { issuer: 'https://bundles.example', kid: 'bundle-signer-1' },
    );
    await expect(verifyReceipt(receipt, await loadTrustMaterial(wrong, { signers }))).rejects.toMatchObject({
      reason: 'receipt_signature_invalid',
    });
  });

  it('routes without receipt: true get none', async () => {
    const res = await sendSigned(base, await signed(world));
    expect(res.headers['x-trustplane-receipt']).toBeUndefined();
  });
});
