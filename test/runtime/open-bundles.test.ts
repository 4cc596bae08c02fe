import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, MemoryReplayStore, type SigningKey } from '../../pkg/authcore/index.js';
import { trustplane, type TrustplaneVariables } from '../../pkg/middleware/hono/index.js';
import {
  configFileBuilder,
  createLogger,
  keyBundleSigner,
  openBundles,
  startBundleServer,
  type BundleManager,
  type BundleServer,
} from '../../pkg/runtime/index.js';
import { TrustplaneError } from '../../pkg/authcore/index.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { mintCa, mintLeaf } from '../helpers/x509.js';

// The loader helper for the middlewares: `openBundles` pulls from a bundle server (here over
// mTLS with a bearer token as well) and the Hono middleware reads `bundles.current` per request.

const TOKEN = 'loader-token-0123456789';
const now = () => Math.floor(Date.now() / 1000);
let world: World;
let signer: SigningKey;
let dir: string;
let policyConfig: string;
let server: BundleServer;
let bundles: BundleManager | undefined;
const ca = mintCa();
const serverCert = mintLeaf({ issuer: ca, extraExtensions: ['subjectAltName = IP:127.0.0.1'] });
const clientCert = mintLeaf({ issuer: ca });

function policyConfigDoc(revocations: unknown[] = []) {
  return {
    trust_domain: 'example.local',
    apis: world.policyDoc.apis,
    route_groups: world.policyDoc.route_groups,
    defaults: { required_key_binding: 'software', freshness_class: 'bounded', max_staleness_seconds: 300 },
    revocations,
  };
}

function writeAtomic(file: string, value: unknown): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(value));
  renameSync(`${file}.tmp`, file);
}

const remote = (extra: Record<string, unknown> = {}) => ({
  trustMaterial: `${server.url}/trust-material.json`,
  policyBundle: `${server.url}/policy-bundle.json`,
  publicKeys: [signer.publicKey.x],
  stateDir: mkdtempSync(path.join(dir, 'state-')),
  token: TOKEN,
  ca: ca.pem,
  cert: clientCert.pem,
  key: clientCert.key.pkcs8Pem,
  log: createLogger('silent'),
  ...extra,
});

beforeAll(async () => {
  world = await createWorld({ issuedAt: now() - 60 });
  signer = await generateSigningKey();
  dir = mkdtempSync(path.join(tmpdir(), 'tp-open-bundles-'));
  const trustConfig = path.join(dir, 'trust.config.json');
  policyConfig = path.join(dir, 'policy.config.json');
  writeAtomic(trustConfig, { trust_domain: 'example.local', issuers: world.trustDoc.issuers });
  writeAtomic(policyConfig, policyConfigDoc());
  server = await startBundleServer({
    listen: '127.0.0.1:0',
    signer: keyBundleSigner(signer, { issuer: 'https://bundles.example', kid: 'bundle-signer-1' }),
    build: configFileBuilder({ trustConfig, policyConfig }),
    watchFiles: [trustConfig, policyConfig],
    bearerToken: TOKEN,
    tls: { cert: serverCert.pem, key: serverCert.key.pkcs8Pem, clientCa: ca.pem },
    log: createLogger('silent'),
  });
});

afterAll(async () => {
  await bundles?.close();
  await server?.close();
});

describe('openBundles: the middlewares pull from a bundle server', () => {
  it('over mTLS with a bearer token: the Hono middleware allows, then enforces a revocation within 2 s', async () => {
    expect(server.url).toMatch(/^https:/);
    bundles = await openBundles(remote());
    const b = bundles;
    const app = new Hono<{ Variables: TrustplaneVariables }>();
    app.use('*', trustplane({ material: () => b.current, replayStore: new MemoryReplayStore() }));
    app.get('/v1/orders/search', (c) => c.text('reached'));
    const send = async () => {
      const s = await signed(world, { claims: { iat: now() } });
      return app.request(s.url, { method: s.method, headers: s.headers });
    };
    expect((await send()).status).toBe(200);
    const started = Date.now();
    writeAtomic(policyConfig, policyConfigDoc([{ kind: 'subject', value: 'service:orders-client' }]));
    let res = await send();
    while (res.status === 200 && Date.now() - started < 5_000) {
      await new Promise((r) => setTimeout(r, 50));
      res = await send();
    }
    const ms = Date.now() - started;
    console.log(`middleware: revocation enforced after ${ms} ms`);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { reason: string }).reason).toBe('revoked');
    expect(ms).toBeLessThan(2_000);
  });

  it('refuses to start without the client certificate or with a wrong token (bundle_source_unavailable)', async () => {
    for (const extra of [{ cert: undefined, key: undefined }, { token: 'wrong-token-0123456789' }]) {
      const opts = remote(extra);
      await expect(openBundles(opts)).rejects.toSatisfy(
        (e: unknown) => e instanceof TrustplaneError && e.reason === 'bundle_source_unavailable',
      );
    }
  });
});
