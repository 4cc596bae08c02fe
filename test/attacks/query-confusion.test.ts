import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import { trustplane as honoTrustplane, type TrustplaneEnv } from '../../pkg/middleware/hono/index.js';
import { trustplane as nodeTrustplane } from '../../pkg/middleware/node/index.js';
import { rawSend, startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import { NOW, createWorld, signed, type World } from '../helpers/fixture.js';
import { baseOf, closeServers, listen, serveFetch, startNginxForwardAuth } from '../helpers/frameworks.js';
import { NGINX, type NginxServer } from '../helpers/nginx.js';
import { requireServer } from '../helpers/redis.js';

// And the Host. Query normalization (transcript-v1) is lossy on purpose: pair order, escapes and `+` are
// normalized away, so two raw queries an upstream reads differently carry the same proof. The
// upstream must therefore read the canonical query: the proxy forwards it and both middlewares
// hand it to the handlers; forward-auth, whose gateway forwards the raw query, refuses the
// ambiguous spellings (`+`, a repeated key).

let world: World;
const servers: http.Server[] = [];
const adapters: TestAdapter[] = [];
let nginx: NginxServer | undefined;
const points: { name: string; base: string; forwardAuth: boolean }[] = [];

/** Express's default query parser (node:querystring) reads `+` as a space and a repeated key as an array. */
function echo(app: express.Express): void {
  app.get('/v1/orders/search', (req, res) => {
    res.json({
      query: req.query,
      host: req.get('host'),
      subject: req.get('x-trustplane-subject') ?? req.trustplane?.subject ?? null,
    });
  });
}

async function serve(handler: http.RequestListener): Promise<http.Server> {
  const server = await listen(handler);
  servers.push(server);
  return server;
}

beforeAll(async () => {
  world = await createWorld();
  const upstreamApp = express();
  echo(upstreamApp);
  const upstream = await serve(upstreamApp);
  const proxy = await startTestAdapter(world, { upstream: baseOf(upstream) });
  adapters.push(proxy);
  points.push({ name: 'proxy → Express', base: proxy.base, forwardAuth: false });

  const guarded = express();
  guarded.use(
    nodeTrustplane({
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
    }),
  );
  echo(guarded);
  points.push({ name: 'Node middleware in Express', base: baseOf(await serve(guarded)), forwardAuth: false });

  const hono = new Hono<TrustplaneEnv>();
  hono.use(
    '*',
    honoTrustplane({
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
    }),
  );
  hono.get('/v1/orders/search', (c) =>
    c.json({
      query: c.req.queries(),
      host: new URL(c.req.url).host,
      subject: c.get('trustplane')?.subject ?? null,
    }),
  );
  const honoServer = await serveFetch(hono.fetch);
  servers.push(honoServer);
  points.push({ name: 'Hono middleware in Hono', base: baseOf(honoServer), forwardAuth: false });

  if (requireServer('nginx', NGINX)) {
    const fa = await startNginxForwardAuth(world, (upstream.address() as AddressInfo).port);
    adapters.push(fa.forwardAuth);
    nginx = fa.nginx;
    points.push({ name: 'nginx + forward-auth → Express', base: nginx.base, forwardAuth: true });
  }
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  for (const a of adapters) await a.adapter.close();
  await closeServers(servers);
});

/** Sign `signedTarget`, send `sentTarget` (an in-path edit the proof does not see). */
async function send(p: (typeof points)[number], signedTarget: string, sentTarget: string) {
  const s = await signed(world, { target: signedTarget });
  const res = await rawSend(p.base, {
    method: 'GET',
    target: sentTarget,
    headers: { host: new URL(s.url).host, ...s.headers },
  });
  return { status: res.status, body: res.body };
}

/** A value as the handler read it (Hono's queries() gives arrays). */
function first(query: Record<string, unknown>, key: string): unknown {
  const v = query[key];
  return Array.isArray(v) ? v[0] : v;
}

describe('attack: in-path query edits the proof does not see', () => {
  it('attack: q=a+b sent where q=a%2Bb was signed: the handler reads the verified a+b, never "a b"', async () => {
    for (const p of points) {
      const r = await send(p, '/v1/orders/search?q=a%2Bb', '/v1/orders/search?q=a+b');
      if (p.forwardAuth) {
        // The gateway would forward q=a+b as sent: refused (nginx maps the 400 to 500).
        expect([p.name, r.status]).toEqual([p.name, 500]);
        continue;
      }
      expect([p.name, r.status]).toEqual([p.name, 200]);
      expect([p.name, first((JSON.parse(r.body) as { query: Record<string, unknown> }).query, 'q')]).toEqual([
        p.name,
        'a+b',
      ]);
    }
  });

  it('attack: swapped values of a repeated key: the handler reads the same first value either way', async () => {
    for (const p of points) {
      const honest = await send(
        p,
        '/v1/orders/search?role=user&role=admin',
        '/v1/orders/search?role=user&role=admin',
      );
      const swapped = await send(
        p,
        '/v1/orders/search?role=user&role=admin',
        '/v1/orders/search?role=admin&role=user',
      );
      if (p.forwardAuth) {
        expect([p.name, honest.status, swapped.status]).toEqual([p.name, 500, 500]);
        continue;
      }
      expect([p.name, honest.status, swapped.status]).toEqual([p.name, 200, 200]);
      const read = (r: { body: string }) =>
        first((JSON.parse(r.body) as { query: Record<string, unknown> }).query, 'role');
      expect([p.name, read(swapped)]).toEqual([p.name, read(honest)]);
    }
  });

  it('control: an unambiguous query in another pair order is verified and reaches the handler', async () => {
    for (const p of points) {
      const r = await send(p, '/v1/orders/search?b=2&a=1', '/v1/orders/search?b=2&a=1');
      expect([p.name, r.status]).toEqual([p.name, 200]);
      expect(JSON.parse(r.body)).toMatchObject({ subject: 'service:orders-client' });
    }
  });
});

describe('attack: a Host other than the signed origin (the API base_url is https://orders.example)', () => {
  it('the handler reads the signed origin; forward-auth, which cannot replace it, refuses', async () => {
    for (const p of points) {
      const s = await signed(world, { target: '/v1/orders/search' });
      const res = await rawSend(p.base, {
        method: 'GET',
        target: '/v1/orders/search',
        headers: { ...s.headers, host: 'evil.example' },
      });
      if (p.forwardAuth) {
        expect([p.name, res.status]).toEqual([p.name, 401]); // request_binding_mismatch
        continue;
      }
      expect([p.name, res.status]).toEqual([p.name, 200]);
      expect([p.name, (JSON.parse(res.body) as { host: string }).host]).toEqual([p.name, 'orders.example']);
    }
  });
});
