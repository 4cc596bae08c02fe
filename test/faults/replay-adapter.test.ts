import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { resolveAdapterConfig, startAdapter, type AdapterConfigInput } from '../../pkg/adapter/index.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { startUpstream, sendSigned, writeWorld, type Upstream } from '../helpers/adapter.js';
import { scrape } from '../helpers/faults.js';
import { createWorld, NOW, signed, type World } from '../helpers/fixture.js';
import { metricValue } from '../helpers/prometheus.js';
import { REDIS_SERVER, requireServer, startRedis, type RedisServer } from '../helpers/redis.js';

// Issue 18, points 2 and 8 through the adapter itself: two adapter replicas on one Redis that is
// restarted empty, and one adapter whose replay journal is damaged or cannot be written. What a
// caller, an orchestrator and an operator see: HTTP answers, /readyz, metrics, log lines.

const N = 200;
/** Passports of 100 s under maxLifetimeSeconds 120: the window (120 + 2 × 30 s skew) ends before the bundles go stale. */
const TTL = 100;
const MAX_LIFETIME = 120;
const WINDOW = MAX_LIFETIME + 2 * 30;

interface Replica {
  readonly base: string;
  readonly admin: string;
  readonly lines: Array<Record<string, unknown>>;
  readonly journal: string;
  close(): Promise<void>;
}

let world: World;
let upstream: Upstream;
const running: Replica[] = [];

beforeAll(async () => {
  world = await createWorld();
  upstream = await startUpstream();
});
afterAll(async () => {
  await upstream?.close();
});
afterEach(async () => {
  for (const r of running.splice(0)) await r.close();
});

async function replica(clock: { now: number }, config: Partial<AdapterConfigInput>): Promise<Replica> {
  const files = writeWorld(world);
  const lines: Array<Record<string, unknown>> = [];
  const journal = path.join(files.dir, 'replay.journal');
  const resolved = resolveAdapterConfig({
    flags: {
      listen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      upstream: upstream.url,
      trustMaterial: files.trustMaterial,
      policyBundle: files.policyBundle,
      trustMaterialPublicKeys: [files.signerKey],
      policyBundlePublicKeys: [files.signerKey],
      replayJournal: journal,
      reloadIntervalMs: 0,
      shutdownTimeoutMs: 2_000,
      ...config,
    },
  });
  const log = createLogger('info', { write: (line: string) => lines.push(JSON.parse(line) as never) });
  const adapter = await startAdapter(resolved, { clock: () => clock.now, audit: new MemoryAuditSink(), log });
  const r: Replica = {
    base: `http://127.0.0.1:${adapter.address.port}`,
    admin: `http://127.0.0.1:${adapter.adminAddress!.port}`,
    lines,
    journal,
    close: () => adapter.close(),
  };
  running.push(r);
  return r;
}

async function readyz(
  r: Replica,
): Promise<{ status: number; body: { ready: boolean; checks: Record<string, string> } }> {
  const res = await fetch(`${r.admin}/readyz`, { signal: AbortSignal.timeout(5_000) });
  return {
    status: res.status,
    body: (await res.json()) as { ready: boolean; checks: Record<string, string> },
  };
}

type Signed = Awaited<ReturnType<typeof signed>>;

async function passports(n: number, iat: number): Promise<Signed[]> {
  return Promise.all(Array.from({ length: n }, () => signed(world, { claims: { iat }, ttl: TTL })));
}

/** Send each request once (8 at a time); count answers by `status reason`. */
async function sendAll(r: Replica, requests: readonly Signed[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < requests.length) {
        const s = requests[next++]!;
        const res = await sendSigned(r.base, s);
        const key = `${res.status} ${String(res.headers['x-trustplane-reason'] ?? 'allow')}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

const errorLines = (r: Replica) => r.lines.filter((l) => l.level === 'error');

describe('fault: Redis restarted empty under two adapter replicas', () => {
  if (!requireServer('redis-server', REDIS_SERVER)) return;
  let redis: RedisServer | undefined;
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });

  it('the same 200 requests replayed to the other replica: 0 reach the upstream, 200 × 503 replay_store_amnesia; both unready (amnesia), one error line each, metrics; served again after the window', async () => {
    redis = await startRedis();
    const clock = { now: NOW };
    const config = {
      replayStore: 'redis',
      redisUrl: redis.url,
      redisCheckIntervalMs: 200,
      maxLifetimeSeconds: MAX_LIFETIME,
    } as const;
    const a = await replica(clock, config);
    const b = await replica(clock, config);
    const requests = await passports(N, NOW);
    expect(await sendAll(a, requests)).toEqual({ '200 allow': N });
    const hits = upstream.requests.length;

    const port = redis.port;
    await redis.kill();
    redis = await startRedis({ port });
    // both replicas reconnect (capped backoff) and check the sentinel on reconnection
    for (const r of [a, b]) {
      await expect
        .poll(async () => (await readyz(r)).body.checks.replay_store, { timeout: 10_000, interval: 50 })
        .toBe('amnesia');
    }

    clock.now = NOW + 5;
    const replay = await sendAll(b, requests);
    console.log(`replayed through the other replica: ${JSON.stringify(replay)}`);
    expect(replay).toEqual({ '503 replay_store_amnesia': N });
    expect(upstream.requests.length).toBe(hits);
    for (const r of [a, b]) {
      expect(await readyz(r)).toEqual({
        status: 503,
        body: {
          ready: false,
          checks: { bundles: 'ok', replay_store: 'amnesia' },
          bundles: expect.any(Object),
        },
      });
      const errors = errorLines(r);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ store: 'redis', msg: expect.stringContaining('lost consumed jtis') });
      expect(JSON.stringify(r.lines)).not.toContain(redis.url);
      const samples = await scrape(r.admin);
      expect(metricValue(samples, 'trustplane_replay_amnesia_total', { store: 'redis' })).toBe(1);
      const until = metricValue(samples, 'trustplane_replay_fail_closed_until_seconds');
      expect(until).toBeGreaterThanOrEqual(NOW + WINDOW);
      expect(until).toBeLessThanOrEqual(NOW + 5 + WINDOW);
    }

    // After the window: new passports are served; the old ones have long expired.
    clock.now = NOW + 5 + WINDOW + 1;
    // The replay store is ready again (the bundles, signed at NOW - 60, are past a bounded limit by
    // now, which readiness reports on its own: checks.bundles).
    for (const r of [a, b]) expect((await readyz(r)).body.checks.replay_store).toBe('ok');
    const fresh = await passports(20, clock.now);
    expect(await sendAll(b, fresh)).toEqual({ '200 allow': 20 });
    expect(await sendAll(a, fresh)).toEqual({ '401 jti_replay': 20 });
    expect(await sendAll(a, requests.slice(0, 5))).toEqual({ '401 passport_expired': 5 });
  }, 60_000);

  it('an adapter does not start on a Redis that can evict jti keys, unless told to', async () => {
    redis = await startRedis({ args: ['--maxmemory-policy', 'volatile-lru'] });
    const clock = { now: NOW };
    await expect(replica(clock, { replayStore: 'redis', redisUrl: redis.url })).rejects.toThrow(
      /maxmemory-policy volatile-lru.*noeviction/,
    );
    const r = await replica(clock, { replayStore: 'redis', redisUrl: redis.url, redisAllowEviction: true });
    expect(r.lines.filter((l) => l.level === 'warn' && l.policy === 'volatile-lru')).toHaveLength(1);
    expect((await readyz(r)).status).toBe(200);
  }, 30_000);
});

describe('fault: the memory store journal is damaged or cannot be written', () => {
  it('a flipped byte in the journal: after the restart the 200 replays get 503 replay_store_amnesia, /readyz says amnesia, one error line', async () => {
    const clock = { now: NOW };
    const first = await replica(clock, {});
    const requests = await passports(N, NOW);
    expect(await sendAll(first, requests)).toEqual({ '200 allow': N });
    await first.close();
    running.splice(running.indexOf(first), 1);
    const data = readFileSync(first.journal);
    data[data.length - 12] = data[data.length - 12]! ^ 0x04; // inside the last record
    writeFileSync(first.journal, data);

    clock.now = NOW + 5;
    const second = await replica(clock, { replayJournal: first.journal });
    expect(await sendAll(second, requests)).toEqual({ '503 replay_store_amnesia': N });
    expect(await readyz(second)).toEqual({
      status: 503,
      body: { ready: false, checks: { bundles: 'ok', replay_store: 'amnesia' }, bundles: expect.any(Object) },
    });
    expect(errorLines(second)).toEqual([
      expect.objectContaining({
        store: 'journal',
        cause: 'damaged_records',
        msg: expect.stringContaining('damaged'),
      }),
    ]);
    const samples = await scrape(second.admin);
    expect(metricValue(samples, 'trustplane_replay_amnesia_total', { store: 'journal' })).toBe(1);
  }, 30_000);

  it('a journal that cannot be written: 503 replay_store_unavailable and /readyz journal_write_failed', async () => {
    const clock = { now: NOW };
    const r = await replica(clock, {});
    expect(await sendAll(r, await passports(1, NOW))).toEqual({ '200 allow': 1 });
    // Swap the journal's descriptor for /dev/full (every write fails with ENOSPC, like a full disk).
    const target = realpathSync(r.journal);
    const fds = readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === target;
      } catch {
        return false;
      }
    });
    expect(fds).toHaveLength(1);
    const fd = Number(fds[0]);
    closeSync(fd);
    expect(openSync('/dev/full', 'a')).toBe(fd);
    expect(await sendAll(r, await passports(3, NOW))).toEqual({ '503 replay_store_unavailable': 3 });
    expect(await readyz(r)).toEqual({
      status: 503,
      body: {
        ready: false,
        checks: { bundles: 'ok', replay_store: 'journal_write_failed' },
        bundles: expect.any(Object),
      },
    });
  }, 30_000);
});
