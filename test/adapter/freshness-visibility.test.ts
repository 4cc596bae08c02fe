import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveAdapterConfig, startAdapter, type Adapter } from '../../pkg/adapter/index.js';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { CLI, bundleArgs } from '../helpers/adapter-process.js';
import { writeWorld } from '../helpers/adapter.js';
import { NOW, createWorld, type World } from '../helpers/fixture.js';

// Issue 14 point 3, "freshness you can see": `/readyz`, `adapter --check` and `bundle verify`
// report each bundle's age, its limit and the time left; readiness turns false (`stale_soon`)
// when a bounded route is within min(60 s, 20 % of its limit) of serving only
// stale_bundle_fail_closed, and the adapter logs one warning before that.

let running: Adapter | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

/** The test world's policy issued at NOW - 60; every route bounded to `limit` seconds. */
function boundedWorld(limit: number): Promise<World> {
  return createWorld({
    policyPatch: (doc) => {
      doc.default_max_staleness_seconds = limit;
      for (const group of doc.route_groups as { routes: Record<string, unknown>[] }[])
        for (const route of group.routes) delete route.freshness_class;
    },
  });
}

async function start(world: World, clock: () => number, logs?: string[]) {
  const files = writeWorld(world);
  const config = resolveAdapterConfig({
    flags: {
      listen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      trustMaterial: files.trustMaterial,
      policyBundle: files.policyBundle,
      trustMaterialPublicKeys: [files.signerKey],
      policyBundlePublicKeys: [files.signerKey],
      replayJournal: path.join(files.dir, 'replay.journal'),
      reloadIntervalMs: 0,
      shutdownTimeoutMs: 1_000,
      upstream: 'http://127.0.0.1:9',
    },
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs?.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  running = await startAdapter(config, {
    clock,
    audit: new MemoryAuditSink(),
    log: createLogger(logs ? 'info' : 'silent', sink),
  });
  const url = `http://127.0.0.1:${running.adminAddress!.port}/readyz`;
  return {
    files,
    readyz: async () => {
      const res = await fetch(url);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
  };
}

describe('freshness you can see: /readyz', () => {
  it('reports age, limit and time left, and turns false (`stale_soon`) within the margin', async () => {
    let now = NOW;
    const { readyz } = await start(await boundedWorld(300), () => now);
    const fresh = await readyz();
    expect(fresh.status).toBe(200);
    expect(fresh.body.bundles).toMatchObject({
      policy: {
        issued_at: NOW - 60,
        age_seconds: 60,
        limit_seconds: 300,
        time_left_seconds: 240,
        margin_seconds: 60,
        state: 'fresh',
      },
      trust_material: { issued_at: NOW - 60, age_seconds: 60, state: 'fresh' },
    });
    // 59 s left of 300: inside the margin (min(60, 20 % of 300) = 60).
    now = NOW - 60 + 241;
    const soon = await readyz();
    expect(soon.status).toBe(503);
    expect(soon.body).toMatchObject({
      ready: false,
      checks: { bundles: 'stale_soon' },
      bundles: { policy: { age_seconds: 241, time_left_seconds: 59, state: 'stale_soon' } },
    });
    now = NOW - 60 + 301;
    const stale = await readyz();
    expect(stale.body).toMatchObject({
      checks: { bundles: 'stale' },
      bundles: { policy: { time_left_seconds: -1, state: 'stale' } },
    });
  });

  it('the margin is 20 % of a short limit: 10 s limit, not ready with 2 s left', async () => {
    let now = NOW - 60 + 7;
    const { readyz } = await start(
      await createWorld({
        policyPatch: (doc) => {
          doc.default_max_staleness_seconds = 10;
          doc.issued_at = NOW - 60;
        },
      }),
      () => now,
    );
    // 3 s left of 10: more than the 2 s margin.
    expect((await readyz()).body).toMatchObject({
      checks: { bundles: 'ok' },
      bundles: { policy: { limit_seconds: 10, margin_seconds: 2, time_left_seconds: 3 } },
    });
    now += 1;
    expect((await readyz()).body).toMatchObject({ checks: { bundles: 'stale_soon' } });
  });

  it('the adapter logs one warning before a bounded route goes stale, not one per check', async () => {
    let now = NOW;
    const logs: string[] = [];
    const { readyz } = await start(await boundedWorld(300), () => now, logs);
    now = NOW - 60 + 250;
    // The freshness watch looks every second; readiness probes must not add warnings.
    const deadline = Date.now() + 10_000;
    while (!logs.some((l) => l.includes('about to go stale')) && Date.now() < deadline) {
      await readyz();
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 2_500));
    const warnings = logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.level === 'warn');
    const aboutStale = warnings.filter((l) => String(l.msg).includes('about to go stale'));
    expect(aboutStale).toHaveLength(1);
    expect(aboutStale[0]).toMatchObject({
      bundle: 'policy',
      age_seconds: 250,
      limit_seconds: 300,
      time_left_seconds: 50,
    });
  });
});

describe('freshness you can see: the CLI', () => {
  it('`bundle verify` and `adapter --check` print age, limit and time left', async () => {
    const world = await boundedWorld(300);
    const files = writeWorld(world);
    const now = String(NOW);
    const verify = spawnSync(
      process.execPath,
      [
        CLI,
        'bundle',
        'verify',
        '--bundle',
        files.policyBundle,
        '--public-key',
        files.signerKey,
        '--now',
        now,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(verify.status, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({
      valid: true,
      freshness: { age_seconds: 60, limit_seconds: 300, time_left_seconds: 240, state: 'fresh' },
    });
    const stale = spawnSync(
      process.execPath,
      [
        CLI,
        'bundle',
        'verify',
        '--bundle',
        files.policyBundle,
        '--public-key',
        files.signerKey,
        '--now',
        String(NOW + 400),
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(JSON.parse(stale.stdout)).toMatchObject({
      freshness: { state: 'stale', time_left_seconds: -160 },
    });

    const check = spawnSync(
      process.execPath,
      [CLI, 'adapter', '--check', '--upstream', 'http://127.0.0.1:9', ...bundleArgs(files)],
      { encoding: 'utf8', timeout: 30_000 },
    );
    // The real clock: the world was issued long ago (NOW is 2026-01-01), so the policy is stale.
    expect(check.stdout).toMatch(/policy\s+.*age \d+ s.*limit 300 s.*STALE/);
    expect(check.stdout).toMatch(/trust_material\s+.*age \d+ s/);
    expect(check.status).toBe(1);
  });
});
