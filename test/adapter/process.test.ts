import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDocument } from '../../pkg/bundle/index.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { sendSigned, startUpstream, writeWorld, type Upstream } from '../helpers/adapter.js';
import { bundleArgs, CLI, spawnAdapter, type AdapterProcess } from '../helpers/adapter-process.js';
import { metricValue, parsePrometheus } from '../helpers/prometheus.js';
import { REDIS_SERVER, requireServer, startRedis, type RedisServer } from '../helpers/redis.js';

// These tests run the built CLI as real processes, so they use the real clock.
const now = () => Math.floor(Date.now() / 1000);

let world: World;
let upstream: Upstream;
let files: ReturnType<typeof writeWorld>;

beforeAll(async () => {
  world = await createWorld({ issuedAt: now() - 60 });
  upstream = await startUpstream();
  files = writeWorld(world);
});
afterAll(async () => {
  await upstream.close();
});

const common = () => ['--upstream', upstream.url, ...bundleArgs(files), '--log-level', 'warn'];

const fresh = () => signed(world, { claims: { iat: now() } });

/** Send the same signed request `n` times concurrently, spread over `bases`. */
async function race(bases: string[], n: number) {
  const s = await fresh();
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      sendSigned(bases[i % bases.length]!, s).then((r) => ({
        status: r.status,
        reason: r.status === 200 ? '' : (JSON.parse(r.body) as { reason: string }).reason,
      })),
    ),
  );
  return { s, statuses: results.map((r) => r.status), outcomes: results };
}

/**
 * The losers of a replay race: each is denied `jti_replay`, or, on a machine loaded enough that
 * the replay store or the adapter sheds load, refused with a retryable 503 (fail closed). Never a 2xx.
 */
function expectRaceLosers(outcomes: readonly { status: number; reason: string }[]): void {
  const losers = outcomes.filter((o) => o.status !== 200);
  const odd = losers.filter((o) => !(o.status === 401 && o.reason === 'jti_replay') && o.status !== 503);
  expect(odd).toEqual([]);
  // The store decides the race: most losers are jti_replay even on a loaded machine.
  expect(losers.filter((o) => o.reason === 'jti_replay').length).toBeGreaterThan(losers.length / 2);
}

describe('adapter process: memory store with journal', () => {
  it('a jti consumed before a SIGKILL is still denied after the restart; SIGTERM exits 0', async () => {
    const journal = path.join(files.dir, 'proc-replay.journal');
    const args = [
      ...common(),
      '--replay-journal',
      journal,
      '--replay-journal-fsync',
      'never',
      '--audit',
      path.join(files.dir, 'audit.jsonl'),
    ];
    const first = await spawnAdapter(args);
    const s = await fresh();
    expect((await sendSigned(first.base, s)).status).toBe(200);
    expect(await first.stop('SIGKILL')).toBe('SIGKILL');
    const second = await spawnAdapter(args);
    try {
      const replay = await sendSigned(second.base, s);
      expect([replay.status, JSON.parse(replay.body)]).toEqual([
        401,
        { allowed: false, reason: 'jti_replay' },
      ]);
      expect((await sendSigned(second.base, await fresh())).status).toBe(200);
    } finally {
      expect(await second.stop('SIGTERM')).toBe(0);
    }
    // One audit event per decision, across both processes, as JSON lines.
    const events = readFileSync(path.join(files.dir, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { decision: string; reason?: string });
    expect(events.map((e) => e.reason ?? e.decision)).toEqual(['allow', 'jti_replay', 'allow']);
    // Decision log lines carry no passport or proof.
    expect(second.stderr()).not.toContain(s.passport);
  });

  it('SIGHUP reloads a changed policy in a running process', async () => {
    const own = writeWorld(world);
    const p = await spawnAdapter([
      '--upstream',
      upstream.url,
      ...bundleArgs(own),
      '--replay-journal',
      'off',
      '--reload-interval-ms',
      '0',
      '--audit',
      path.join(own.dir, 'audit.jsonl'),
    ]);
    try {
      // A newer signed policy where the search route needs a hardware-bound key.
      const doc = structuredClone(world.policyDoc) as Record<string, unknown>;
      delete doc.signature;
      delete doc.signed_by;
      doc.issued_at = now() - 5;
      const groups = doc.route_groups as { routes: { route_id: string; required_key_binding?: string }[] }[];
      for (const r of groups[0]!.routes)
        if (r.route_id === 'orders.search') r.required_key_binding = 'hardware_local';
      const next = await signDocument(doc, world.bundleSigner, {
        issuer: 'https://bundles.example',
        kid: 'bundle-signer-1',
      });
      writeFileSync(own.policyBundle, JSON.stringify(next));
      p.child.kill('SIGHUP');
      const deadline = Date.now() + 5_000;
      while (!p.stderr().includes('"msg":"bundle reloaded"') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(p.stderr()).toContain('SIGHUP: reloading bundles');
      expect(p.stderr()).toContain('"msg":"bundle reloaded"');
      const res = await sendSigned(p.base, await fresh());
      expect([res.status, JSON.parse(res.body)]).toEqual([
        403,
        { allowed: false, reason: 'insufficient_key_binding' },
      ]);
    } finally {
      expect(await p.stop('SIGTERM')).toBe(0);
    }
  });

  it('refuses --workers 2 with the memory store: one clear config line, exit 2', () => {
    const r = spawnSync(process.execPath, [CLI, 'adapter', ...common(), '--workers', '2'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^trustplane: config: workers: more than one worker needs a shared replay store/m,
    );
  });

  it('reports every bad value on its own line and never echoes secrets', () => {
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'adapter',
        '--upstream',
        'ftp://x',
        '--max-body-bytes',
        '-5',
        '--replay-store',
        'redis',
        '--listen',
        'nope',
      ],
      {
        encoding: 'utf8',
        timeout: 20_000,
        env: { ...process.env, TRUSTPLANE_REDIS_URL: 'http://user:hunter2@localhost' },
      },
    );
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    for (const key of ['listen', 'upstream', 'trustMaterial', 'policyBundle', 'maxBodyBytes', 'redisUrl']) {
      expect(lines.some((l) => l.startsWith(`trustplane: config: ${key}:`))).toBe(true);
    }
    expect(r.stderr).not.toContain('hunter2');
  });

  it('the trustplane-adapter bin is the same command', () => {
    const bin = path.resolve('dist/cmd/trustplane-adapter/main.js');
    const help = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: trustplane-adapter/m);
    expect(help.stdout).toContain('Example:');
    const check = spawnSync(process.execPath, [bin, ...common(), '--check'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect([check.status, check.stdout.split('\n')[0]]).toEqual([0, 'configuration and bundles OK']);
  });

  it('--check validates the bundles and exits', () => {
    const ok = spawnSync(process.execPath, [CLI, 'adapter', ...common(), '--check'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect([ok.status, ok.stdout.split('\n')[0]]).toEqual([0, 'configuration and bundles OK']);
    expect(ok.stdout).toMatch(/^policy\s+issued .* age \d+ s {2}limit 300 s .* ok$/m);
    const wrongKey = spawnSync(
      process.execPath,
      [CLI, 'adapter', ...common().slice(0, -4), '--bundle-public-key', world.caller.publicKey.x, '--check'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(wrongKey.status).toBe(1);
    expect(wrongKey.stderr).toMatch(/^trustplane: bundle_signature_invalid:/);
  });
});

describe('adapter processes sharing a real Redis', () => {
  if (!requireServer('redis-server', REDIS_SERVER)) return;

  let redis: RedisServer;
  let a: AdapterProcess;
  let b: AdapterProcess;

  beforeAll(async () => {
    redis = await startRedis();
    // Two instances: each writes its own ledger file (one writer per chain).
    const args = (name: string) => [
      ...common(),
      '--replay-store',
      'redis',
      '--audit',
      path.join(files.dir, `redis-audit-${name}.jsonl`),
      '--instance',
      `adapter-${name}`,
    ];
    const env = { TRUSTPLANE_REDIS_URL: redis.url };
    [a, b] = await Promise.all([spawnAdapter(args('a'), { env }), spawnAdapter(args('b'), { env })]);
  }, 30_000);
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  it('attack: replay race: 200 identical requests across two adapters, exactly one allowed', async () => {
    const before = upstream.requests.length;
    const { s, statuses, outcomes } = await race([a.base, b.base], 200);
    expect(statuses.filter((x) => x === 200)).toHaveLength(1);
    expectRaceLosers(outcomes);
    expect(upstream.requests.length).toBe(before + 1);
    expect(upstream.requests.at(-1)!.headers['x-trustplane-jti']).toBe(s.claims.jti);
  });

  it('Redis down: both adapters answer 503 replay_store_unavailable, never 2xx, and are not ready', async () => {
    await redis.kill();
    const before = upstream.requests.length;
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const s = await fresh();
      const res = await sendSigned(i % 2 === 0 ? a.base : b.base, s);
      statuses.push(res.status);
      expect(JSON.parse(res.body)).toEqual({ allowed: false, reason: 'replay_store_unavailable' });
    }
    expect(statuses.every((x) => x === 503)).toBe(true);
    expect(upstream.requests.length).toBe(before);
    for (const p of [a, b]) {
      const ready = await fetch(`${p.admin}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ ready: false, checks: { replay_store: 'unavailable' } });
      const m = parsePrometheus(await (await fetch(`${p.admin}/metrics`)).text());
      expect(metricValue(m, 'trustplane_replay_store_errors_total')).toBeGreaterThan(0);
    }
  });
});

describe('adapter with --workers 2 and a real Redis', () => {
  if (!requireServer('redis-server', REDIS_SERVER)) return;

  let redis: RedisServer;
  let p: AdapterProcess;
  beforeAll(async () => {
    redis = await startRedis();
    p = await spawnAdapter(
      [
        ...common(),
        '--replay-store',
        'redis',
        '--workers',
        '2',
        '--audit',
        path.join(files.dir, 'w-audit.jsonl'),
      ],
      {
        env: { TRUSTPLANE_REDIS_URL: redis.url },
      },
    );
  }, 30_000);
  afterAll(async () => {
    await p?.stop();
    await redis?.stop();
  });

  it('replay protection holds across workers and /metrics aggregates them', async () => {
    const { statuses } = await race([p.base], 100);
    expect(statuses.filter((x) => x === 200)).toHaveLength(1);
    expect(statuses.filter((x) => x === 401)).toHaveLength(99);
    const m = parsePrometheus(await (await fetch(`${p.admin}/metrics`)).text());
    expect(metricValue(m, 'trustplane_decisions_total')).toBe(100);
    expect(metricValue(m, 'trustplane_decisions_total', { outcome: 'deny', reason: 'jti_replay' })).toBe(99);
    const ready = await fetch(`${p.admin}/readyz`);
    expect(await ready.json()).toEqual({ ready: true, checks: { workers: '2/2' } });
  });

  it('SIGTERM drains every worker and exits 0', async () => {
    // The primary exits 0 only after every worker has drained and exited.
    expect(await p.stop('SIGTERM')).toBe(0);
  });
});
