import { createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisReplayStore } from '../../pkg/replay/redis-store.js';
import { TrustplaneError } from '../../pkg/authcore/index.js';
import { freePort, REDIS_SERVER, requireServer, startRedis, type RedisServer } from '../helpers/redis.js';

const NOW = 1_767_225_600;
const PASSWORD = 's3cret-Pa55w0rd';

/** Settle `promise` and return its rejection (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (e: unknown) => e,
  );
}

async function expectUnavailable(promise: Promise<unknown>): Promise<TrustplaneError> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(TrustplaneError);
  expect(error).toMatchObject({
    reason: 'replay_store_unavailable',
    status: 503,
    message: 'replay store unavailable',
  });
  return error as TrustplaneError;
}

function expectNoSecret(error: unknown, ...secrets: string[]): void {
  const text = `${String(error)} ${JSON.stringify(error)} ${(error as Error).stack ?? ''}`;
  for (const secret of secrets) expect(text).not.toContain(secret);
}

describe('RedisReplayStore', () => {
  if (requireServer('redis-server', REDIS_SERVER)) {
    let redis: RedisServer;
    let raw: Redis;
    const stores: RedisReplayStore[] = [];
    const connect = async (
      options: Partial<Parameters<typeof RedisReplayStore.connect>[0]> = {},
    ): Promise<RedisReplayStore> => {
      const store = await RedisReplayStore.connect({ url: redis.url, ...options });
      stores.push(store);
      return store;
    };

    beforeAll(async () => {
      redis = await startRedis();
      raw = new Redis(redis.url, { lazyConnect: true });
      await raw.connect();
    });

    afterAll(async () => {
      for (const store of stores) await store.close();
      raw?.disconnect();
      await redis?.stop();
    });

    it('first consume is true, second is false; keys are independent', async () => {
      const store = await connect();
      expect(await store.consume('iss|jti-1', NOW + 60, NOW)).toBe(true);
      expect(await store.consume('iss|jti-1', NOW + 60, NOW)).toBe(false);
      expect(await store.consume('iss|jti-1', NOW + 60, NOW + 59)).toBe(false);
      expect(await store.consume('iss|jti-2', NOW + 60, NOW)).toBe(true);
      expect(await raw.get('trustplane:jti:iss|jti-1')).toBe('1');
    });

    it('attack: replay race: 200 concurrent consumes over two connections, exactly one wins', async () => {
      const [a, b] = [await connect(), await connect()];
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).consume('iss|race', NOW + 60, NOW)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(results.filter((r) => !r)).toHaveLength(199);
    });

    it('sets the expiry to expiresAt - now (at least 1 s)', async () => {
      const store = await connect();
      expect(await store.consume('ttl', NOW + 60, NOW)).toBe(true);
      const ttl = await raw.ttl('trustplane:jti:ttl');
      expect(ttl).toBeGreaterThanOrEqual(1);
      expect(ttl).toBeLessThanOrEqual(60);
      expect(ttl).toBeGreaterThan(50);

      expect(await store.consume('ttl-past', NOW - 10, NOW)).toBe(true);
      const short = await raw.ttl('trustplane:jti:ttl-past');
      expect(short).toBeGreaterThanOrEqual(0);
      expect(short).toBeLessThanOrEqual(1);
    });

    it('uses keyPrefix', async () => {
      const store = await connect({ keyPrefix: 'other:' });
      expect(await store.consume('p', NOW + 60, NOW)).toBe(true);
      expect(await raw.exists('other:p')).toBe(1);
      expect(await raw.exists('trustplane:jti:p')).toBe(0);
    });

    it('ping resolves while Redis is up; consume and ping reject after close; close is idempotent', async () => {
      const store = await RedisReplayStore.connect({ url: redis.url });
      await expect(store.ping()).resolves.toBeUndefined();
      await store.close();
      await store.close();
      await expectUnavailable(store.ping());
      await expectUnavailable(store.consume('after-close', NOW + 60, NOW));
    });

    it('wraps an injected client and leaves it open on close', async () => {
      const client = new Redis(redis.url, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
      });
      await client.connect();
      try {
        const store = new RedisReplayStore(client, { keyPrefix: 'injected:' });
        expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
        expect(await store.consume('k', NOW + 60, NOW)).toBe(false);
        await store.close();
        expect(await client.ping()).toBe('PONG');
        expect(client.listenerCount('error')).toBe(0);
      } finally {
        client.disconnect();
      }
    });

    it('rejects malformed keys, times and options', async () => {
      const store = await connect();
      await expect(store.consume('', NOW + 60, NOW)).rejects.toBeInstanceOf(TypeError);
      await expect(store.consume('k'.repeat(1025), NOW + 60, NOW)).rejects.toBeInstanceOf(RangeError);
      await expect(store.consume('k', Number.NaN, NOW)).rejects.toBeInstanceOf(RangeError);
      await expect(RedisReplayStore.connect({ url: redis.url, commandTimeoutMs: 0 })).rejects.toBeInstanceOf(
        RangeError,
      );
      await expect(
        RedisReplayStore.connect({ url: redis.url, connectTimeoutMs: 1.5 }),
      ).rejects.toBeInstanceOf(RangeError);
      await expect(RedisReplayStore.connect({ url: 'http://127.0.0.1:6379' })).rejects.toBeInstanceOf(
        TypeError,
      );
    });

    describe('outage', () => {
      it('after Redis is killed, consume and ping reject quickly and never answer true; it reconnects', async () => {
        const server = await startRedis();
        const errors: string[] = [];
        const store = await RedisReplayStore.connect({
          url: server.url,
          onError: (code) => errors.push(code),
          now: () => NOW,
        });
        try {
          expect(await store.consume('before', NOW + 60, NOW)).toBe(true);
          await server.kill();

          for (const key of ['before', 'during-1', 'during-2']) {
            const started = performance.now();
            const error = await expectUnavailable(store.consume(key, NOW + 60, NOW));
            expect(performance.now() - started).toBeLessThan(2000);
            expect(error.details).toMatchObject({ store: 'redis' });
          }
          const started = performance.now();
          await expectUnavailable(store.ping());
          expect(performance.now() - started).toBeLessThan(2000);
          // the client's error events were swallowed and counted
          await expect.poll(() => errors.length, { timeout: 5000 }).toBeGreaterThan(0);

          // Redis comes back on the same port: the background reconnection picks it up.
          const restarted = await startRedis({ port: server.port });
          try {
            await expect
              .poll(
                () =>
                  store.ping().then(
                    () => true,
                    () => false,
                  ),
                { timeout: 8000 },
              )
              .toBe(true);
            // The restarted server has no data (no persistence): the store notices and refuses every
            // passport that may predate the loss (test/faults/replay-redis-amnesia.test.ts); one
            // issued after it is served.
            await expect(store.consume('after', NOW + 60, NOW)).rejects.toMatchObject({
              reason: 'replay_store_amnesia',
              status: 503,
            });
            expect(await store.consume('after', NOW + 661, NOW)).toBe(true);
            expect(await store.consume('after', NOW + 661, NOW)).toBe(false);
          } finally {
            await restarted.stop();
          }
        } finally {
          await store.close();
          await server.stop();
        }
      });

      it('a hung Redis (SIGSTOP) makes consume reject within commandTimeoutMs', async () => {
        const server = await startRedis();
        const store = await RedisReplayStore.connect({ url: server.url, commandTimeoutMs: 300 });
        try {
          // Loads the consume script, so that the hung consume below is one command that lands late.
          expect(await store.consume('warm', NOW + 60, NOW)).toBe(true);
          process.kill(server.pid, 'SIGSTOP');
          const started = performance.now();
          const error = await expectUnavailable(store.consume('hung', NOW + 60, NOW));
          const elapsed = performance.now() - started;
          expect(elapsed).toBeGreaterThanOrEqual(250);
          expect(elapsed).toBeLessThan(2000);
          expect(error.details).toMatchObject({ error: 'ETIMEDOUT' });
          await expectUnavailable(store.ping());
          process.kill(server.pid, 'SIGCONT');
          // the SET may have landed after the timeout: the jti is burnt (denies), never accepted twice
          await expect
            .poll(
              () =>
                store.ping().then(
                  () => true,
                  () => false,
                ),
              { timeout: 5000 },
            )
            .toBe(true);
          expect(await store.consume('hung', NOW + 60, NOW)).toBe(false);
        } finally {
          process.kill(server.pid, 'SIGCONT');
          await store.close();
          await server.kill();
        }
      });
    });

    describe('connecting', () => {
      it('connecting to a closed port rejects with a clear error', async () => {
        const port = await freePort();
        const started = performance.now();
        const error = await rejection(RedisReplayStore.connect({ url: `redis://127.0.0.1:${port}` }));
        expect(performance.now() - started).toBeLessThan(3000);
        expect(error).toBeInstanceOf(Error);
        expect((error as Error).message).toBe(
          `could not connect to Redis at redis://127.0.0.1:${port} (ECONNREFUSED)`,
        );
      });

      it('a server that accepts but never answers times out after connectTimeoutMs', async () => {
        const sockets: Socket[] = [];
        const silent: Server = createServer((socket) => sockets.push(socket));
        await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
        const address = silent.address();
        const port = typeof address === 'object' && address !== null ? address.port : 0;
        try {
          const started = performance.now();
          const error = await rejection(
            RedisReplayStore.connect({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 300 }),
          );
          expect(performance.now() - started).toBeLessThan(2000);
          expect((error as Error).message).toBe(
            `could not connect to Redis at redis://127.0.0.1:${port} (ETIMEDOUT)`,
          );
        } finally {
          for (const socket of sockets) socket.destroy();
          await new Promise((resolve) => silent.close(resolve));
        }
      });
    });

    describe('credentials never appear in errors', () => {
      let secured: RedisServer;
      beforeAll(async () => {
        secured = await startRedis({ password: PASSWORD });
      });
      afterAll(async () => {
        await secured?.stop();
      });

      it('the right password connects', async () => {
        expect(secured.url).toContain(PASSWORD);
        const store = await connect({ url: secured.url });
        expect(await store.consume('auth', NOW + 60, NOW)).toBe(true);
      });

      it('a wrong password is refused without echoing it', async () => {
        const wrong = 'wr0ng-Pa55w0rd';
        const error = await rejection(
          RedisReplayStore.connect({
            url: `redis://default:${wrong}@127.0.0.1:${secured.port}`,
            connectTimeoutMs: 1000,
          }),
        );
        expect((error as Error).message).toMatch(
          /^could not connect to Redis at redis:\/\/127\.0\.0\.1:\d+ \(/,
        );
        expectNoSecret(error, wrong, 'default:');
      });

      it('a closed port with credentials in the URL', async () => {
        const port = await freePort();
        const error = await rejection(
          RedisReplayStore.connect({ url: `redis://alice:${PASSWORD}@127.0.0.1:${port}` }),
        );
        expect((error as Error).message).toBe(
          `could not connect to Redis at redis://127.0.0.1:${port} (ECONNREFUSED)`,
        );
        expectNoSecret(error, PASSWORD, 'alice');
      });

      it('an invalid URL with credentials', async () => {
        const error = await rejection(RedisReplayStore.connect({ url: `redis://alice:${PASSWORD}@[bad` }));
        expect(error).toBeInstanceOf(TypeError);
        expectNoSecret(error, PASSWORD, 'alice');
      });

      it('outage errors from an authenticated store', async () => {
        const server = await startRedis({ password: PASSWORD });
        const store = await RedisReplayStore.connect({ url: server.url });
        try {
          expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
          await server.kill();
          expectNoSecret(await expectUnavailable(store.consume('k2', NOW + 60, NOW)), PASSWORD);
          expectNoSecret(await expectUnavailable(store.ping()), PASSWORD);
        } finally {
          await store.close();
          await server.stop();
        }
      });
    });
  }
});
