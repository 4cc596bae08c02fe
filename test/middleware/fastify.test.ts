import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import { trustplane } from '../../pkg/middleware/fastify/index.js';
import { rawSend, sendSigned } from '../helpers/adapter.js';
import { NOW, createWorld, signed, signedJson, type World } from '../helpers/fixture.js';

// The Fastify plugin in a real Fastify 5 app over loopback. The case table of
// test/enforcement-points.test.ts runs on it too; this file checks what is Fastify's own: the
// verified bytes are what the parsers read, bodies of any content type, the canonical query in
// request.query, the plugin's scope, and the route never running on a deny.

let world: World;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  world = await createWorld();
});
afterAll(async () => {
  for (const app of apps) await app.close();
});

interface Seen {
  subject: string | null;
  body: unknown;
  bodyType: string;
  query: Record<string, unknown>;
  host: string | undefined;
}

/** A Fastify app whose catch-all route echoes what it was handed; `calls` counts route runs. */
async function startApp(scoped = false) {
  const audit = new MemoryAuditSink();
  const calls = { n: 0 };
  const app = Fastify();
  const options = { trust: world.trust, policy: world.policy, replayStore: new MemoryReplayStore() };
  const route = (scope: FastifyInstance, path: string) =>
    scope.all(path, async (request): Promise<Seen> => {
      calls.n++;
      return {
        subject: request.trustplane?.subject ?? null,
        body: Buffer.isBuffer(request.body) ? `buffer:${request.body.toString()}` : request.body,
        bodyType: Buffer.isBuffer(request.body) ? 'buffer' : typeof request.body,
        query: { ...(request.query as Record<string, unknown>) },
        host: request.headers.host,
      };
    });
  if (scoped) {
    // Guarded: /v1/*; not guarded: /public (a sibling context).
    await app.register(async (guarded) => {
      await guarded.register(trustplane, { ...options, audit, clock: () => NOW });
      route(guarded, '/v1/*');
    });
    route(app, '/public');
  } else {
    await app.register(trustplane, { ...options, audit, clock: () => NOW });
    route(app, '*');
  }
  await app.listen({ host: '127.0.0.1', port: 0 });
  apps.push(app);
  return { base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, audit, calls };
}

describe('trustplane/middleware/fastify: allow', () => {
  it('a signed JSON POST: the route sees the identity and the body parsed from the verified bytes', async () => {
    const { base, calls } = await startApp();
    const body = '{"sku":"A-1","qty":2}';
    const res = await sendSigned(base, await signedJson(world, body), {}, body);
    expect(res.status, res.body).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({
      subject: 'service:orders-client',
      body: { sku: 'A-1', qty: 2 },
      bodyType: 'object',
    });
    expect(calls.n).toBe(1);
  });

  it('a body of a content type the app has no parser for reaches the route as its raw bytes', async () => {
    const { base } = await startApp();
    const body = 'opaque\u0000bytes';
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders',
      routeId: 'orders.create',
      body,
      headers: { 'content-type': 'application/octet-stream' },
    });
    const res = await sendSigned(base, s, {}, body);
    expect(res.status, res.body).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ body: `buffer:${body}`, bodyType: 'buffer' });
  });

  it('attack: a tampered body is denied before any parser reads it; the route does not run', async () => {
    const { base, calls, audit } = await startApp();
    const body = '{"sku":"A-1","qty":2}';
    const res = await sendSigned(base, await signedJson(world, body), {}, body.replace('2', '9'));
    expect([res.status, res.body]).toEqual([401, '{"allowed":false,"reason":"request_binding_mismatch"}']);
    expect(res.headers['x-trustplane-reason']).toBe('request_binding_mismatch');
    expect(calls.n).toBe(0);
    expect(audit.events).toHaveLength(1);
    expect(audit.events[0]).toMatchObject({ component: 'middleware-fastify', decision: 'deny' });
  });

  it('request.query holds the query as verified: a + is a plus, never a space', async () => {
    const { base } = await startApp();
    const s = await signed(world, { target: '/v1/orders/search?q=a%2Bb&z=1&a=2' });
    const res = await sendSigned(base, s, { target: '/v1/orders/search?z=1&q=a+b&a=2' });
    // The caller signed q=a%2Bb; the raw + is the same octet in transcript-v1.
    expect(res.status, res.body).toBe(200);
    expect((JSON.parse(res.body) as Seen).query).toEqual({ a: '2', q: 'a+b', z: '1' });
  });

  it('the Host the route reads is the authority the transcript covered', async () => {
    const { base } = await startApp();
    const s = await signed(world);
    const res = await sendSigned(base, s, { headers: { host: 'ORDERS.example' } });
    expect(res.status, res.body).toBe(200);
    expect((JSON.parse(res.body) as Seen).host).toBe('orders.example');
  });
});

describe('trustplane/middleware/fastify: scope', () => {
  it('registered in a context, it guards that context only', async () => {
    const { base, calls } = await startApp(true);
    const open = await rawSend(base, { method: 'GET', target: '/public' });
    expect(open.status).toBe(200);
    expect(JSON.parse(open.body)).toMatchObject({ subject: null });
    const guarded = await rawSend(base, { method: 'GET', target: '/v1/orders/search' });
    expect([guarded.status, guarded.headers['x-trustplane-reason']]).toEqual([401, 'missing_passport']);
    expect(calls.n).toBe(1);
  });

  it('attack: path confusion %2F: 400 unsafe_request_path, the route does not run', async () => {
    const { base, calls } = await startApp();
    const res = await sendSigned(base, await signed(world), { target: '/v1/orders/..%2Fsearch' });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([400, 'unsafe_request_path']);
    expect(calls.n).toBe(0);
  });

  it('onDecision throwing fails closed: 500 internal_error, the route does not run', async () => {
    const app = Fastify();
    let runs = 0;
    await app.register(trustplane, {
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
      onDecision: () => {
        throw new Error('observer failed');
      },
    });
    app.all('*', async () => ++runs);
    await app.listen({ host: '127.0.0.1', port: 0 });
    apps.push(app);
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const res = await sendSigned(base, await signed(world));
    expect([res.status, res.body]).toEqual([500, '{"allowed":false,"reason":"internal_error"}']);
    expect(runs).toBe(0);
  });

  it('a chunked body over maxBodyBytes: 413 body_too_large with Connection: close, the route does not run', async () => {
    const { base, calls } = await startApp();
    const s = await signedJson(world, '{}');
    const res = await rawSend(base, {
      method: 'POST',
      target: '/v1/orders',
      headers: { ...s.headers, host: 'orders.example', 'transfer-encoding': 'chunked' },
      body: 'x'.repeat(1024 * 1024 + 1),
    });
    expect([res.status, res.headers['x-trustplane-reason'], res.headers.connection]).toEqual([
      413,
      'body_too_large',
      'close',
    ]);
    expect(calls.n).toBe(0);
  });

  it('options are checked at registration', async () => {
    const app = Fastify();
    await expect(
      app
        .register(trustplane, {
          trust: world.trust,
          policy: world.policy,
          replayStore: new MemoryReplayStore(),
          onDecision: 'no' as never,
        })
        .ready(),
    ).rejects.toThrow(TypeError);
    await app.close();
  });
});
