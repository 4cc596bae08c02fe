import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Hono, type Context } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { MemoryReplayStore, type ReasonCode } from '../../pkg/authcore/index.js';
import { trustplane as honoTrustplane, type TrustplaneEnv } from '../../pkg/middleware/hono/index.js';
import { trustplane as nodeTrustplane } from '../../pkg/middleware/node/index.js';
import { rawSend, startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import {
  NOW,
  OTHER_ISSUER,
  SOFTWARE_ISSUER,
  TRUST_DOMAIN,
  createWorld,
  signed,
  type World,
} from '../helpers/fixture.js';
import { baseOf, closeServers, listen, serveFetch, startNginxForwardAuth } from '../helpers/frameworks.js';
import { NGINX, type NginxServer } from '../helpers/nginx.js';
import { requireServer } from '../helpers/redis.js';

// The upstream must see exactly what was verified. A low-privilege caller may call GET
// /v1/items/{id}; only an admin may call its literal sibling GET /v1/items/export or DELETE an item.
// Each attack is sent through every enforcement point in front of REAL frameworks (Express, which
// folds case and runs HEAD on GET handlers; Hono, which decodes the path; nginx behind
// forward-auth) and asserts the reason, the status, and that no handler ran.

const caller = {
  source_type: 'software_jwks',
  issuer: SOFTWARE_ISSUER,
  trust_domain: TRUST_DOMAIN,
  subject_exact: 'service:orders-client',
};
const admin = {
  source_type: 'software_jwks',
  issuer: OTHER_ISSUER,
  trust_domain: 'other.local',
  subject_prefix: 'service:',
};

function routes(doc: Record<string, unknown>): void {
  const groups = doc.route_groups as { routes: Record<string, unknown>[] }[];
  groups[0]!.routes.push(
    { route_id: 'items.get', method: 'GET', path_template: '/v1/items/{id}', allowed_sources: [caller] },
    { route_id: 'items.export', method: 'GET', path_template: '/v1/items/export', allowed_sources: [admin] },
    { route_id: 'items.update', method: 'POST', path_template: '/v1/items/{id}', allowed_sources: [caller] },
    { route_id: 'items.delete', method: 'DELETE', path_template: '/v1/items/{id}', allowed_sources: [admin] },
    {
      route_id: 'dry.item',
      method: 'GET',
      path_template: '/v1/dry/{item}',
      enforcement: 'dry-run',
      allowed_sources: [caller],
    },
    { route_id: 'dry.admin', method: 'GET', path_template: '/v1/dry/admin', allowed_sources: [admin] },
    { route_id: 'secret.get', method: 'GET', path_template: '/v1/secret', allowed_sources: [admin] },
    {
      route_id: 'secret.head',
      method: 'HEAD',
      path_template: '/v1/secret',
      enforcement: 'dry-run',
      allowed_sources: [caller],
    },
  );
}

/** Handler hits by name, across every upstream. */
const hits: string[] = [];

/** The same application routes, as an Express app: case-insensitive, HEAD served by GET, method override. */
function expressRoutes(app: express.Express): void {
  // A common application pattern (the method-override package does the same).
  app.use((req, _res, next) => {
    const override = req.get('x-http-method-override');
    if (req.method === 'POST' && override !== undefined) req.method = override.toUpperCase();
    next();
  });
  const hit = (name: string) => (req: express.Request, res: express.Response) => {
    hits.push(name);
    res
      .set('x-upstream', name)
      .json({ handler: name, subject: req.get('x-trustplane-subject') ?? req.trustplane?.subject ?? null });
  };
  app.get('/v1/items/export', hit('items.export'));
  app.get('/v1/items/:id', hit('items.get'));
  app.post('/v1/items/:id', hit('items.update'));
  app.delete('/v1/items/:id', hit('items.delete'));
  app.get('/v1/dry/admin', hit('dry.admin'));
  app.get('/v1/dry/:item', hit('dry.item'));
  app.get('/v1/secret', hit('secret.get'));
}

/** The same routes as a Hono app: Hono routes on the decoded path. */
function honoRoutes(app: Hono<TrustplaneEnv>): void {
  const hit = (name: string) => (c: Context<TrustplaneEnv>) => {
    hits.push(name);
    return c.json(
      {
        handler: name,
        subject: c.req.header('x-trustplane-subject') ?? c.get('trustplane')?.subject ?? null,
      },
      200,
      { 'x-upstream': name },
    );
  };
  app.get('/v1/items/export', hit('items.export'));
  app.get('/v1/items/:id', hit('items.get'));
  app.post('/v1/items/:id', hit('items.update'));
  app.delete('/v1/items/:id', hit('items.delete'));
  app.get('/v1/dry/admin', hit('dry.admin'));
  app.get('/v1/dry/:item', hit('dry.item'));
  app.get('/v1/secret', hit('secret.get'));
}

interface Point {
  readonly name: string;
  readonly base: () => string;
}

let world: World;
const servers: http.Server[] = [];
const adapters: TestAdapter[] = [];
let nginx: NginxServer | undefined;
const points: Point[] = [];

beforeAll(async () => {
  world = await createWorld({ policyPatch: routes });
  // Upstreams behind the adapter and nginx.
  const expressUpstream = express();
  expressRoutes(expressUpstream);
  const expressUp = await listen(expressUpstream);
  const honoUpstream = new Hono<TrustplaneEnv>();
  honoRoutes(honoUpstream);
  const honoUp = await serveFetch(honoUpstream.fetch);
  servers.push(expressUp, honoUp);

  const proxyExpress = await startTestAdapter(world, { upstream: baseOf(expressUp) });
  const proxyHono = await startTestAdapter(world, { upstream: baseOf(honoUp) });
  adapters.push(proxyExpress, proxyHono);

  // The Node middleware in an Express app, the Hono middleware in a Hono app.
  const guarded = express();
  guarded.use(
    nodeTrustplane({
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
      audit: new MemoryAuditSink(),
    }),
  );
  expressRoutes(guarded);
  const guardedServer = await listen(guarded);
  const guardedHono = new Hono<TrustplaneEnv>();
  guardedHono.use(
    '*',
    honoTrustplane({
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
    }),
  );
  honoRoutes(guardedHono);
  const guardedHonoServer = await serveFetch(guardedHono.fetch);
  servers.push(guardedServer, guardedHonoServer);

  points.push(
    { name: 'proxy → Express', base: () => proxyExpress.base },
    { name: 'proxy → Hono', base: () => proxyHono.base },
    { name: 'Node middleware in Express', base: () => baseOf(guardedServer) },
    { name: 'Hono middleware in Hono', base: () => baseOf(guardedHonoServer) },
  );

  if (requireServer('nginx', NGINX)) {
    const fa = await startNginxForwardAuth(world, (expressUp.address() as AddressInfo).port);
    adapters.push(fa.forwardAuth);
    nginx = fa.nginx;
    points.push({ name: 'nginx + forward-auth → Express', base: () => nginx!.base });
  }
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  for (const a of adapters) await a.adapter.close();
  await closeServers(servers);
});

interface Attack {
  readonly name: string;
  /** The request: signed by the low-privilege caller for `signAs`, then sent as `send`. */
  readonly signAs: { method: string; target: string; routeId: string };
  readonly send: { method: string; target: string; headers?: Record<string, string>; dropPassport?: boolean };
  readonly reason: ReasonCode;
  readonly status: number;
  /**
   * nginx itself removes the attack before anything sees it (it drops header names with `_` and
   * consumes `Connection`): behind it the request is the honest one and reaches only this handler.
   */
  readonly nginxNeutralizes?: string;
}

const ATTACKS: readonly Attack[] = [
  {
    name: 'attack: path confusion by letter case (Express folds EXPORT into export)',
    signAs: { method: 'GET', target: '/v1/items/EXPORT', routeId: 'items.get' },
    send: { method: 'GET', target: '/v1/items/EXPORT' },
    reason: 'ambiguous_request_path',
    status: 400,
  },
  {
    name: 'attack: path confusion by an encoded letter (Hono decodes %65xport into export)',
    signAs: { method: 'GET', target: '/v1/items/42', routeId: 'items.get' },
    send: { method: 'GET', target: '/v1/items/%65xport' },
    reason: 'unsafe_request_path',
    status: 400,
  },
  {
    name: 'attack: path confusion by a ; path parameter (servlets strip export;x to export)',
    signAs: { method: 'GET', target: '/v1/items/42', routeId: 'items.get' },
    send: { method: 'GET', target: '/v1/items/export;x=1' },
    reason: 'unsafe_request_path',
    status: 400,
  },
  {
    name: 'attack: dry-run sibling by letter case, no passport (must not pass to the enforced admin route)',
    signAs: { method: 'GET', target: '/v1/dry/x', routeId: 'dry.item' },
    send: { method: 'GET', target: '/v1/dry/ADMIN', dropPassport: true },
    reason: 'missing_passport',
    status: 401,
  },
  {
    name: 'attack: dry-run sibling by an encoded letter, no passport',
    signAs: { method: 'GET', target: '/v1/dry/x', routeId: 'dry.item' },
    send: { method: 'GET', target: '/v1/dry/%61dmin', dropPassport: true },
    // Credentials are parsed first; an unsafe path resolves no route, so the deny is enforced.
    reason: 'missing_passport',
    status: 401,
  },
  {
    name: 'attack: a dry-run HEAD route next to an enforced GET (frameworks serve HEAD with GET)',
    signAs: { method: 'HEAD', target: '/v1/secret', routeId: 'secret.head' },
    send: { method: 'HEAD', target: '/v1/secret' },
    reason: 'ambiguous_request_path',
    status: 400,
  },
  {
    name: 'attack: X-HTTP-Method-Override: DELETE on the caller’s own POST route',
    signAs: { method: 'POST', target: '/v1/items/42', routeId: 'items.update' },
    send: { method: 'POST', target: '/v1/items/42', headers: { 'x-http-method-override': 'DELETE' } },
    reason: 'unsafe_request_header',
    status: 400,
  },
  {
    name: 'attack: spoofed X_TrustPlane_Subject (an underscore twin merged by CGI/WSGI)',
    signAs: { method: 'GET', target: '/v1/items/42', routeId: 'items.get' },
    send: { method: 'GET', target: '/v1/items/42', headers: { x_trustplane_subject: 'service:admin' } },
    reason: 'unsafe_request_header',
    status: 400,
    nginxNeutralizes: 'items.get',
  },
  {
    name: 'attack: Connection: host (a proxy would drop the verified Host and send its own)',
    signAs: { method: 'GET', target: '/v1/items/42', routeId: 'items.get' },
    send: { method: 'GET', target: '/v1/items/42', headers: { connection: 'keep-alive, host' } },
    reason: 'unsafe_request_header',
    status: 400,
    nginxNeutralizes: 'items.get',
  },
];

/** nginx's auth_request maps deny statuses other than 401/403 to 500 (never the upstream). */
const nginxStatus = (status: number) => (status === 401 || status === 403 ? status : 500);

describe('attacks through every enforcement point in front of real frameworks', () => {
  it('control: the honest request reaches exactly its handler, with the verified identity', async () => {
    for (const p of points) {
      const s = await signed(world, { target: '/v1/items/42', routeId: 'items.get' });
      const u = new URL(s.url);
      hits.length = 0;
      const res = await rawSend(p.base(), {
        method: 'GET',
        target: `${u.pathname}${u.search}`,
        headers: { host: u.host, ...s.headers },
      });
      expect([p.name, res.status]).toEqual([p.name, 200]);
      expect([p.name, hits]).toEqual([p.name, ['items.get']]);
      expect(JSON.parse(res.body)).toMatchObject({ handler: 'items.get', subject: 'service:orders-client' });
    }
  });

  for (const attack of ATTACKS) {
    it(attack.name, async () => {
      for (const p of points) {
        const body = attack.signAs.method === 'POST' ? '{"qty":1}' : undefined;
        const s = await signed(world, {
          ...attack.signAs,
          ...(body !== undefined ? { body, headers: { 'content-type': 'application/json' } } : {}),
        });
        const headers: Record<string, string> = {
          host: new URL(s.url).host,
          ...s.headers,
          ...attack.send.headers,
        };
        if (attack.send.dropPassport === true) delete headers.authorization;
        hits.length = 0;
        const res = await rawSend(p.base(), {
          method: attack.send.method,
          target: attack.send.target,
          headers,
          ...(body !== undefined ? { body } : {}),
        });
        const behindNginx = p.name.startsWith('nginx');
        if (behindNginx && attack.nginxNeutralizes !== undefined) {
          // nginx removed the attack: the honest request, with the verified identity only.
          expect([p.name, res.status, hits]).toEqual([p.name, 200, [attack.nginxNeutralizes]]);
          expect(JSON.parse(res.body)).toMatchObject({ subject: 'service:orders-client' });
          continue;
        }
        expect([p.name, res.status]).toEqual([
          p.name,
          behindNginx ? nginxStatus(attack.status) : attack.status,
        ]);
        if (!behindNginx && attack.send.method !== 'HEAD') {
          expect([p.name, JSON.parse(res.body)]).toEqual([p.name, { allowed: false, reason: attack.reason }]);
        }
        if (!behindNginx)
          expect([p.name, res.headers['x-trustplane-reason']]).toEqual([p.name, attack.reason]);
        // No handler ran: the upstream saw nothing.
        expect([p.name, hits]).toEqual([p.name, []]);
      }
    });
  }
});
