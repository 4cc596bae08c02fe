import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveAdapterConfig, startAdapter, type Adapter } from '../../pkg/adapter/index.js';
import { HEALTHY, MemoryReplayStore, unhealthy, type ComponentHealth } from '../../pkg/authcore/index.js';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { NOW, createWorld, type World } from '../helpers/fixture.js';
import { writeWorld } from '../helpers/adapter.js';

// /readyz names the reason of each component that cannot serve (docs/operations.md, "Health and
// readiness"): bundles expired or stale for every route, a replay store or audit sink reporting
// itself unhealthy, a component that does not answer within 1 s, draining.

let running: Adapter | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

async function start(
  world: World,
  parts: {
    clock: () => number;
    replayStore?: MemoryReplayStore;
    audit?: MemoryAuditSink;
  },
): Promise<{ readyz: () => Promise<{ status: number; body: unknown }> }> {
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
  const adapter = await startAdapter(config, {
    clock: parts.clock,
    audit: parts.audit ?? new MemoryAuditSink(),
    log: createLogger('silent'),
    ...(parts.replayStore ? { replayStore: parts.replayStore } : {}),
  });
  running = adapter;
  const url = `http://127.0.0.1:${adapter.adminAddress!.port}/readyz`;
  return {
    readyz: async () => {
      const res = await fetch(url);
      // The bundles' age report is checked in freshness-visibility.test.ts.
      const { bundles: _ages, ...body } = (await res.json()) as Record<string, unknown>;
      return { status: res.status, body };
    },
  };
}

/** A memory audit sink that reports what it is told to. */
class ReportingAuditSink extends MemoryAuditSink {
  state: ComponentHealth | 'hang' = HEALTHY;
  health(): ComponentHealth | Promise<ComponentHealth> {
    return this.state === 'hang' ? new Promise<ComponentHealth>(() => undefined) : this.state;
  }
}

/** A memory replay store that reports what it is told to. */
class ReportingReplayStore extends MemoryReplayStore {
  state: ComponentHealth | Error = HEALTHY;
  async health(): Promise<ComponentHealth> {
    if (this.state instanceof Error) throw this.state;
    return this.state;
  }
}

describe('/readyz: bundles', () => {
  it('ready while one route is fresh; `stale` once every route fails its freshness class', async () => {
    // Policy issued at NOW - 60, every route bounded to the default 300 s.
    const world = await createWorld({
      policyPatch: (doc) => {
        for (const group of doc.route_groups as { routes: Record<string, unknown>[] }[])
          for (const route of group.routes) delete route.freshness_class;
      },
    });
    let now = NOW;
    const { readyz } = await start(world, { clock: () => now });
    expect(await readyz()).toEqual({
      status: 200,
      body: { ready: true, checks: { bundles: 'ok', replay_store: 'ok' } },
    });
    now = NOW - 60 + 301;
    expect(await readyz()).toEqual({
      status: 503,
      body: { ready: false, checks: { bundles: 'stale', replay_store: 'ok' } },
    });
  });

  it('an offline-ok route no longer keeps the adapter ready once a bounded route is stale', async () => {
    const world = await createWorld({
      policyPatch: (doc) => {
        const groups = doc.route_groups as { routes: Record<string, unknown>[] }[];
        groups[0]!.routes[0]!.freshness_class = 'offline-ok';
      },
    });
    const { readyz } = await start(world, { clock: () => NOW + 86_400 });
    // Issue 14: readiness follows the bounded routes, which now deny stale_bundle_fail_closed.
    expect(await readyz()).toMatchObject({ status: 503, body: { checks: { bundles: 'stale' } } });
  });

  it('`expired` once the policy bundle has expired, whatever the routes allow', async () => {
    const world = await createWorld({
      policyPatch: (doc) => {
        doc.expires_at = NOW + 600;
        doc.default_freshness_class = 'offline-ok';
      },
    });
    let now = NOW;
    const { readyz } = await start(world, { clock: () => now });
    expect((await readyz()).status).toBe(200);
    now = NOW + 600;
    expect(await readyz()).toEqual({
      status: 503,
      body: { ready: false, checks: { bundles: 'expired', replay_store: 'ok' } },
    });
  });
});

describe('/readyz: components report their own reason', () => {
  it('the replay store and audit sink reasons are shown as reported, and recovery is seen', async () => {
    const world = await createWorld();
    const replayStore = new ReportingReplayStore();
    const audit = new ReportingAuditSink();
    const { readyz } = await start(world, { clock: () => NOW, replayStore, audit });
    expect(await readyz()).toEqual({
      status: 200,
      body: { ready: true, checks: { bundles: 'ok', replay_store: 'ok', audit: 'ok' } },
    });
    replayStore.state = unhealthy('amnesia');
    audit.state = unhealthy('backlog_over_limit');
    expect(await readyz()).toEqual({
      status: 503,
      body: {
        ready: false,
        checks: { bundles: 'ok', replay_store: 'amnesia', audit: 'backlog_over_limit' },
      },
    });
    replayStore.state = new Error('connection refused');
    audit.state = HEALTHY;
    expect(await readyz()).toEqual({
      status: 503,
      body: { ready: false, checks: { bundles: 'ok', replay_store: 'unavailable', audit: 'ok' } },
    });
    replayStore.state = HEALTHY;
    expect((await readyz()).status).toBe(200);
  });

  it('a component that does not answer counts as `unavailable` after 1 s, and does not hold /readyz', async () => {
    const world = await createWorld();
    const audit = new ReportingAuditSink();
    audit.state = 'hang';
    const { readyz } = await start(world, { clock: () => NOW, audit });
    const started = Date.now();
    expect(await readyz()).toEqual({
      status: 503,
      body: { ready: false, checks: { bundles: 'ok', replay_store: 'ok', audit: 'unavailable' } },
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});
