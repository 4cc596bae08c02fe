import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createAdminServer,
  resolveAdapterConfig,
  startAdapter,
  type Adapter,
  type AdapterConfigInput,
} from '../../pkg/adapter/index.js';
import { ConfigError } from '../../pkg/adapter/config-error.js';
import { UpstreamSlots } from '../../pkg/adapter/upstream-slots.js';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { MemoryReplayStore } from '../../pkg/authcore/memory-replay-store.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { rawSend, sendSigned, startUpstream, writeWorld, type RawResponse } from '../helpers/adapter.js';
import { NOW, createWorld, signed, type World } from '../helpers/fixture.js';
import { metricValue, parsePrometheus } from '../helpers/prometheus.js';

// The adapter's load limits, in process: the in-flight cap (maxInFlight) refuses at the door, and
// the upstream slots (upstreamMaxSockets, upstreamQueueTimeoutMs) refuse before the jti is
// consumed. A replay store whose consume can be held keeps requests in flight on demand.

/** A memory replay store whose consume waits while `hold` is set; counts every consume. */
class GatedReplayStore extends MemoryReplayStore {
  consumed = 0;
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  hold(): void {
    this.#gate = new Promise((resolve) => (this.#open = resolve));
  }
  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }
  override async consume(key: string, expiresAt: number, now: number, scope?: string): Promise<boolean> {
    this.consumed += 1;
    if (this.#gate) await this.#gate;
    return super.consume(key, expiresAt, now, scope);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

interface Running {
  adapter: Adapter;
  base: string;
  admin: string;
  audit: MemoryAuditSink;
  store: GatedReplayStore;
}

const running: Running[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.store.release();
    await r.adapter.close();
  }
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function start(world: World, config: Partial<AdapterConfigInput>): Promise<Running> {
  const files = writeWorld(world);
  const audit = new MemoryAuditSink();
  const store = new GatedReplayStore();
  const adapter = await startAdapter(
    resolveAdapterConfig({
      flags: {
        listen: '127.0.0.1:0',
        adminListen: '127.0.0.1:0',
        trustMaterial: files.trustMaterial,
        policyBundle: files.policyBundle,
        trustMaterialPublicKeys: [files.signerKey],
        policyBundlePublicKeys: [files.signerKey],
        reloadIntervalMs: 0,
        shutdownTimeoutMs: 1_000,
        ...config,
      },
    }),
    { clock: () => NOW, audit, replayStore: store, log: createLogger('silent') },
  );
  const r: Running = {
    adapter,
    audit,
    store,
    base: `http://127.0.0.1:${adapter.address.port}`,
    admin: `http://127.0.0.1:${adapter.adminAddress!.port}`,
  };
  running.push(r);
  return r;
}

async function refusals(admin: string, kind: string): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  return metricValue(parsePrometheus(text), 'trustplane_overload_refusals_total', { kind });
}

const answerOf = (r: RawResponse) => `${r.status} ${r.headers['x-trustplane-reason'] ?? 'allow'}`;

describe('UpstreamSlots', () => {
  it('grants up to its size at once, then first come first served, each wait bounded', async () => {
    const slots = new UpstreamSlots(2, 200);
    const [a, b, c, d] = [slots.lease(), slots.lease(), slots.lease(), slots.lease()];
    expect(await a.take()).toBe(true);
    expect(await b.take()).toBe(true);
    const cTaken = c.take();
    const dTaken = d.take();
    expect([slots.active, slots.waiting]).toEqual([2, 2]);
    a.release();
    expect(await cTaken).toBe(true);
    const started = Date.now();
    expect(await dTaken).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect([slots.active, slots.waiting]).toEqual([2, 0]);
    // Idempotent: take answers the same, release gives back once.
    expect(await c.take()).toBe(true);
    c.release();
    c.release();
    b.release();
    d.release();
    expect(slots.active).toBe(0);
  });

  it('a lease released while waiting leaves the queue and never holds a slot', async () => {
    const slots = new UpstreamSlots(1, 10_000);
    const a = slots.lease();
    await a.take();
    const gone = slots.lease();
    const taken = gone.take();
    gone.release();
    expect(await taken).toBe(false);
    expect(slots.waiting).toBe(0);
    a.release();
    expect(slots.active).toBe(0);
    expect(() => new UpstreamSlots(0, 1)).toThrow(RangeError);
    expect(() => new UpstreamSlots(1, 0)).toThrow(RangeError);
  });
});

describe('adapter limits: maxInFlight', () => {
  it('proxy: beyond the cap a request is refused 503 overloaded with Retry-After, unread and unrecorded', async () => {
    const world = await createWorld();
    const upstream = await startUpstream();
    servers.push(upstream.server);
    const tp = await start(world, { upstream: upstream.url, maxInFlight: 2 });
    tp.store.hold();
    const held = await Promise.all([signed(world), signed(world)]);
    const pending = held.map((s) => sendSigned(tp.base, s));
    await until(() => tp.store.consumed === 2, 'two requests at the replay store');

    const extra = await signed(world);
    const refused = await sendSigned(tp.base, extra, { headers: { 'x-request-id': 'shed-1' } });
    expect([refused.status, JSON.parse(refused.body)]).toEqual([
      503,
      { allowed: false, reason: 'overloaded' },
    ]);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers['x-request-id']).toBe('shed-1');
    expect(tp.store.consumed).toBe(2);
    expect(tp.audit.events.some((e) => e.request_id === 'shed-1')).toBe(false);
    expect(await refusals(tp.admin, 'in_flight')).toBe(1);

    tp.store.release();
    expect((await Promise.all(pending)).map(answerOf)).toEqual(['200 allow', '200 allow']);
    // Its jti was never consumed: the same request is accepted once there is room.
    expect(answerOf(await sendSigned(tp.base, extra))).toBe('200 allow');
  });

  it('forward-auth: the same cap, the same answer', async () => {
    const world = await createWorld();
    const tp = await start(world, { mode: 'forward-auth', forwardAuthGateway: 'nginx', maxInFlight: 1 });
    const nginx = (s: Awaited<ReturnType<typeof signed>>) =>
      rawSend(tp.base, {
        method: 'GET',
        target: '/auth',
        headers: {
          ...s.headers,
          'x-original-method': 'GET',
          'x-original-uri': '/v1/orders/search',
          'x-forwarded-host': 'orders.example',
          'x-forwarded-proto': 'https',
        },
      });
    tp.store.hold();
    const first = await signed(world);
    const pending = nginx(first);
    await until(() => tp.store.consumed === 1, 'one request at the replay store');
    const second = await signed(world);
    const refused = await nginx(second);
    expect([refused.status, refused.headers['x-trustplane-reason'], refused.headers['retry-after']]).toEqual([
      503,
      'overloaded',
      '1',
    ]);
    tp.store.release();
    expect((await pending).status).toBe(200);
    expect((await nginx(second)).status).toBe(200);
    expect(await refusals(tp.admin, 'in_flight')).toBe(1);
  });
});

describe('adapter limits: upstream slots', () => {
  it('a request that cannot get an upstream connection in time is refused before its jti is consumed; unauthenticated requests never queue', async () => {
    const world = await createWorld();
    let releaseUpstream: (() => void) | undefined;
    const upstreamServer = createServer((req, res) => {
      req.resume();
      const answer = () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      if (releaseUpstream === undefined) releaseUpstream = answer;
      else answer();
    });
    servers.push(upstreamServer);
    await new Promise<void>((r) => upstreamServer.listen(0, '127.0.0.1', r));
    const port = (upstreamServer.address() as AddressInfo).port;
    const tp = await start(world, {
      upstream: `http://127.0.0.1:${port}`,
      upstreamMaxSockets: 1,
      upstreamQueueTimeoutMs: 300,
    });

    // The only upstream connection is busy with a slow exchange.
    const first = sendSigned(tp.base, await signed(world));
    await until(() => releaseUpstream !== undefined, 'the first request at the upstream');
    expect(tp.store.consumed).toBe(1);

    // No passport: denied 401 at once, without waiting for the upstream.
    const started = Date.now();
    const anonymous = await rawSend(tp.base, { method: 'GET', target: '/v1/orders/search', headers: {} });
    expect(answerOf(anonymous)).toBe('401 missing_passport');
    expect(Date.now() - started).toBeLessThan(300);

    // A valid request waits the bound, then 503 overloaded; the kernel records the deny, unconsumed.
    const queued = await signed(world);
    const t0 = Date.now();
    const refused = await sendSigned(tp.base, queued, { headers: { 'x-request-id': 'queued-1' } });
    const waited = Date.now() - t0;
    expect(answerOf(refused)).toBe('503 overloaded');
    expect(refused.headers['retry-after']).toBe('1');
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(tp.store.consumed).toBe(1);
    expect(tp.audit.events.find((e) => e.request_id === 'queued-1')).toMatchObject({
      decision: 'deny',
      reason: 'overloaded',
    });
    expect(await refusals(tp.admin, 'upstream_queue')).toBe(1);

    releaseUpstream!();
    expect(answerOf(await first)).toBe('200 allow');
    expect(answerOf(await sendSigned(tp.base, queued))).toBe('200 allow');
    expect(tp.store.consumed).toBe(2);
  });
});

describe('adapter limits: configuration', () => {
  const base = {
    trustMaterial: 't.json',
    policyBundle: 'p.json',
    devAllowUnsigned: true,
    upstream: 'http://127.0.0.1:1',
  };
  it('defaults, environment and flags', () => {
    expect(resolveAdapterConfig({ flags: base })).toMatchObject({
      maxInFlight: 2_048,
      upstreamQueueTimeoutMs: 2_000,
      workerDownHealthLimitMs: 60_000,
    });
    const env = {
      TRUSTPLANE_MAX_IN_FLIGHT: '64',
      TRUSTPLANE_UPSTREAM_QUEUE_TIMEOUT_MS: '250',
      TRUSTPLANE_WORKER_DOWN_HEALTH_LIMIT_MS: '5000',
    };
    expect(resolveAdapterConfig({ flags: base, env })).toMatchObject({
      maxInFlight: 64,
      upstreamQueueTimeoutMs: 250,
      workerDownHealthLimitMs: 5_000,
    });
    expect(resolveAdapterConfig({ flags: { ...base, maxInFlight: '8' }, env })).toMatchObject({
      maxInFlight: 8,
    });
  });

  it('refuses zero, negatives and fractions, one line per key', () => {
    let problems: readonly string[] = [];
    try {
      resolveAdapterConfig({
        flags: { ...base, maxInFlight: '0', upstreamQueueTimeoutMs: '-1', workerDownHealthLimitMs: '1.5' },
      });
    } catch (e) {
      if (e instanceof ConfigError) problems = e.problems;
    }
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'maxInFlight',
      'upstreamQueueTimeoutMs',
      'workerDownHealthLimitMs',
    ]);
  });
});

describe('admin /healthz', () => {
  it('200 while live; 503 with the reason and its figures when not', async () => {
    let live = true;
    const admin = createAdminServer({
      metrics: { registry: { metrics: async () => '', contentType: 'text/plain' } },
      ready: async () => ({ ready: true, checks: {} }),
      live: () =>
        live
          ? { ok: true }
          : { ok: false, reason: 'workers_down', details: { workers: '1/2', down_ms: 61_000 } },
    });
    servers.push(admin);
    await new Promise<void>((r) => admin.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(admin.address() as AddressInfo).port}/healthz`;
    let res = await fetch(url);
    expect([res.status, await res.json()]).toEqual([200, { status: 'ok' }]);
    live = false;
    res = await fetch(url);
    expect([res.status, await res.json()]).toEqual([
      503,
      { status: 'unhealthy', reason: 'workers_down', workers: '1/2', down_ms: 61_000 },
    ]);
  });
});
