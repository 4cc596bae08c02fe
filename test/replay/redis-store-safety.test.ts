import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { TrustplaneError } from '../../pkg/authcore/index.js';
import {
  RedisReplayStore,
  type RedisReplayStoreConnectOptions,
  type RedisReplayStoreEvent,
} from '../../pkg/replay/redis-store.js';
import { amnesiaWindowSeconds, DEFAULT_AMNESIA_WINDOW_SECONDS } from '../../pkg/replay/amnesia.js';
import { REDIS_SERVER, requireServer, startRedis, type RedisServer } from '../helpers/redis.js';

// What the Redis replay store checks besides SET NX: the eviction policy (at connect and at
// runtime), the sentinel (epoch and write counter), evictions, out-of-memory, and what health()
// says about each. The four faults of issue 18 with two replicas are in
// test/faults/replay-redis-amnesia.test.ts.

const NOW = 1_767_225_600;
const WINDOW = DEFAULT_AMNESIA_WINDOW_SECONDS;
const PREFIX = 'trustplane:jti:';

async function reason(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    (v) => `resolved ${JSON.stringify(v)}`,
    (e: unknown) => (e instanceof TrustplaneError ? e.reason : `not a TrustplaneError: ${String(e)}`),
  );
}

async function until(check: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('RedisReplayStore safety checks', () => {
  if (!requireServer('redis-server', REDIS_SERVER)) return;

  const servers: RedisServer[] = [];
  const stores: RedisReplayStore[] = [];
  const clients: Redis[] = [];
  const dirs: string[] = [];

  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    for (const client of clients.splice(0)) client.disconnect();
    for (const server of servers.splice(0)) await server.stop();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  async function server(args: readonly string[] = [], port?: number): Promise<RedisServer> {
    const s = await startRedis({ args, ...(port !== undefined ? { port } : {}) });
    servers.push(s);
    return s;
  }
  async function rawClient(s: RedisServer): Promise<Redis> {
    const c = new Redis(s.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await c.connect();
    clients.push(c);
    return c;
  }
  async function connect(
    s: RedisServer,
    options: Partial<RedisReplayStoreConnectOptions> = {},
  ): Promise<RedisReplayStore> {
    const store = await RedisReplayStore.connect({ url: s.url, checkIntervalMs: 100, ...options });
    stores.push(store);
    return store;
  }

  it('the window is the maximum passport lifetime plus twice the skew', () => {
    expect(WINDOW).toBe(660);
    expect(amnesiaWindowSeconds(300, 10)).toBe(320);
    expect(() => amnesiaWindowSeconds(0, 30)).toThrow(RangeError);
    expect(() => amnesiaWindowSeconds(600, -1)).toThrow(RangeError);
  });

  describe('eviction policy', () => {
    it.each(['allkeys-lru', 'allkeys-random', 'volatile-lru', 'volatile-ttl', 'volatile-lfu'])(
      'connect refuses a Redis with maxmemory-policy %s, naming it and never the password',
      async (policy) => {
        const s = await startRedis({ password: 'pw-Secret-1', args: ['--maxmemory-policy', policy] });
        servers.push(s);
        const error = await RedisReplayStore.connect({ url: s.url }).then(
          () => undefined,
          (e: unknown) => e as Error,
        );
        expect(error?.message).toContain(`maxmemory-policy ${policy}`);
        expect(error?.message).toContain('noeviction');
        expect(`${error?.message} ${error?.stack}`).not.toContain('pw-Secret-1');
      },
    );

    it('allowEviction starts on an evicting policy with one warning event, and an eviction then opens the window', async () => {
      const s = await server(['--maxmemory-policy', 'allkeys-lru']);
      const events: RedisReplayStoreEvent[] = [];
      const store = await connect(s, { allowEviction: true, now: () => NOW, onEvent: (e) => events.push(e) });
      expect(events).toContainEqual({ type: 'eviction_policy', policy: 'allkeys-lru', allowed: true });
      expect(await store.health()).toEqual({ ok: true });
      expect(await store.consume('a', NOW + 330, NOW)).toBe(true);

      const raw = await rawClient(s);
      const used = Number(/used_memory:(\d+)/.exec(await raw.info('memory'))?.[1]);
      await raw.config('SET', 'maxmemory', String(used + 64 * 1024));
      for (let i = 0; i < 50 && Number(/evicted_keys:(\d+)/.exec(await raw.info('stats'))?.[1]) === 0; i++) {
        const p = raw.pipeline();
        for (let j = 0; j < 50; j++) p.set(`filler:${i}:${j}`, 'x'.repeat(1024));
        await p.exec();
      }
      await raw.config('SET', 'maxmemory', '0');
      expect(await store.health()).toEqual({ ok: false, reason: 'amnesia' });
      // allkeys-lru may evict the sentinel as well (epoch_missing): either way the window opens once
      const amnesia = events.filter((e) => e.type === 'amnesia');
      expect(amnesia).toContainEqual({ type: 'amnesia', cause: 'keys_evicted', until: NOW + WINDOW });
      expect(new Set(amnesia.map((e) => e.until))).toEqual(new Set([NOW + WINDOW]));
      expect(await reason(store.consume('a', NOW + 330, NOW))).toBe('replay_store_amnesia');
    });

    it('a policy changed at runtime fails every consume closed until it is noeviction again', async () => {
      const s = await server();
      const events: RedisReplayStoreEvent[] = [];
      const store = await connect(s, { onEvent: (e) => events.push(e), now: () => NOW });
      const raw = await rawClient(s);
      await raw.config('SET', 'maxmemory-policy', 'volatile-lru');
      expect(await store.health()).toEqual({ ok: false, reason: 'eviction_policy' });
      const error = await store.consume('k', NOW + 60, NOW).catch((e: unknown) => e);
      expect(error).toMatchObject({
        reason: 'replay_store_unavailable',
        details: { error: 'eviction_policy' },
      });
      expect(await raw.exists(`${PREFIX}k`)).toBe(0);
      await raw.config('SET', 'maxmemory-policy', 'noeviction');
      expect(await store.health()).toEqual({ ok: true });
      expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
      expect(events).toEqual([
        { type: 'epoch_created' },
        { type: 'eviction_policy', policy: 'volatile-lru', allowed: false },
        { type: 'eviction_policy_ok' },
      ]);
    });

    it('CONFIG renamed away: connect refuses unless the operator declares the policy', async () => {
      const s = await server(['--rename-command', 'CONFIG', '']);
      await expect(RedisReplayStore.connect({ url: s.url })).rejects.toThrow(
        /cannot read maxmemory-policy .*declare it/,
      );
      await expect(RedisReplayStore.connect({ url: s.url, maxmemoryPolicy: 'allkeys-lru' })).rejects.toThrow(
        /maxmemory-policy allkeys-lru/,
      );
      const store = await connect(s, { maxmemoryPolicy: 'noeviction' });
      expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
      expect(await store.health()).toEqual({ ok: true });
      expect(
        () => new RedisReplayStore(new Redis({ lazyConnect: true }), { maxmemoryPolicy: 'no eviction!' }),
      ).toThrow(RangeError);
    });

    it('an injected client on an evicting policy: consumes are refused (fail closed)', async () => {
      const s = await server(['--maxmemory-policy', 'allkeys-lfu']);
      const client = await rawClient(s);
      const store = new RedisReplayStore(client, { checkIntervalMs: 100 });
      stores.push(store);
      const error = await store.consume('k', NOW + 60, NOW).catch((e: unknown) => e);
      expect(error).toMatchObject({
        reason: 'replay_store_unavailable',
        details: { error: 'eviction_policy' },
      });
      expect(await store.health()).toEqual({ ok: false, reason: 'eviction_policy' });
    });
  });

  describe('sentinel', () => {
    it('is the key equal to the prefix: a hash {epoch, seq} without TTL, counting writes', async () => {
      const s = await server();
      const store = await connect(s);
      const raw = await rawClient(s);
      expect(await raw.ttl(PREFIX)).toBe(-1);
      const epoch = await raw.hget(PREFIX, 'epoch');
      expect(epoch).toMatch(/^[0-9a-f]{32}$/);
      const before = Number(await raw.hget(PREFIX, 'seq'));
      expect(await store.consume('a', NOW + 60, NOW)).toBe(true);
      expect(await store.consume('a', NOW + 60, NOW)).toBe(false);
      expect(Number(await raw.hget(PREFIX, 'seq'))).toBe(before + 2);
      // a second replica adopts the epoch; a restart of the adapter is no loss
      const other = await connect(s);
      expect(await other.health()).toEqual({ ok: true });
      expect(await raw.hget(PREFIX, 'epoch')).toBe(epoch);
      // a distinct prefix is a distinct namespace with its own sentinel
      await connect(s, { keyPrefix: 'other-api:' });
      expect(await raw.hget('other-api:', 'epoch')).toMatch(/^[0-9a-f]{32}$/);
      expect(await raw.hget('other-api:', 'epoch')).not.toBe(epoch);
    });

    it('where scripting is refused (EVAL renamed away), the same consume runs as MULTI/EXEC', async () => {
      const s = await server(['--rename-command', 'EVALSHA', '', '--rename-command', 'EVAL', '']);
      const store = await connect(s, { now: () => NOW });
      expect(await store.consume('a', NOW + 330, NOW)).toBe(true);
      expect(await store.consume('a', NOW + 330, NOW)).toBe(false);
      const raw = await rawClient(s);
      expect(Number(await raw.hget(PREFIX, 'seq'))).toBeGreaterThanOrEqual(2);
      await raw.flushall();
      expect(await reason(store.consume('a', NOW + 330, NOW))).toBe('replay_store_amnesia');
      expect(await store.health()).toEqual({ ok: false, reason: 'amnesia' });
    });

    it('cold start: trust (default) serves at once; fail-closed opens the window', async () => {
      const s = await server();
      const events: RedisReplayStoreEvent[] = [];
      const trusting = await connect(s, { now: () => NOW, onEvent: (e) => events.push(e) });
      expect(events).toEqual([{ type: 'epoch_created' }]);
      expect(await trusting.consume('k', NOW + 60, NOW)).toBe(true);

      const fresh = await server();
      const cautious: RedisReplayStoreEvent[] = [];
      const store = await connect(fresh, {
        coldStart: 'fail-closed',
        now: () => NOW,
        onEvent: (e) => cautious.push(e),
      });
      expect(cautious).toEqual([{ type: 'amnesia', cause: 'cold_start', until: NOW + WINDOW }]);
      expect(await store.health()).toEqual({ ok: false, reason: 'amnesia' });
      expect(await reason(store.consume('k', NOW + 330, NOW))).toBe('replay_store_amnesia');
      // a replica started next finds the sentinel and the window in it: it refuses the same
      const nextEvents: RedisReplayStoreEvent[] = [];
      const next = await connect(fresh, { now: () => NOW, onEvent: (e) => nextEvents.push(e) });
      expect(nextEvents).toEqual([{ type: 'amnesia', cause: 'window_shared', until: NOW + WINDOW }]);
      expect(await next.health()).toEqual({ ok: false, reason: 'amnesia' });
      expect(await reason(next.consume('k', NOW + 330, NOW))).toBe('replay_store_amnesia');
    });

    it('FLUSHALL: one amnesia event per replica, with the window end; both converge on one new epoch', async () => {
      const s = await server();
      const clock = { now: NOW };
      const seen: Record<string, RedisReplayStoreEvent[]> = { a: [], b: [] };
      const a = await connect(s, { now: () => clock.now, onEvent: (e) => seen.a!.push(e) });
      const b = await connect(s, { now: () => clock.now, onEvent: (e) => seen.b!.push(e) });
      const raw = await rawClient(s);
      await raw.flushall();
      clock.now = NOW + 7;
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => reason(b.consume(`k${i}`, NOW + 330, clock.now))),
      );
      expect(new Set(results)).toEqual(new Set(['replay_store_amnesia']));
      expect(await a.health()).toEqual({ ok: false, reason: 'amnesia' });
      expect(seen.b!.filter((e) => e.type === 'amnesia')).toEqual([
        { type: 'amnesia', cause: 'epoch_missing', until: NOW + 7 + WINDOW },
      ]);
      expect(seen.a!.filter((e) => e.type === 'amnesia')).toEqual([
        { type: 'amnesia', cause: 'epoch_changed', until: NOW + 7 + WINDOW },
      ]);
      clock.now = NOW + 7 + WINDOW;
      expect(await a.health()).toEqual({ ok: true });
      expect(await b.health()).toEqual({ ok: true });
      expect(seen.a!.at(-1)).toEqual({ type: 'recovered' });
      const epoch = await raw.hget(PREFIX, 'epoch');
      expect(epoch).toMatch(/^[0-9a-f]{32}$/);
    });

    it('attack: Redis restarted from an older RDB snapshot: the write counter went back, replays refused', async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'trustplane-redis-rdb-'));
      dirs.push(dir);
      let s = await server(['--dir', dir]);
      const clock = { now: NOW };
      const a = await connect(s, { now: () => clock.now });
      const b = await connect(s, { now: () => clock.now });
      const raw = await rawClient(s);
      for (let i = 0; i < 100; i++) expect(await a.consume(`old-${i}`, NOW + 330, NOW)).toBe(true);
      await raw.save();
      for (let i = 0; i < 100; i++) expect(await a.consume(`new-${i}`, NOW + 330, NOW)).toBe(true);
      expect(await b.health()).toEqual({ ok: true }); // B's periodic check has seen the counter
      raw.disconnect();

      const port = s.port;
      await s.kill();
      servers.splice(servers.indexOf(s), 1);
      s = await server(['--dir', dir], port);
      const reloaded = await rawClient(s);
      expect(await reloaded.exists(`${PREFIX}old-0`)).toBe(1);
      expect(await reloaded.exists(`${PREFIX}new-0`)).toBe(0);
      await until(() => b.ping().then(() => true));
      await until(() => a.ping().then(() => true));

      clock.now = NOW + 3;
      let accepted = 0;
      for (let i = 0; i < 100; i++) {
        if ((await reason(b.consume(`new-${i}`, NOW + 330, clock.now))) === 'resolved true') accepted++;
      }
      expect(accepted).toBe(0);
      expect(await b.health()).toEqual({ ok: false, reason: 'amnesia' });
      expect(await a.health()).toEqual({ ok: false, reason: 'amnesia' });
    }, 30_000);
  });

  describe('readiness', () => {
    it('out_of_memory while Redis refuses writes (noeviction at maxmemory), ok once it accepts them', async () => {
      const s = await server();
      const store = await connect(s);
      const raw = await rawClient(s);
      const p = raw.pipeline();
      for (let i = 0; i < 300; i++) p.set(`filler:${i}`, 'x'.repeat(4096));
      await p.exec();
      // A limit well below what Redis holds: with noeviction every write is refused.
      const used = Number(/used_memory:(\d+)/.exec(await raw.info('memory'))?.[1]);
      await raw.config('SET', 'maxmemory', String(used - 512 * 1024));
      const error = await store.consume('k', NOW + 60, NOW).catch((e: unknown) => e);
      expect(error).toMatchObject({ reason: 'replay_store_unavailable', details: { error: 'OOM' } });
      expect(await store.health()).toEqual({ ok: false, reason: 'out_of_memory' });
      await raw.config('SET', 'maxmemory', '0');
      expect(await store.health()).toEqual({ ok: true });
      expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
    });

    it('unavailable while Redis is down and after close', async () => {
      const s = await server();
      const store = await connect(s, { commandTimeoutMs: 300 });
      expect(await store.health()).toEqual({ ok: true });
      await s.kill();
      expect(await store.health()).toEqual({ ok: false, reason: 'unavailable' });
      await store.close();
      expect(await store.health()).toEqual({ ok: false, reason: 'unavailable' });
    });
  });
});
