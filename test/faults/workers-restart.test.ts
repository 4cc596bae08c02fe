import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startUpstream, writeWorld, type Upstream } from '../helpers/adapter.js';
import { bundleArgs, spawnAdapter, type AdapterProcess } from '../helpers/adapter-process.js';
import { sleep, waitFor } from '../helpers/faults.js';
import { createWorld, type World } from '../helpers/fixture.js';
import { freePort, REDIS_SERVER, requireServer, startRedis, type RedisServer } from '../helpers/redis.js';

// `--workers 2 --replay-store redis` as real processes while Redis is down: a worker that cannot
// start exits non-zero, the primary restarts it with a doubling backoff (logged), /healthz turns
// 503 `workers_down` once a slot has been down past workerDownHealthLimitMs, and once Redis is
// back the adapter is ready and healthy again within a bound. No process is left behind.

const HEALTH_LIMIT_MS = 3_000;
const OUTAGE_MS = 5_000;
/** After Redis returns: the next restart is at most one backoff step (≤ 8 s here) away. */
const RECOVERY_MS = 20_000;

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
  await upstream?.close();
});

type Primary = AdapterProcess;

/** Start the adapter as a process and return once its admin port answers (it may never be ready). */
function startPrimary(redisPort: number): Promise<Primary> {
  return spawnAdapter(
    [
      '--upstream',
      upstream.url,
      ...bundleArgs(files),
      '--replay-store',
      'redis',
      '--workers',
      '2',
      '--audit',
      path.join(files.dir, `audit-${redisPort}-${Date.now()}.jsonl`),
      '--redis-command-timeout-ms',
      '1000',
    ],
    {
      waitFor: 'admin',
      env: {
        TRUSTPLANE_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        TRUSTPLANE_WORKER_DOWN_HEALTH_LIMIT_MS: String(HEALTH_LIMIT_MS),
      },
    },
  );
}

/** GET an admin path: status and JSON body (status 0 when it does not answer). */
async function answer(admin: string, p: string): Promise<{ status: number; body: unknown }> {
  try {
    const res = await fetch(`${admin}${p}`, { signal: AbortSignal.timeout(2_000) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text) as unknown;
    } catch {
      // not JSON
    }
    return { status: res.status, body };
  } catch {
    return { status: 0, body: undefined };
  }
}

/** Linux: the pids whose parent is `ppid` (from /proc). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses; split after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers signal 0: it has exited, only its parent has not reaped it yet.
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** SIGTERM the primary, then SIGKILL it and `extra` pids after `ms`; returns the primary's exit. */
async function stopAll(p: Primary, extra: Iterable<number>, ms = 15_000): Promise<number | string | null> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    p.child.kill('SIGKILL');
    for (const pid of extra) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }, ms);
  const code = await p.exited;
  clearTimeout(timer);
  return code;
}

const exitLines = (p: Primary) => p.lines().filter((l) => l.msg === 'worker exited; restarting');

describe('fault: cluster workers that cannot start', () => {
  if (!requireServer('redis-server', REDIS_SERVER)) return;

  let primary: Primary | undefined;
  let redis: RedisServer | undefined;
  const seen = new Set<number>();
  afterEach(async () => {
    if (primary) await stopAll(primary, seen, 2_000);
    for (const pid of seen) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await redis?.kill();
    primary = undefined;
    redis = undefined;
    seen.clear();
  });

  it('started while Redis is down: workers exit non-zero, are restarted with backoff, /healthz turns 503, and all recover when Redis returns', async () => {
    const redisPort = await freePort();
    const startedAt = Date.now();
    primary = await startPrimary(redisPort);
    const p = primary;
    const track = () => {
      for (const pid of childrenOf(p.child.pid!)) seen.add(pid);
    };
    // Before the limit the primary is live (the workers may yet come up by themselves).
    const askedAt = Date.now() - startedAt;
    const early = await answer(p.admin, '/healthz');
    if (askedAt < HEALTH_LIMIT_MS) expect(early).toEqual({ status: 200, body: { status: 'ok' } });

    // Each worker fails to connect to Redis, logs why, and exits non-zero; the primary restarts it.
    await waitFor(
      () => {
        track();
        return exitLines(p).length >= 4;
      },
      'two failed starts of each worker',
      12_000,
    );
    const exits = exitLines(p);
    expect(exits.every((l) => typeof l.code === 'number' && l.code !== 0)).toBe(true);
    expect(p.lines().filter((l) => l.msg === 'worker failed to start').length).toBeGreaterThanOrEqual(2);
    expect(p.stderr()).toContain('could not connect to Redis');
    // The backoff doubles per slot: 500 ms, then 1,000 ms.
    const delays = [0, 1].map((slot) =>
      exits.filter((l) => l.slot === slot).map((l) => l.restart_in_ms as number),
    );
    for (const d of delays) expect(d.slice(0, 2)).toEqual([500, 1_000]);

    // /healthz: 200 until a slot has been down for the limit, then 503 workers_down.
    await waitFor(
      async () => (await answer(p.admin, '/healthz')).status === 503,
      '/healthz 503',
      HEALTH_LIMIT_MS + 5_000,
    );
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(HEALTH_LIMIT_MS);
    const unhealthy = await answer(p.admin, '/healthz');
    expect(unhealthy).toMatchObject({
      status: 503,
      body: { status: 'unhealthy', reason: 'workers_down', workers: '0/2', limit_ms: HEALTH_LIMIT_MS },
    });
    const downMs = (unhealthy.body as { down_ms: number }).down_ms;
    expect(downMs).toBeGreaterThanOrEqual(HEALTH_LIMIT_MS);
    expect((await answer(p.admin, '/readyz')).status).toBe(503);

    // Redis comes back on that port: the next restart succeeds.
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - startedAt)));
    redis = await startRedis({ port: redisPort });
    const back = Date.now();
    await waitFor(
      async () => {
        track();
        return (await answer(p.admin, '/readyz')).status === 200;
      },
      '/readyz 200 after Redis returned',
      RECOVERY_MS,
    );
    expect(await answer(p.admin, '/readyz')).toEqual({
      status: 200,
      body: { ready: true, checks: { workers: '2/2' } },
    });
    expect(await answer(p.admin, '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    const recoveredMs = Date.now() - back;
    track();

    // SIGTERM drains; nothing is left running.
    expect(await stopAll(p, seen)).toBe(0);
    await waitFor(() => [...seen].every((pid) => !alive(pid)), 'every worker to be gone', 5_000);
    expect(seen.size).toBeGreaterThanOrEqual(4);
    const allDelays = [0, 1].map((slot) =>
      exitLines(p)
        .filter((l) => l.slot === slot)
        .map((l) => l.restart_in_ms as number),
    );
    console.info(
      `[faults] workers started with Redis down: restart delays per slot ${JSON.stringify(allDelays)} ms; /healthz 503 workers_down (0/2 down for ${downMs} ms when read, limit ${HEALTH_LIMIT_MS} ms, 200 before); ready and healthy ${recoveredMs} ms after Redis returned; ${seen.size} worker pids, all gone; primary exit 0`,
    );
  }, 45_000);

  it('a worker killed during an outage: its replacement exits non-zero and is restarted until Redis returns', async () => {
    // Redis returns with its data (append-only file): one restarted empty is a replay store that
    // lost its jtis, which the adapter answers with a fail-closed window instead
    // (test/faults/replay-redis-amnesia.test.ts, docs/operations.md "Redis requirements").
    const dataDir = await mkdtemp(path.join(tmpdir(), 'trustplane-redis-aof-'));
    onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
    const persistent = ['--dir', dataDir, '--appendonly', 'yes', '--appendfsync', 'always'];
    redis = await startRedis({ args: persistent });
    const redisPort = redis.port;
    primary = await startPrimary(redisPort);
    const p = primary;
    const track = () => {
      for (const pid of childrenOf(p.child.pid!)) seen.add(pid);
    };
    await waitFor(async () => (await answer(p.admin, '/readyz')).status === 200, 'ready', 15_000);
    track();
    const [victim] = childrenOf(p.child.pid!);
    expect(victim).toBeGreaterThan(0);

    await redis.kill();
    const outageAt = Date.now();
    process.kill(victim!, 'SIGKILL');
    await waitFor(
      () => {
        track();
        return exitLines(p).some((l) => typeof l.code === 'number' && l.code !== 0);
      },
      'the replacement worker to fail and exit non-zero',
      12_000,
    );
    // The first exit is the SIGKILL; the replacements then fail to start and exit 1.
    const exits = exitLines(p);
    expect(exits[0]).toMatchObject({ signal: 'SIGKILL', restart_in_ms: 500 });
    expect(exits.slice(1).every((l) => l.code === 1)).toBe(true);
    await waitFor(
      async () => (await answer(p.admin, '/healthz')).status === 503,
      '/healthz 503',
      HEALTH_LIMIT_MS + 5_000,
    );
    expect(Date.now() - outageAt).toBeGreaterThanOrEqual(HEALTH_LIMIT_MS);
    expect((await answer(p.admin, '/healthz')).body).toMatchObject({ reason: 'workers_down' });

    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageAt)));
    redis = await startRedis({ port: redisPort, args: persistent });
    const back = Date.now();
    await waitFor(
      async () => {
        track();
        return (await answer(p.admin, '/readyz')).status === 200;
      },
      '/readyz 200 after Redis returned',
      RECOVERY_MS,
    );
    expect(await answer(p.admin, '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    const recoveredMs = Date.now() - back;
    track();
    expect(await stopAll(p, seen)).toBe(0);
    await waitFor(() => [...seen].every((pid) => !alive(pid)), 'every worker to be gone', 5_000);
    console.info(
      `[faults] worker SIGKILLed during a Redis outage: exits ${JSON.stringify(exitLines(p).map((l) => `${l.code ?? l.signal}+${l.restart_in_ms}ms`))}; ready and healthy ${recoveredMs} ms after Redis returned; all ${seen.size} worker pids gone; primary exit 0`,
    );
  }, 45_000);

  it('single process: a startup failure (Redis down) exits 1 at once with the reason', async () => {
    const redisPort = await freePort();
    const startedAt = Date.now();
    const adapter = await spawnAdapter(
      ['--upstream', upstream.url, ...bundleArgs(files), '--replay-store', 'redis'],
      { waitFor: 'nothing', env: { TRUSTPLANE_REDIS_URL: `redis://127.0.0.1:${redisPort}` } },
    );
    const timer = setTimeout(() => adapter.child.kill('SIGKILL'), 15_000);
    const code = await adapter.exited;
    clearTimeout(timer);
    const stderr = adapter.stderr();
    expect(code).toBe(1);
    expect(stderr).toMatch(/could not connect to Redis at redis:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    expect(Date.now() - startedAt).toBeLessThan(10_000);
  }, 20_000);
});
