import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAdapter, startUpstream, type TestAdapter, type Upstream } from '../helpers/adapter.js';
import { readyStatus, scrape, send, signedSpec, sleep, waitFor, type Outcome } from '../helpers/faults.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { metricValue } from '../helpers/prometheus.js';
import { REDIS_SERVER, requireServer } from '../helpers/redis.js';
import { startRedisWithData, type RedisWithData } from '../helpers/redis-with-data.js';

// The adapter with the Redis replay store, under a steady load from a few clients, while Redis
// first hangs (SIGSTOP ... SIGCONT) and then crashes (SIGKILL) and is restarted.
//
// Redis always comes back WITH its data here: SIGCONT resumes the same process, and the restarted
// server reloads its append-only file (appendfsync always). A Redis restarted empty (or flushed,
// or evicting) is test/faults/replay-redis-amnesia.test.ts: the store fails closed for one window.

const CLIENTS = 4;
const PAUSE_MS = 25; // between two requests of one client
const MAX_PER_CLIENT = 1_500; // bound on each client's loop (the phases end it much earlier)
const OUTAGE_MS = 3_000;
const STEADY_MS = 1_000;
// redisCommandTimeoutMs: generous, so that a busy machine is not mistaken for an outage (a
// command slower than this is refused 503, fail closed, which the windows outside the outages
// would count as unexpected).
const COMMAND_TIMEOUT_MS = 1_000;

type Signed = Awaited<ReturnType<typeof signed>>;
interface Exchange {
  readonly s: Signed;
  readonly id: string;
  readonly sentAt: number;
  readonly doneAt: number;
  readonly outcome: Outcome;
}

let world: World;
let upstream: Upstream;

const label = (o: Outcome) =>
  o.kind === 'response' ? `${o.status} ${o.reason ?? 'allow'}` : `error ${o.code}`;

/** Linux: wait until /proc says the process is stopped (state T); elsewhere wait 100 ms. */
async function untilStopped(pid: number): Promise<void> {
  const state = () => {
    try {
      return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
    } catch {
      return undefined;
    }
  };
  if (state() === undefined) return sleep(100);
  await waitFor(() => state() === 'T', 'redis-server to be stopped');
}

describe('fault: Redis stopped and restarted under load', () => {
  if (!requireServer('redis-server', REDIS_SERVER)) return;

  let redis: RedisWithData;
  let tp: TestAdapter;

  beforeAll(async () => {
    world = await createWorld();
    upstream = await startUpstream();
    redis = await startRedisWithData();
    tp = await startTestAdapter(world, {
      upstream: upstream.url,
      replayStore: 'redis',
      redisUrl: redis.url,
      redisCommandTimeoutMs: COMMAND_TIMEOUT_MS,
    });
  }, 30_000);
  afterAll(async () => {
    await tp?.adapter.close();
    await redis?.stop();
    await upstream?.close();
  });

  it('while down: only 503 replay_store_unavailable and no upstream hit; after: allowed again; no replay accepted', async () => {
    const exchanges: Exchange[] = [];
    let running = true;
    const client = async (c: number) => {
      for (let i = 0; running && i < MAX_PER_CLIENT; i++) {
        const s = await signed(world);
        const id = `redis-${c}-${i}`;
        const sentAt = performance.now();
        const outcome = await send(tp.base, signedSpec(s, id));
        exchanges.push({ s, id, sentAt, doneAt: performance.now(), outcome });
        await sleep(PAUSE_MS);
      }
    };
    const load = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    const marks: Record<string, number> = {};
    const readyDuringOutage: number[] = [];
    try {
      await sleep(STEADY_MS);

      // Outage 1: Redis hangs. Commands time out after redisCommandTimeoutMs.
      redis.pause();
      await untilStopped(redis.pid());
      marks.hangStart = performance.now();
      readyDuringOutage.push(await readyStatus(tp.admin));
      await sleep(OUTAGE_MS);
      marks.hangEnd = performance.now();
      redis.resume();
      await waitFor(async () => (await readyStatus(tp.admin)) === 200, 'ready after SIGCONT');
      marks.hangReady = performance.now();
      await sleep(STEADY_MS);

      // Outage 2: Redis crashes; connections are refused until it is restarted on its data.
      marks.crashStart = performance.now();
      await redis.crash();
      marks.crashDown = performance.now();
      readyDuringOutage.push(await readyStatus(tp.admin));
      await sleep(OUTAGE_MS);
      marks.crashEnd = performance.now();
      await redis.restart();
      await waitFor(async () => (await readyStatus(tp.admin)) === 200, 'ready after the restart');
      marks.crashReady = performance.now();
      await sleep(STEADY_MS);
    } finally {
      running = false;
      await load;
    }
    const m = marks as Record<
      'hangStart' | 'hangEnd' | 'hangReady' | 'crashStart' | 'crashDown' | 'crashEnd' | 'crashReady',
      number
    >;

    const within = (from: number, to: number) => exchanges.filter((e) => e.sentAt >= from && e.doneAt <= to);
    const windows = {
      before: within(0, m.hangStart),
      hung: within(m.hangStart, m.hangEnd),
      betweenOutages: within(m.hangReady, m.crashStart),
      crashed: within(m.crashDown, m.crashEnd),
      after: within(m.crashReady, Infinity),
    };
    const t0 = exchanges.reduce((a, e) => Math.min(a, e.sentAt), Infinity);
    const misfits = (es: Exchange[], expected: string) =>
      es
        .filter((e) => label(e.outcome) !== expected)
        .map(
          (e) =>
            `${e.id}: ${label(e.outcome)} (sent at ${(e.sentAt - t0).toFixed(0)} ms, took ${(e.doneAt - e.sentAt).toFixed(0)} ms)`,
        );
    const counts = Object.fromEntries(Object.entries(windows).map(([k, v]) => [k, v.length]));
    const allowed = exchanges.filter((e) => e.outcome.kind === 'response' && e.outcome.status === 200);
    const unavailable = exchanges.filter((e) => label(e.outcome) === '503 replay_store_unavailable');
    console.info(
      `[faults] redis outage: ${exchanges.length} requests, ${allowed.length} allowed, ${unavailable.length} × 503; windows ${JSON.stringify(counts)}; readyz during outages ${JSON.stringify(readyDuringOutage)}`,
    );

    // Every request got one of the two answers; nothing else (no 5xx of another kind, no reset).
    expect(exchanges.length).toBeGreaterThan(0);
    expect(allowed.length + unavailable.length).toBe(exchanges.length);

    // While down: every request denied 503 replay_store_unavailable, zero 2xx, none upstream.
    for (const w of ['hung', 'crashed'] as const) {
      expect(windows[w].length, w).toBeGreaterThanOrEqual(CLIENTS);
      expect(misfits(windows[w], '503 replay_store_unavailable'), w).toEqual([]);
    }
    expect(readyDuringOutage).toEqual([503, 503]);
    // Before and after each outage: allowed.
    for (const w of ['before', 'betweenOutages', 'after'] as const) {
      expect(windows[w].length, w).toBeGreaterThanOrEqual(5);
      expect(misfits(windows[w], '200 allow'), w).toEqual([]);
    }

    // The upstream saw exactly the allowed requests, each once, and none sent while Redis was down.
    const seen = upstream.requests.map((r) => String(r.headers['x-request-id']));
    expect(seen.length).toBe(allowed.length);
    expect(new Set(seen)).toEqual(new Set(allowed.map((e) => e.id)));
    const downIds = new Set([...windows.hung, ...windows.crashed].map((e) => e.id));
    expect(seen.filter((id) => downIds.has(id))).toEqual([]);

    // No replay accepted after the outages: every request ever allowed is refused as a replay.
    const replays: Outcome[] = [];
    for (let i = 0; i < allowed.length; i += CLIENTS) {
      const batch = allowed.slice(i, i + CLIENTS);
      replays.push(
        ...(await Promise.all(batch.map((e, j) => send(tp.base, signedSpec(e.s, `replay-${i + j}`))))),
      );
    }
    expect(replays.map(label)).toEqual(Array(allowed.length).fill('401 jti_replay'));
    expect(upstream.requests.length).toBe(allowed.length);

    // The adapter's own counts agree.
    const metrics = await scrape(tp.admin);
    expect(metricValue(metrics, 'trustplane_decisions_total', { outcome: 'allow' })).toBe(allowed.length);
    expect(
      metricValue(metrics, 'trustplane_decisions_total', {
        outcome: 'deny',
        reason: 'replay_store_unavailable',
      }),
    ).toBe(unavailable.length);
    expect(
      metricValue(metrics, 'trustplane_decisions_total', { outcome: 'deny', reason: 'jti_replay' }),
    ).toBe(allowed.length);
    expect(tp.audit.events).toHaveLength(exchanges.length + replays.length);
  }, 60_000);
});
