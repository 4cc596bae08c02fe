import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, writeWorld, type Upstream } from '../helpers/adapter.js';
import { bundleArgs, spawnAdapter, type AdapterProcess } from '../helpers/adapter-process.js';
import { send, signedSpec, sleep, waitFor, type Outcome } from '../helpers/faults.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { REDIS_SERVER, requireServer, startRedis, type RedisServer } from '../helpers/redis.js';

// A second (and third) SIGTERM or SIGINT while the adapter drains is logged and ignored: the
// in-flight requests still complete and the process exits 0. An orchestrator that wants the
// process gone at once sends SIGKILL; the drain itself is bounded by shutdownTimeoutMs.

const IN_FLIGHT = 10;
const UPSTREAM_DELAY_MS = 2_000;

const now = () => Math.floor(Date.now() / 1000);

let world: World;
let upstream: Upstream;
let files: ReturnType<typeof writeWorld>;

beforeAll(async () => {
  world = await createWorld({ issuedAt: now() - 60 });
  files = writeWorld(world);
  upstream = await startUpstream((_seen, res) => {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('slow answer');
    }, UPSTREAM_DELAY_MS);
  });
});
afterAll(async () => {
  await upstream.close();
});

const common = (name: string) => [
  '--upstream',
  upstream.url,
  ...bundleArgs(files),
  '--audit',
  path.join(files.dir, `${name}-audit.jsonl`),
  '--shutdown-timeout-ms',
  '8000',
];

/** Put IN_FLIGHT requests in flight, signal three times during the drain, and collect the outcome. */
async function signalTwiceDuringDrain(adapter: AdapterProcess) {
  const seenBefore = upstream.requests.length;
  const specs = await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, i) =>
      signedSpec(await signed(world, { claims: { iat: now() } }), `drain-${i}`),
    ),
  );
  const inFlight = Promise.all(specs.map((s) => send(adapter.base, s, { timeoutMs: 20_000 })));
  await waitFor(
    () => upstream.requests.length - seenBefore === IN_FLIGHT,
    `${IN_FLIGHT} requests at the upstream`,
  );
  const child = adapter.child;
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  child.kill('SIGTERM');
  await sleep(300);
  child.kill('SIGTERM');
  await sleep(100);
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const exit = await exited;
  clearTimeout(timer);
  const answered: Outcome[] = await inFlight;
  return {
    exit,
    answered: answered.map((o) => (o.kind === 'response' ? `${o.status} ${o.body}` : o.code)),
  };
}

describe('fault: repeated signals during the drain', () => {
  it('single process: the second SIGTERM and a SIGINT are logged and ignored; in-flight requests complete; exit 0', async () => {
    const adapter = await spawnAdapter([
      ...common('single'),
      '--replay-journal',
      path.join(files.dir, 'single.journal'),
    ]);
    try {
      const { exit, answered } = await signalTwiceDuringDrain(adapter);
      expect(answered).toEqual(Array(IN_FLIGHT).fill('200 slow answer'));
      expect(exit).toEqual({ code: 0, signal: null });
      const ignored = adapter
        .stderr()
        .split('\n')
        .filter((l) => l.includes('"msg":"already draining: signal ignored"'));
      expect(ignored).toHaveLength(2);
    } finally {
      await adapter.stop('SIGKILL');
    }
  }, 40_000);

  describe('cluster', () => {
    if (!requireServer('redis-server', REDIS_SERVER)) return;
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it('--workers 2: a second SIGTERM to the primary is ignored; in-flight requests complete; exit 0', async () => {
      const adapter = await spawnAdapter(
        [...common('cluster'), '--replay-store', 'redis', '--workers', '2'],
        { env: { TRUSTPLANE_REDIS_URL: redis.url }, readyTimeoutMs: 20_000 },
      );
      try {
        const { exit, answered } = await signalTwiceDuringDrain(adapter);
        expect(answered).toEqual(Array(IN_FLIGHT).fill('200 slow answer'));
        expect(exit).toEqual({ code: 0, signal: null });
        expect(adapter.stderr()).toContain('"msg":"already draining: signal ignored"');
      } finally {
        await adapter.stop('SIGKILL');
      }
    }, 40_000);
  });
});
