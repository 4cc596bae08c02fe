import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink, type AuditEvent } from '../../pkg/audit/index.js';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import type { LoadedPolicy } from '../../pkg/bundle/index.js';
import { trustplane as honoTrustplane, type TrustplaneVariables } from '../../pkg/middleware/hono/index.js';
import { trustplane as nodeTrustplane } from '../../pkg/middleware/node/index.js';
import { NOW, ORIGIN, createWorld, signed, toRequest, type World } from '../helpers/fixture.js';
import { patchedPolicy } from './helpers.js';

/** A sink whose durable writes succeed, fail (not queued) or fail with the event queued. */
class DurableSink extends MemoryAuditSink {
  mode: 'ok' | 'fail' | 'queued' | 'down' = 'ok';
  get durableAvailable(): boolean {
    return this.mode !== 'down';
  }
  async writeDurable(event: AuditEvent): Promise<void> {
    if (this.mode === 'fail') throw new Error('fsync failed');
    if (this.mode === 'queued') {
      this.events.push(event);
      throw Object.assign(new Error('not committed in time'), { queued: true });
    }
    this.events.push(event);
  }
}

let world: World;
let policy: LoadedPolicy;

beforeAll(async () => {
  world = await createWorld();
  policy = await patchedPolicy(world, (doc) => {
    const routes = (doc.route_groups as { routes: Record<string, unknown>[] }[])[0]!.routes;
    routes.find((r) => r.route_id === 'orders.search')!.audit = 'required';
  });
});

const outcomes = [
  ['ok', 200, 'allow', undefined],
  ['fail', 503, 'deny', 'audit_unavailable'],
  ['queued', 503, 'allow', undefined], // the queued allow stays the decision's one record
  ['down', 503, 'deny', 'audit_unavailable'],
] as const;

describe('middleware: audit: "required" routes', () => {
  it.each(outcomes)('hono, durable write %s → %i, one %s record', async (mode, status, recorded, reason) => {
    const sink = new DurableSink();
    sink.mode = mode;
    let calls = 0;
    const app = new Hono<{ Variables: TrustplaneVariables }>();
    app.use(
      '*',
      honoTrustplane({
        trust: world.trust,
        policy,
        replayStore: new MemoryReplayStore(),
        clock: () => NOW,
        audit: sink,
      }),
    );
    app.get('/v1/orders/search', (c) => {
      calls += 1;
      return c.json({ ok: true });
    });
    const res = await app.request(toRequest(await signed(world)));
    expect(res.status).toBe(status);
    if (status === 503) expect(await res.json()).toEqual({ allowed: false, reason: 'audit_unavailable' });
    expect(calls).toBe(status === 200 ? 1 : 0);
    expect(sink.events.map((e) => [e.decision, e.reason])).toEqual([[recorded, reason]]);
  });

  it('hono, without any sink: a required route cannot be allowed', async () => {
    const app = new Hono<{ Variables: TrustplaneVariables }>();
    app.use(
      '*',
      honoTrustplane({ trust: world.trust, policy, replayStore: new MemoryReplayStore(), clock: () => NOW }),
    );
    app.get('/v1/orders/search', (c) => c.json({ ok: true }));
    expect((await app.request(toRequest(await signed(world)))).status).toBe(503);
  });

  describe('express', () => {
    let server: Server;
    let base: string;
    const sink = new DurableSink();
    let calls = 0;

    beforeAll(async () => {
      const app = express();
      app.use(
        nodeTrustplane({
          trust: world.trust,
          policy,
          replayStore: new MemoryReplayStore(),
          clock: () => NOW,
          audit: sink,
        }),
      );
      app.get('/v1/orders/search', (_req, res) => {
        calls += 1;
        res.json({ ok: true });
      });
      server = createServer(app);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it.each(outcomes)('durable write %s → %i, one %s record', async (mode, status, recorded, reason) => {
      sink.mode = mode;
      sink.events.length = 0;
      const before = calls;
      const s = await signed(world);
      const res = await fetch(s.url.replace(ORIGIN, base), { headers: s.headers });
      expect(res.status).toBe(status);
      expect(calls - before).toBe(status === 200 ? 1 : 0);
      expect(sink.events.map((e) => [e.decision, e.reason])).toEqual([[recorded, reason]]);
    });
  });
});
