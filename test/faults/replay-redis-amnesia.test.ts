import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { TrustplaneError } from '../../pkg/authcore/index.js';
import { RedisReplayStore, type RedisReplayStoreConnectOptions } from '../../pkg/replay/redis-store.js';
import { sleep } from '../helpers/faults.js';
import { REDIS_SERVER, requireServer, startRedis, type RedisServer } from '../helpers/redis.js';

// Issue 18, point 2: two replicas (two RedisReplayStore instances) share one real redis-server.
// 200 jtis are consumed through replica A, Redis forgets them (restarted empty, FLUSHALL, eviction
// under allkeys-lru, eviction under volatile-lru), and the same 200 are sent to replica B. Before
// the fix B accepted all 200 again. Now B (and A) notice the loss: every passport that may predate
// it is refused for one window (maximum passport lifetime + 2 × skew), readiness says why, and the
// store recovers by itself once the window has passed (the clock is injected).

const T0 = 1_767_225_600;
const N = 200;
/** Passport lifetime and skew as the verifier would pass them: expiresAt = exp + skew. */
const LIFETIME = 300;
const SKEW = 30;
/** The default window: DEFAULT_MAX_LIFETIME_SECONDS (600) + 2 × DEFAULT_SKEW_SECONDS (30). */
const WINDOW = 660;
const PREFIX = 'trustplane:jti:';
/** Check interval of the stores under test (the default is a few seconds). */
const CHECK_MS = 200;

const keySet = (name: string) =>
  Array.from({ length: N }, (_, i) =>
    createHash('sha256').update(`https://issuer.example\n${name}-${i}`).digest('hex'),
  );
/** The jtis consumed before the fault and replayed after it. */
const keys = keySet('jti');
/** Passports issued after the window (recovery). */
const later = keySet('later');

interface Tally {
  accepted: number;
  replays: number;
  refused: Record<string, number>;
}

/** Consume every key at once through `store`; count first uses, replays and refusals by reason. */
async function tally(
  store: RedisReplayStore,
  now: number,
  which: readonly string[] = keys,
  expiresAt = now + LIFETIME + SKEW,
): Promise<Tally> {
  const out: Tally = { accepted: 0, replays: 0, refused: {} };
  await Promise.all(
    which.map(async (key) => {
      try {
        if (await store.consume(key, expiresAt, now)) out.accepted++;
        else out.replays++;
      } catch (e) {
        const reason = e instanceof TrustplaneError ? e.reason : String(e);
        out.refused[reason] = (out.refused[reason] ?? 0) + 1;
      }
    }),
  );
  return out;
}

/** Poll `check` (at most `ms`); resolves false when it never held. */
async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await sleep(50);
  }
  return false;
}

/** How many of the consumed jti keys Redis still holds. */
async function held(raw: Redis): Promise<number> {
  return raw.exists(...keys.map((k) => PREFIX + k));
}

/**
 * Drive Redis into eviction under `policy`: a memory limit just above what it uses, then filler
 * writes (without TTL, as a cache's keys may be) until none of the jti keys is left or the bounds
 * (60,000 writes, 15 s) are reached; then lift the limit, as when memory pressure passes.
 */
async function forceEviction(raw: Redis, policy: string): Promise<void> {
  await raw.config('SET', 'maxmemory-policy', policy);
  const used = Number(/used_memory:(\d+)/.exec(await raw.info('memory'))?.[1] ?? '0');
  await raw.config('SET', 'maxmemory', String(used + 256 * 1024));
  const filler = 'x'.repeat(1024);
  const deadline = Date.now() + 15_000;
  for (let batch = 0; batch < 300 && Date.now() < deadline; batch++) {
    const pipeline = raw.pipeline();
    for (let i = 0; i < 200; i++) pipeline.set(`filler:${batch}:${i}`, filler);
    await pipeline.exec(); // OOM replies (volatile-lru once every volatile key is gone) are expected
    if ((await held(raw)) === 0) break;
  }
  await raw.config('SET', 'maxmemory', '0');
}

describe('fault: Redis forgets consumed jtis; two replicas share it', () => {
  if (!requireServer('redis-server', REDIS_SERVER)) return;

  let redis: RedisServer | undefined;
  let raw: Redis | undefined;
  const stores: RedisReplayStore[] = [];

  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    raw?.disconnect();
    raw = undefined;
    await redis?.stop();
    redis = undefined;
  });

  async function replicas(server: RedisServer, clock: { now: number }) {
    const options: RedisReplayStoreConnectOptions = {
      url: server.url,
      now: () => clock.now,
      checkIntervalMs: CHECK_MS,
      commandTimeoutMs: 2_000,
    };
    const a = await RedisReplayStore.connect(options);
    stores.push(a);
    const b = await RedisReplayStore.connect(options);
    stores.push(b);
    raw = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await raw.connect();
    return { a, b, raw };
  }

  /** A consumed all 200 at T0; returns the tally B gets for the same 200 after `forget`. */
  async function replayAfter(
    forget: (raw: Redis) => Promise<void>,
    options: { readonly waitForCheck?: boolean } = {},
  ) {
    redis = await startRedis();
    const clock = { now: T0 };
    const { a, b } = await replicas(redis, clock);
    const first = await tally(a, T0);
    expect(first.accepted).toBe(N);
    // B has seen Redis before the fault (as a running replica has).
    expect((await tally(b, T0)).replays).toBe(N);

    clock.now = T0 + 5;
    await forget(raw!);
    const left = await held(raw!);
    console.log(`Redis holds ${left} of the ${N} consumed jtis after the fault`);
    expect(left).toBeLessThan(N);
    if (options.waitForCheck === true) {
      // Eviction is noticed by the periodic check (not by the consume itself): give B its interval.
      await eventually(async () => (await b.health?.())?.ok === false, 10 * CHECK_MS + 3_000);
    }
    const replay = await tally(b, clock.now);
    console.log(`replayed through B: ${JSON.stringify(replay)}`);
    return { a, b, clock, replay };
  }

  async function expectRecovery(a: RedisReplayStore, b: RedisReplayStore, clock: { now: number }) {
    // A passport issued after the loss with the longest lifetime is not refused even in the window.
    expect(await b.consume('issued-after-the-loss', clock.now + WINDOW + 1, clock.now)).toBe(true);
    clock.now += WINDOW + 1;
    expect(await b.health()).toEqual({ ok: true });
    expect(await a.health()).toEqual({ ok: true });
    const fresh = await tally(b, clock.now, later);
    expect(fresh.accepted).toBe(N);
    expect(await tally(a, clock.now, later)).toEqual({ accepted: 0, replays: N, refused: {} });
  }

  it('restarted empty (no persistence): 0 of 200 replays accepted, both replicas unready (amnesia), recovered after the window', async () => {
    const { a, b, clock, replay } = await replayAfter(async () => {
      const port = redis!.port;
      await redis!.kill();
      redis = await startRedis({ port });
      raw!.disconnect();
      raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await raw.connect();
      // both clients reconnect by themselves (capped backoff)
      for (const store of stores) {
        expect(await eventually(() => store.ping().then(() => true), 10_000)).toBe(true);
      }
    });
    expect(replay.accepted).toBe(0);
    expect(replay.refused).toEqual({ replay_store_amnesia: N });
    expect(await b.health()).toEqual({ ok: false, reason: 'amnesia' });
    expect(await a.health()).toEqual({ ok: false, reason: 'amnesia' });
    await expectRecovery(a, b, clock);
  }, 40_000);

  it('FLUSHALL: 0 of 200 replays accepted, both replicas unready (amnesia), recovered after the window', async () => {
    const { a, b, clock, replay } = await replayAfter(async (r) => {
      await r.flushall();
    });
    expect(replay.accepted).toBe(0);
    expect(replay.refused).toEqual({ replay_store_amnesia: N });
    expect(await b.health()).toEqual({ ok: false, reason: 'amnesia' });
    expect(await a.health()).toEqual({ ok: false, reason: 'amnesia' });
    await expectRecovery(a, b, clock);
  }, 40_000);

  it.each(['a restarted replica', 'a new replica'])(
    'FLUSHALL, then %s starts inside the window: 0 of 200 replays accepted (the window is shared through Redis)',
    async (who) => {
      // A found the loss and fails closed; a replica that (re)starts inside A's window must refuse
      // what A refuses, although the sentinel it finds was written after the loss.
      redis = await startRedis();
      const clock = { now: T0 };
      const { a, b } = await replicas(redis, clock);
      expect((await tally(a, T0)).accepted).toBe(N);
      await raw!.flushall();
      expect(await eventually(async () => (await a.health()).ok === false, 20 * CHECK_MS + 3_000)).toBe(true);
      clock.now += 60;
      if (who === 'a restarted replica') await stores.splice(stores.indexOf(b), 1)[0]!.close();
      const c = await RedisReplayStore.connect({
        url: redis.url,
        now: () => clock.now,
        checkIntervalMs: CHECK_MS,
      });
      stores.push(c);
      const late = await tally(c, clock.now);
      expect(late.accepted).toBe(0);
      expect(late.refused).toEqual({ replay_store_amnesia: N });
      expect(await c.health()).toEqual({ ok: false, reason: 'amnesia' });
      await expectRecovery(a, c, clock);
    },
    40_000,
  );

  it('a replica that starts after the loss but before any replica noticed it: refuses within one check interval', async () => {
    redis = await startRedis();
    const clock = { now: T0 };
    const { a } = await replicas(redis, clock);
    expect((await tally(a, T0)).accepted).toBe(N);
    await raw!.flushall();
    // C starts on the empty Redis first (cold start: it trusts it and writes a new epoch) ...
    const c = await RedisReplayStore.connect({
      url: redis.url,
      now: () => clock.now,
      checkIntervalMs: CHECK_MS,
    });
    stores.push(c);
    // ... then A's next check sees the other epoch and opens its window, which C adopts at its next check.
    expect(await eventually(async () => (await c.health()).ok === false, 20 * CHECK_MS + 3_000)).toBe(true);
    const late = await tally(c, clock.now);
    expect(late.accepted).toBe(0);
    expect(await c.health()).toEqual({ ok: false, reason: 'amnesia' });
  }, 40_000);

  it('Redis demoted to a read-only replica: consumes refused and readiness says read_only, ok again once writable', async () => {
    redis = await startRedis();
    const clock = { now: T0 };
    const { a } = await replicas(redis, clock);
    expect((await tally(a, T0)).accepted).toBe(N);
    // A failover gone wrong: the server is made a replica of a primary it cannot reach, so it keeps
    // its data but refuses writes.
    await raw!.replicaof('127.0.0.1', '1');
    const refused = await tally(a, clock.now, later);
    expect(refused.accepted).toBe(0);
    expect(refused.refused).toEqual({ replay_store_unavailable: N });
    expect(await a.health()).toEqual({ ok: false, reason: 'read_only' });
    await raw!.replicaof('NO', 'ONE');
    expect(await a.health()).toEqual({ ok: true });
    expect(await tally(a, clock.now)).toEqual({ accepted: 0, replays: N, refused: {} });
    expect((await tally(a, clock.now, later)).accepted).toBe(N);
  }, 40_000);

  it.each(['allkeys-lru', 'volatile-lru'])(
    'eviction under %s: 0 of 200 replays accepted; unready (eviction_policy), then amnesia once noeviction is back, recovered after the window',
    async (policy) => {
      const { a, b, clock, replay } = await replayAfter((r) => forceEviction(r, policy), {
        waitForCheck: true,
      });
      expect(replay.accepted).toBe(0);
      expect(await b.health()).toEqual({ ok: false, reason: 'eviction_policy' });
      expect(await a.health()).toEqual({ ok: false, reason: 'eviction_policy' });

      await raw!.config('SET', 'maxmemory-policy', 'noeviction');
      expect(await b.health()).toEqual({ ok: false, reason: 'amnesia' });
      expect(await a.health()).toEqual({ ok: false, reason: 'amnesia' });
      const again = await tally(b, clock.now);
      expect(again.accepted).toBe(0);
      expect(again.refused).toEqual({ replay_store_amnesia: N });
      await expectRecovery(a, b, clock);
    },
    40_000,
  );
});
