import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDENTITY_HEADERS } from '../../pkg/proof/wire.js';
import {
  sendSigned,
  startTestAdapter,
  startUpstream,
  withNotesRoute,
  type TestAdapter,
  type Upstream,
} from '../helpers/adapter.js';
import { CADDY, startCaddy, type CaddyServer } from '../helpers/caddy.js';
import { createWorld, signed, signedJson, type World } from '../helpers/fixture.js';
import { freePort, requireServer } from '../helpers/redis.js';

// A real Caddy runs examples/caddy/Caddyfile unchanged (only its {$VAR} ports are set), with
// forward_auth to a forward-auth adapter (`--forward-auth-gateway caddy`) in front of a loopback
// upstream. The rule under test: the upstream sees exactly the request that was verified, with the
// verified identity and nothing a client claimed; anything else is refused before the upstream.

const CADDYFILE = fileURLToPath(new URL('../../examples/caddy/Caddyfile', import.meta.url));

describe('Caddy forward_auth in front of a loopback upstream (examples/caddy/Caddyfile)', () => {
  if (!requireServer('caddy', CADDY)) return;

  let world: World;
  let upstream: Upstream;
  let fa: TestAdapter;
  let caddy: CaddyServer;

  beforeAll(async () => {
    world = await createWorld({
      policyPatch: (doc) => {
        withNotesRoute(doc);
        const groups = doc.route_groups as { routes: Record<string, unknown>[] }[];
        groups[0]!.routes.push({
          route_id: 'orders.dryrun',
          method: 'GET',
          path_template: '/v1/dry/orders',
          enforcement: 'dry-run',
          allowed_sources: [
            {
              source_type: 'software_jwks',
              issuer: 'https://issuer.example/software-jwks',
              trust_domain: 'example.local',
              subject_exact: 'service:orders-client',
            },
          ],
        });
      },
    });
    upstream = await startUpstream();
    fa = await startTestAdapter(world, { mode: 'forward-auth', forwardAuthGateway: 'caddy' });
    caddy = await startCaddy(CADDYFILE, {
      TRUSTPLANE_FORWARD_AUTH: `127.0.0.1:${fa.adapter.address.port}`,
      TRUSTPLANE_UPSTREAM: `127.0.0.1:${upstream.port}`,
    });
  }, 30_000);
  afterAll(async () => {
    await caddy?.stop();
    await fa?.adapter.close();
    await upstream?.close();
  });

  it('an allowed request reaches the upstream exactly as verified, with the verified identity only', async () => {
    const s = await signed(world, { target: '/v1/orders/search?b=2&a=1' });
    const before = upstream.requests.length;
    const res = await sendSigned(caddy.base, s, {
      headers: {
        // attack: spoofed identity, and protocol headers describing another request
        'x-trustplane-subject': 'service:spoofed',
        'x-trustplane-route-id': 'admin',
        'x-trustplane-body-verified': 'true',
        'x-forwarded-method': 'DELETE',
        'x-forwarded-uri': '/v1/admin',
        'x-original-method': 'DELETE',
        'x-original-uri': '/v1/admin',
        'x-real-ip': '203.0.113.9',
      },
    });
    expect(res.status, caddy.log()).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ subject: 'service:orders-client', bytes: 0 });
    expect(upstream.requests.length).toBe(before + 1);
    const seen = upstream.requests.at(-1)!;
    expect(seen.method).toBe('GET');
    expect(seen.url).toBe('/v1/orders/search?b=2&a=1');
    expect(seen.headers).toMatchObject({
      'x-trustplane-subject': 'service:orders-client',
      'x-trustplane-issuer': 'https://issuer.example/software-jwks',
      'x-trustplane-trust-domain': 'example.local',
      'x-trustplane-route-id': 'orders.search',
      'x-trustplane-jti': s.claims.jti,
      'x-trustplane-key-binding': 'software',
      // forward_auth never sends the body: a GET is decided with the empty body, but not verified
      'x-trustplane-body-verified': 'false',
    });
    for (const h of [
      'authorization',
      'x-trustplane-proof',
      'x-trustplane-nonce',
      'x-forwarded-method',
      'x-forwarded-uri',
    ])
      expect(seen.headers[h], h).toBeUndefined();
    expect(fa.audit.events.at(-1)).toMatchObject({
      decision: 'allow',
      method: 'GET',
      path: '/v1/orders/search',
      // Caddy sets X-Forwarded-For to the peer; X-Real-IP is whatever the client sent.
      client_address: '127.0.0.1',
    });
  });

  it('a denied request gets the JSON deny body, the reason and WWW-Authenticate, and never reaches the upstream', async () => {
    const before = upstream.requests.length;
    const res = await sendSigned(caddy.base, await signed(world), { headers: { authorization: null } });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toEqual({ allowed: false, reason: 'missing_passport' });
    expect(res.headers['x-trustplane-reason']).toBe('missing_passport');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="trustplane"');
    expect(res.headers['content-type']).toBe('application/json');
    const wrongAudience = await sendSigned(
      caddy.base,
      await signed(world, { claims: { aud: 'billing-api' } }),
    );
    expect([wrongAudience.status, JSON.parse(wrongAudience.body)]).toEqual([
      403,
      { allowed: false, reason: 'audience_mismatch' },
    ]);
    expect(upstream.requests.length).toBe(before);
  });

  it('attack: replay: the same request twice, the second 401 jti_replay', async () => {
    const s = await signed(world);
    expect((await sendSigned(caddy.base, s)).status).toBe(200);
    const before = upstream.requests.length;
    const replay = await sendSigned(caddy.base, s);
    expect([replay.status, JSON.parse(replay.body)]).toEqual([401, { allowed: false, reason: 'jti_replay' }]);
    expect(upstream.requests.length).toBe(before);
  });

  it('attack: spoofed X-TrustPlane-Subject on a denied request: refused, the upstream sees nothing', async () => {
    const s = await signed(world, { claims: { aud: 'billing-api' } });
    const before = upstream.requests.length;
    const headers: Record<string, string> = {};
    for (const h of IDENTITY_HEADERS) headers[h] = 'spoofed';
    const res = await sendSigned(caddy.base, s, { headers });
    expect(res.status).toBe(403);
    expect(res.headers['x-trustplane-subject']).toBeUndefined();
    expect(upstream.requests.length).toBe(before);
  });

  it('attack: a dry-run pass carries no identity: every identity header reaches the upstream empty', async () => {
    // The endpoint answers all seven headers empty; Caddy 2.6 would copy a header the answer lacks as
    // the literal text of its placeholder, and a client's copy must not survive either.
    const s = await signed(world, { target: '/v1/dry/orders', routeId: 'orders.dryrun' });
    const spoofed: Record<string, string | null> = { authorization: null };
    for (const h of IDENTITY_HEADERS) spoofed[h] = 'spoofed';
    const res = await sendSigned(caddy.base, s, { headers: spoofed });
    expect(res.status, res.body).toBe(200);
    const seen = upstream.requests.at(-1)!;
    expect(seen.url).toBe('/v1/dry/orders');
    for (const h of [...IDENTITY_HEADERS, 'x-trustplane-body-verified'])
      expect([h, seen.headers[h] ?? '']).toEqual([h, '']);
    expect(fa.audit.events.at(-1)).toMatchObject({ reason: 'missing_passport', enforcement: 'dry-run' });
  });

  it('bodies are not bound: a body route is denied unverifiable_body; a route that allows unverified bodies passes, marked', async () => {
    const body = '{"order_id":"o1"}';
    const before = upstream.requests.length;
    const denied = await sendSigned(caddy.base, await signedJson(world, body), {}, body);
    expect([denied.status, JSON.parse(denied.body)]).toEqual([
      403,
      { allowed: false, reason: 'unverifiable_body' },
    ]);
    expect(upstream.requests.length).toBe(before);
    const notes = await signed(world, {
      method: 'POST',
      target: '/v1/orders/o1/notes',
      routeId: 'orders.notes',
      body: 'note',
      headers: { 'content-type': 'text/plain' },
    });
    const allowed = await sendSigned(caddy.base, notes, {}, 'note');
    expect(allowed.status).toBe(200);
    const seen = upstream.requests.at(-1)!;
    expect(seen.headers['x-trustplane-body-verified']).toBe('false');
    expect(seen.body.toString()).toBe('note');
  });

  // Each request is signed for GET /v1/orders/search (the SDK refuses to sign an unsafe path) and
  // sent on a path that a normalizing reader could take for it. Caddy forwards the raw URI both to
  // the endpoint and upstream; the adapter refuses what is not plain, before any signature check.
  it.each([
    ['%2F', '/v1/orders/..%2Fsearch', 400, 'unsafe_request_path'],
    ['%2f', '/v1/orders/a%2fb', 400, 'unsafe_request_path'],
    ['dot segment', '/v1/orders/./search', 400, 'unsafe_request_path'],
    ['dot-dot segment', '/v1/admin/../orders/search', 400, 'unsafe_request_path'],
    ['empty segment', '/v1//orders/search', 400, 'unsafe_request_path'],
    ['encoded dot-dot', '/v1/admin/%2e%2e/orders/search', 400, 'unsafe_request_path'],
    ['case', '/V1/Orders/search', 403, 'bundle_route_missing'],
    ['encoded letter', '/v1/orders/%73earch', 400, 'unsafe_request_path'],
  ])('attack: path confusion (%s) never reaches the upstream', async (_name, target, status, reason) => {
    const s = await signed(world, { target: '/v1/orders/search' });
    const before = upstream.requests.length;
    const res = await sendSigned(caddy.base, s, { target });
    // Caddy returns the endpoint's answer as it is (nginx would turn a 400 into a 500).
    expect([res.status, res.body], caddy.log()).toEqual([status, JSON.stringify({ allowed: false, reason })]);
    expect(upstream.requests.length).toBe(before);
    expect(fa.audit.events.at(-1)).toMatchObject({ decision: 'deny', reason });
  });

  it('the endpoint unreachable: Caddy answers 502 and the upstream sees nothing (fail closed)', async () => {
    const orphan = await startCaddy(CADDYFILE, {
      TRUSTPLANE_FORWARD_AUTH: `127.0.0.1:${await freePort()}`,
      TRUSTPLANE_UPSTREAM: `127.0.0.1:${upstream.port}`,
    });
    try {
      const before = upstream.requests.length;
      const res = await sendSigned(orphan.base, await signed(world));
      expect(res.status).toBe(502);
      expect(upstream.requests.length).toBe(before);
    } finally {
      await orphan.stop();
    }
  }, 30_000);

  it('attack: a request signed for one path and sent on its dot-segment twin is refused', async () => {
    const s = await signed(world, { target: '/v1/orders/search' });
    const before = upstream.requests.length;
    const res = await sendSigned(caddy.base, s, { target: '/v1/orders/x/../search' });
    expect(res.status).toBe(400);
    expect(res.headers['x-trustplane-reason']).toBe('unsafe_request_path');
    expect(upstream.requests.length).toBe(before);
  });
});
