import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, type SigningKey } from '../../pkg/authcore/index.js';
import { buildPolicyBundle, buildTrustMaterial, signDocument } from '../../pkg/bundle/index.js';
import {
  configFileBuilder,
  createLogger,
  keyBundleSigner,
  startBundleServer,
  type BundleServer,
} from '../../pkg/runtime/index.js';
import { spawnAdapter, type AdapterProcess } from '../helpers/adapter-process.js';
import { sendSigned, startUpstream, type Upstream } from '../helpers/adapter.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { startNginx, type NginxServer } from '../helpers/nginx.js';
import { requireServer } from '../helpers/redis.js';
import { NGINX } from '../helpers/nginx.js';

// Issue 15 acceptance, over loopback with real processes: one bundle server (in this process, so
// that a restart can be given another clock or key), three adapter processes pulling from it with
// long-polls, then an nginx serving signed static files. Short freshness limits (seconds).
//
// Routes: orders.search is `bounded` with a 6 s limit; orders.live is `realtime` (3 s);
// orders.archive is `offline-ok`.

const now = () => Math.floor(Date.now() / 1000);
const LIMIT = 6;
const ISSUER = 'https://bundles.example';
const KID = 'bundle-signer-1';

let world: World;
let upstream: Upstream;
let dir: string;
let trustConfig: string;
let policyConfig: string;
let signer: SigningKey;
let server: BundleServer | undefined;
let port: number;
const adapters: AdapterProcess[] = [];
const stateDirs: string[] = [];

function policyConfigDoc(extra: { revocations?: unknown[]; notes?: boolean } = {}) {
  const routes = (world.policyDoc.route_groups as { routes: Record<string, unknown>[] }[])[0]!.routes.map(
    (r) => {
      const route = { ...r };
      if (route.route_id === 'orders.live') route.max_staleness_seconds = 3;
      return route;
    },
  );
  if (extra.notes)
    routes.push({
      route_id: 'notes.list',
      method: 'GET',
      path_template: '/v1/notes',
      allowed_sources: [
        {
          source_type: 'software_jwks',
          issuer: 'https://issuer.example/software-jwks',
          trust_domain: 'example.local',
          subject_exact: 'service:orders-client',
        },
      ],
    });
  return {
    trust_domain: 'example.local',
    apis: world.policyDoc.apis,
    route_groups: [{ route_group_id: 'orders', api_id: 'orders-api', routes }],
    defaults: { required_key_binding: 'software', freshness_class: 'bounded', max_staleness_seconds: LIMIT },
    revocations: extra.revocations ?? [],
    policy_version: extra.notes ? 'v2' : 'v1',
  };
}

/** Replace a file atomically (as an editor or a deploy does). */
function writeAtomic(file: string, value: unknown): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(value));
  renameSync(`${file}.tmp`, file);
}

async function startServer(options: { key?: SigningKey; clockOffset?: number } = {}) {
  server = await startBundleServer({
    listen: `127.0.0.1:${port}`,
    signer: keyBundleSigner(options.key ?? signer, { issuer: ISSUER, kid: KID }),
    build: configFileBuilder({ trustConfig, policyConfig }),
    watchFiles: [trustConfig, policyConfig],
    log: createLogger('silent'),
    ...(options.clockOffset !== undefined ? { clock: () => now() + options.clockOffset! } : {}),
  });
  return server;
}

const req = (spec: { target?: string; routeId?: string } = {}) =>
  signed(world, { claims: { iat: now() }, ...spec });
const search = () => req();
const notes = () => req({ target: '/v1/notes', routeId: 'notes.list' });
const archive = () => req({ target: '/v1/orders/archive', routeId: 'orders.archive' });

async function status(a: AdapterProcess, s: Awaited<ReturnType<typeof req>>) {
  const r = await sendSigned(a.base, s);
  return r.status === 200 ? 'allow' : (JSON.parse(r.body) as { reason: string }).reason;
}

async function metric(a: AdapterProcess, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${a.admin}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (pattern.test(line)) sum += Number(line.split(' ').pop());
  return sum;
}

async function readyz(a: AdapterProcess) {
  const r = await fetch(`${a.admin}/readyz`);
  return {
    status: r.status,
    body: (await r.json()) as {
      checks: Record<string, string>;
      bundles: Record<string, Record<string, unknown>>;
    },
  };
}

/** Milliseconds until `check` holds (polled every 50 ms, at most `ms`). */
async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function adapterArgs(stateDir: string, base = `http://127.0.0.1:${port}`) {
  return [
    '--upstream',
    upstream.url,
    '--trust-material',
    `${base}/trust-material.json`,
    '--policy-bundle',
    `${base}/policy-bundle.json`,
    '--bundle-public-key',
    signer.publicKey.x,
    '--bundle-state-dir',
    stateDir,
    '--replay-journal',
    'off',
    '--reload-interval-ms',
    '500',
    '--log-level',
    'info',
  ];
}

beforeAll(async () => {
  world = await createWorld({ issuedAt: now() - 60 });
  signer = await generateSigningKey();
  upstream = await startUpstream();
  dir = mkdtempSync(path.join(tmpdir(), 'tp-distribution-'));
  trustConfig = path.join(dir, 'trust.config.json');
  policyConfig = path.join(dir, 'policy.config.json');
  writeAtomic(trustConfig, { trust_domain: 'example.local', issuers: world.trustDoc.issuers });
  writeAtomic(policyConfig, policyConfigDoc());
  const { freePort } = await import('../helpers/redis.js');
  port = await freePort();
  await startServer();
  for (let i = 0; i < 3; i++) {
    const stateDir = path.join(dir, `state-${i}`);
    stateDirs.push(stateDir);
    adapters.push(await spawnAdapter(adapterArgs(stateDir)));
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(adapters.map((a) => a.stop()));
  await server?.close();
  await upstream?.close();
});

describe('bundle server → three adapters (long-poll)', () => {
  it('a policy change and a revocation are enforced by all three within 2 s (requests and metrics)', async () => {
    for (const a of adapters) expect(await status(a, await search())).toBe('allow');
    for (const a of adapters) expect(await status(a, await notes())).toBe('bundle_route_missing');

    // Policy change: a new route.
    writeAtomic(policyConfig, policyConfigDoc({ notes: true }));
    const changed = await Promise.all(
      adapters.map((a) =>
        until('notes.list allowed', async () => (await status(a, await notes())) === 'allow', 5_000),
      ),
    );
    // Revocation of the caller's subject.
    const revoked = policyConfigDoc({
      notes: true,
      revocations: [{ kind: 'subject', value: 'service:orders-client' }],
    });
    writeAtomic(policyConfig, revoked);
    const revokedMs = await Promise.all(
      adapters.map((a) =>
        until('revoked', async () => (await status(a, await search())) === 'revoked', 5_000),
      ),
    );
    console.log(
      `policy change enforced after ${changed.join(', ')} ms; revocation after ${revokedMs.join(', ')} ms`,
    );
    for (const ms of [...changed, ...revokedMs]) expect(ms).toBeLessThan(2_000);
    // Every adapter shows the server's document and counts the fetches.
    const issued = server!.current().policy.issuedAt;
    for (const a of adapters) {
      expect(await metric(a, /^trustplane_bundle_issued_timestamp_seconds\{bundle="policy"\}/)).toBe(issued);
      expect(
        await metric(a, /^trustplane_bundle_fetches_total\{bundle="policy",result="success"/),
      ).toBeGreaterThanOrEqual(2);
      expect(
        await metric(a, /^trustplane_decisions_total\{outcome="deny",reason="revoked"/),
      ).toBeGreaterThanOrEqual(1);
    }
    writeAtomic(policyConfig, policyConfigDoc());
    for (const a of adapters)
      await until('revocation lifted', async () => (await status(a, await search())) === 'allow', 5_000);
  }, 60_000);

  it('server killed: serve until each route’s limit, readiness false before, then stale_bundle_fail_closed; a restarted adapter starts from its persisted documents', async () => {
    await server!.close();
    server = undefined;
    const killedAt = Date.now();
    const a = adapters[0]!;
    let notReadyAt: number | undefined;
    let staleAt: number | undefined;
    let liveStaleAt: number | undefined;
    await until(
      'bounded route stale',
      async () => {
        const r = await readyz(a);
        if (r.status === 503 && notReadyAt === undefined) notReadyAt = Date.now();
        if (liveStaleAt === undefined) {
          const live = await status(a, await req({ target: '/v1/orders/live', routeId: 'orders.live' }));
          if (live === 'stale_bundle_fail_closed') liveStaleAt = Date.now();
        }
        const s = await status(a, await search());
        if (s === 'stale_bundle_fail_closed') staleAt = Date.now();
        else expect(s).toBe('allow');
        return staleAt !== undefined;
      },
      15_000,
    );
    console.log(
      `server killed: not ready after ${notReadyAt! - killedAt} ms, realtime denied after ${liveStaleAt! - killedAt} ms, bounded denied after ${staleAt! - killedAt} ms`,
    );
    expect(notReadyAt).toBeDefined();
    expect(notReadyAt!).toBeLessThan(staleAt!);
    expect(liveStaleAt!).toBeLessThanOrEqual(staleAt!);
    // offline-ok keeps serving.
    for (const x of adapters) expect(await status(x, await archive())).toBe('allow');
    expect((await readyz(a)).body.checks.bundles).toBe('stale');
    expect(
      await metric(a, /^trustplane_bundle_fetches_total\{bundle="policy",result="failure"/),
    ).toBeGreaterThan(0);

    // Restart adapter 0 while the server is still down: it starts from its persisted documents.
    await a.stop();
    const restarted = await spawnAdapter(adapterArgs(stateDirs[0]!), { waitFor: 'healthy' });
    adapters[0] = restarted;
    expect(restarted.stderr()).toContain('starting from the persisted');
    expect(await status(restarted, await archive())).toBe('allow');
    expect(await status(restarted, await search())).toBe('stale_bundle_fail_closed');
  }, 60_000);

  it('server back with an older document or another key: the last good one stays, the failure is counted; then recovery', async () => {
    const lastGood = await metric(
      adapters[1]!,
      /^trustplane_bundle_issued_timestamp_seconds\{bundle="policy"\}/,
    );
    // Rollback: the server's clock is 100 s behind.
    await startServer({ clockOffset: -100 });
    for (const a of adapters)
      await until(
        'rollback refused',
        async () =>
          (await metric(
            a,
            /^trustplane_bundle_fetches_total\{bundle="policy",result="failure",reason="bundle_conflict"\}/,
          )) > 0,
      );
    for (const a of adapters.slice(1))
      expect(await metric(a, /^trustplane_bundle_issued_timestamp_seconds\{bundle="policy"\}/)).toBe(
        lastGood,
      );
    // Across a restart too: adapter 2 compares its persisted copy with the older document served.
    await adapters[2]!.stop();
    adapters[2] = await spawnAdapter(adapterArgs(stateDirs[2]!), { waitFor: 'healthy' });
    expect(adapters[2].stderr()).toContain('older than the persisted one');
    expect(await metric(adapters[2], /^trustplane_bundle_issued_timestamp_seconds\{bundle="policy"\}/)).toBe(
      lastGood,
    );
    await server!.close();
    // Another key.
    await startServer({ key: await generateSigningKey() });
    for (const a of adapters)
      await until(
        'other key refused',
        async () =>
          (await metric(
            a,
            /^trustplane_bundle_fetches_total\{bundle="policy",result="failure",reason="bundle_signature_invalid"\}/,
          )) > 0,
      );
    for (const a of adapters.slice(1))
      expect(await metric(a, /^trustplane_bundle_issued_timestamp_seconds\{bundle="policy"\}/)).toBe(
        lastGood,
      );
    for (const a of adapters) expect(await status(a, await search())).toBe('stale_bundle_fail_closed');
    await server!.close();
    // The real publisher again: every adapter is fresh and ready.
    await startServer();
    for (const a of adapters) {
      await until('fresh again', async () => (await readyz(a)).status === 200);
      expect(await status(a, await search())).toBe('allow');
    }
  }, 60_000);
});

describe('nginx serving signed static files (ETag polling, no long-poll)', () => {
  if (!requireServer('nginx', NGINX)) return;
  let nginx: NginxServer;
  let adapter: AdapterProcess;
  let root: string;

  async function publish(policy: Record<string, unknown>, key: SigningKey = signer, issuedAt = now()) {
    const doc = await signDocument(buildPolicyBundle(policy as never, issuedAt), key, {
      issuer: ISSUER,
      kid: KID,
    });
    writeAtomic(path.join(root, 'policy-bundle.json'), doc);
    return issuedAt;
  }

  beforeAll(async () => {
    root = path.join(dir, 'static');
    mkdirSync(root, { recursive: true });
    const trust = await signDocument(
      buildTrustMaterial({ trust_domain: 'example.local', issuers: world.trustDoc.issuers } as never, now()),
      signer,
      { issuer: ISSUER, kid: KID },
    );
    writeAtomic(path.join(root, 'trust-material.json'), trust);
    await publish({
      ...policyConfigDoc(),
      defaults: { required_key_binding: 'software', max_staleness_seconds: 600 },
    });
    nginx = await startNginx(`server { listen __LISTEN__; location / { root ${root}; etag on; } }`);
    adapter = await spawnAdapter(adapterArgs(path.join(dir, 'state-nginx'), nginx.base));
  }, 60_000);
  afterAll(async () => {
    await adapter?.stop();
    await nginx?.stop();
  });

  it('a revocation is picked up by polling; an older file or another key is refused and counted', async () => {
    expect(await status(adapter, await search())).toBe('allow');
    await new Promise((r) => setTimeout(r, 1_100));
    const good = await publish({
      ...policyConfigDoc({ revocations: [{ kind: 'subject', value: 'service:orders-client' }] }),
      defaults: { required_key_binding: 'software', max_staleness_seconds: 600 },
    });
    const ms = await until(
      'revoked via nginx',
      async () => (await status(adapter, await search())) === 'revoked',
      5_000,
    );
    console.log(`nginx: revocation enforced after ${ms} ms (500 ms polling)`);
    await publish({ ...policyConfigDoc(), defaults: { max_staleness_seconds: 600 } }, signer, good - 100);
    await until(
      'rollback counted',
      async () =>
        (await metric(
          adapter,
          /^trustplane_bundle_fetches_total\{bundle="policy",result="failure",reason="bundle_conflict"\}/,
        )) > 0,
    );
    // nginx's ETag is the file's mtime (seconds) and size: a second write within the same second
    // and of the same size would look unchanged to every poller (docs/operations.md).
    await new Promise((r) => setTimeout(r, 1_100));
    await publish(
      { ...policyConfigDoc(), defaults: { max_staleness_seconds: 600 } },
      await generateSigningKey(),
      good + 5,
    );
    await until(
      'other key counted',
      async () =>
        (await metric(
          adapter,
          /^trustplane_bundle_fetches_total\{bundle="policy",result="failure",reason="bundle_signature_invalid"\}/,
        )) > 0,
    );
    expect(await metric(adapter, /^trustplane_bundle_issued_timestamp_seconds\{bundle="policy"\}/)).toBe(
      good,
    );
    expect(await status(adapter, await search())).toBe('revoked');
  }, 60_000);
});
