import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, signed, type World, signedJson } from '../helpers/fixture.js';
import {
  rawSend,
  startTestAdapter,
  withNotesRoute,
  type RawResponse,
  type TestAdapter,
} from '../helpers/adapter.js';

// Forward-auth reads the original request from ONE gateway protocol, the configured one
// (`forwardAuthGateway`): another protocol's headers may come from the caller.

let world: World;
let nginx: TestAdapter;
let traefik: TestAdapter;
let envoy: TestAdapter;

beforeAll(async () => {
  world = await createWorld({
    policyPatch: (doc) => {
      withNotesRoute(doc);
      const groups = doc.route_groups as { routes: Record<string, unknown>[] }[];
      groups[0]!.routes.push({
        route_id: 'orders.delete',
        method: 'DELETE',
        path_template: '/v1/orders/{order_id}',
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
  nginx = await startTestAdapter(world, { mode: 'forward-auth', forwardAuthGateway: 'nginx' });
  traefik = await startTestAdapter(world, { mode: 'forward-auth', forwardAuthGateway: 'traefik' });
  envoy = await startTestAdapter(world, {
    mode: 'forward-auth',
    forwardAuthGateway: 'envoy',
    forwardAuthPathPrefix: '/authz',
  });
});
afterAll(async () => {
  await Promise.all([nginx, traefik, envoy].map((a) => a?.adapter.close()));
});

function identity(res: RawResponse) {
  return {
    subject: res.headers['x-trustplane-subject'],
    route: res.headers['x-trustplane-route-id'],
    bodyVerified: res.headers['x-trustplane-body-verified'],
  };
}

/** What nginx's auth location sends (examples/nginx/trustplane-server.conf), no body. */
function nginxHeaders(method: string, uri: string, contentLength = '', coding = '') {
  return {
    'x-original-method': method,
    'x-original-uri': uri,
    'x-original-content-length': contentLength,
    'x-original-transfer-encoding': coding,
    'x-forwarded-host': 'orders.example',
    'x-forwarded-proto': 'https',
  };
}

/** What Traefik's ForwardAuth sends (it overwrites these on the auth request). */
function traefikHeaders(method: string, uri: string) {
  return {
    'x-forwarded-method': method,
    'x-forwarded-uri': uri,
    'x-forwarded-host': 'orders.example',
    'x-forwarded-proto': 'https',
  };
}

describe('forward-auth: nginx auth_request protocol', () => {
  it('allows with identity headers in the 200 response', async () => {
    const s = await signed(world, { target: '/v1/orders/search?limit=5' });
    const res = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, ...nginxHeaders('GET', '/v1/orders/search?limit=5') },
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe('');
    expect(identity(res)).toEqual({
      subject: 'service:orders-client',
      route: 'orders.search',
      bodyVerified: 'true',
    });
    expect(res.headers['x-trustplane-jti']).toBe(s.claims.jti);
    expect(nginx.audit.events.at(-1)).toMatchObject({
      component: 'forward-auth',
      decision: 'allow',
      path: '/v1/orders/search',
    });
  });

  it('denies a replay and a tampered URI', async () => {
    const s = await signed(world, { target: '/v1/orders/search?limit=5' });
    const send = (uri: string) =>
      rawSend(nginx.base, {
        method: 'GET',
        target: '/auth',
        headers: { ...s.headers, ...nginxHeaders('GET', uri) },
      });
    const tampered = await send('/v1/orders/search?limit=500');
    expect([tampered.status, JSON.parse(tampered.body)]).toEqual([
      401,
      { allowed: false, reason: 'request_binding_mismatch' },
    ]);
    expect((await send('/v1/orders/search?limit=5')).status).toBe(200);
    const replay = await send('/v1/orders/search?limit=5');
    expect([replay.status, replay.headers['x-trustplane-reason']]).toEqual([401, 'jti_replay']);
    expect(replay.headers['x-trustplane-subject']).toBeUndefined();
  });

  it('denies a body route it cannot see the body of: unverifiable_body', async () => {
    const body = '{"order_id":"o1"}';
    const s = await signedJson(world, body);
    const res = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, ...nginxHeaders('POST', '/v1/orders', String(body.length)) },
    });
    expect([res.status, JSON.parse(res.body)]).toEqual([
      403,
      { allowed: false, reason: 'unverifiable_body' },
    ]);
  });

  it('a GET whose gateway signals a body is denied too (body smuggling on a bodiless route)', async () => {
    const s = await signed(world);
    const res = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, ...nginxHeaders('GET', '/v1/orders/search', '12') },
    });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([403, 'unverifiable_body']);
  });

  it('a GET whose gateway signals a transfer coding is denied unverifiable_body', async () => {
    const s = await signed(world);
    const res = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, ...nginxHeaders('GET', '/v1/orders/search', '', 'chunked') },
    });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([403, 'unverifiable_body']);
  });

  it('a route with allow_unverified_body is allowed and marked unverified', async () => {
    const body = 'free text note';
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders/o1/notes',
      routeId: 'orders.notes',
      body,
      headers: { 'content-type': 'text/plain' },
    });
    const res = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, ...nginxHeaders('POST', '/v1/orders/o1/notes', String(body.length)) },
    });
    expect(res.status).toBe(200);
    expect(identity(res)).toEqual({
      subject: 'service:orders-client',
      route: 'orders.notes',
      bodyVerified: 'false',
    });
  });

  it('attack: body smuggling: a gateway that does not say whether there is a body gets Body-Verified false', async () => {
    // nginx configured without X-Original-Content-Length / -Transfer-Encoding: nothing says there is no body.
    const s = await signed(world);
    const headers: Record<string, string> = { ...s.headers, ...nginxHeaders('GET', '/v1/orders/search') };
    delete headers['x-original-content-length'];
    delete headers['x-original-transfer-encoding'];
    const res = await rawSend(nginx.base, { method: 'GET', target: '/auth', headers });
    expect([res.status, identity(res).bodyVerified]).toEqual([200, 'false']);
  });

  it('attack: a DELETE with no body signal is unverifiable (a body may ride along)', async () => {
    const s = await signed(world, { method: 'DELETE', target: '/v1/orders/o1', routeId: 'orders.delete' });
    const headers: Record<string, string> = { ...s.headers, ...nginxHeaders('DELETE', '/v1/orders/o1') };
    delete headers['x-original-content-length'];
    delete headers['x-original-transfer-encoding'];
    const res = await rawSend(nginx.base, { method: 'GET', target: '/auth', headers });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([403, 'unverifiable_body']);
    expect(res.headers['x-trustplane-subject']).toBeUndefined();
    // With the signal that there is no body, the same DELETE is allowed, its empty body verified.
    const ok = await signed(world, { method: 'DELETE', target: '/v1/orders/o2', routeId: 'orders.delete' });
    const allowed = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...ok.headers, ...nginxHeaders('DELETE', '/v1/orders/o2') },
    });
    expect([allowed.status, identity(allowed).bodyVerified]).toEqual([200, 'true']);
  });

  it('attack: caller-sent Traefik headers are never read behind nginx', async () => {
    const s = await signed(world, { target: '/v1/orders/search' });
    // nginx sets X-Original-*; the caller adds X-Forwarded-Method/-Uri describing something else.
    const res = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: {
        ...s.headers,
        ...nginxHeaders('GET', '/v1/orders/search'),
        'x-forwarded-method': 'DELETE',
        'x-forwarded-uri': '/v1/admin',
      },
    });
    expect([res.status, identity(res).route]).toEqual([200, 'orders.search']);
  });

  it('a request without the protocol headers is refused malformed_request', async () => {
    const s = await signed(world);
    const res = await rawSend(nginx.base, { method: 'GET', target: '/auth', headers: { ...s.headers } });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([400, 'malformed_request']);
  });

  it('attack: path confusion %2F in the original URI', async () => {
    const s = await signed(world);
    const res = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, ...nginxHeaders('GET', '/v1/orders/..%2Fsearch') },
    });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([400, 'unsafe_request_path']);
  });

  it('an original URI that is not in origin-form is refused malformed_request', async () => {
    const s = await signed(world);
    const res = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, ...nginxHeaders('GET', 'http://evil.example/v1/orders/search') },
    });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([400, 'malformed_request']);
  });
});

describe('forward-auth: what the gateway forwards as sent', () => {
  it.each([
    ['a +', '/v1/orders/search?q=a+b'],
    ['a repeated key', '/v1/orders/search?role=user&role=admin'],
  ])(
    'attack: a query with %s is refused ambiguous_request_query (the gateway forwards it raw)',
    async (_n, uri) => {
      const s = await signed(world, { target: uri });
      const res = await rawSend(nginx.base, {
        method: 'GET',
        target: '/auth',
        headers: { ...s.headers, ...nginxHeaders('GET', uri) },
      });
      expect([res.status, res.headers['x-trustplane-reason']]).toEqual([400, 'ambiguous_request_query']);
    },
  );

  it('attack: a Host other than the signed origin is refused request_binding_mismatch', async () => {
    const s = await signed(world);
    const res = await rawSend(nginx.base, {
      method: 'GET',
      target: '/auth',
      headers: {
        ...s.headers,
        ...nginxHeaders('GET', '/v1/orders/search'),
        'x-forwarded-host': 'evil.example',
      },
    });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([401, 'request_binding_mismatch']);
  });
});

describe('forward-auth: Traefik ForwardAuth protocol', () => {
  it('reads X-Forwarded-Method/-Uri/-Host/-Proto; without forwardBody the body is not verified', async () => {
    const s = await signed(world, { target: '/v1/orders/o42', routeId: 'orders.get' });
    const res = await rawSend(traefik.base, {
      method: 'GET',
      target: '/',
      headers: { ...s.headers, ...traefikHeaders('GET', '/v1/orders/o42') },
    });
    expect(res.status).toBe(200);
    expect(identity(res)).toMatchObject({ route: 'orders.get', bodyVerified: 'false' });
  });

  it('attack: caller-sent X-Original-* are never read behind Traefik (it forwards every client header)', async () => {
    // Signed for GET /v1/orders/search; the real request is a DELETE on another path, and the caller
    // adds X-Original-* describing the signed GET. Traefik overwrites X-Forwarded-* with the truth.
    const s = await signed(world, { target: '/v1/orders/search' });
    const res = await rawSend(traefik.base, {
      method: 'GET',
      target: '/',
      headers: {
        ...s.headers,
        'x-original-method': 'GET',
        'x-original-uri': '/v1/orders/search',
        ...traefikHeaders('DELETE', '/v1/orders/42'),
      },
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.headers['x-trustplane-subject']).toBeUndefined();
    expect(traefik.audit.events.at(-1)).toMatchObject({ method: 'DELETE', path: '/v1/orders/42' });
  });

  it('a body Traefik forwards (forwardBody) is verified', async () => {
    const body = '{"order_id":"o9"}';
    const s = await signedJson(world, body);
    const res = await rawSend(traefik.base, {
      method: 'POST',
      target: '/',
      headers: { ...s.headers, ...traefikHeaders('POST', '/v1/orders') },
      body,
    });
    expect([res.status, identity(res).bodyVerified]).toEqual([200, 'true']);
  });
});

describe('forward-auth: Envoy ext_authz HTTP service protocol', () => {
  it('uses the request itself with the path prefix stripped, and verifies a forwarded body', async () => {
    const body = '{"order_id":"o7"}';
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders?dry_run=1',
      routeId: 'orders.create',
      body,
      headers: { 'content-type': 'application/json' },
    });
    const res = await rawSend(envoy.base, {
      method: 'POST',
      target: '/authz/v1/orders?dry_run=1',
      headers: { ...s.headers, host: 'orders.example', 'x-envoy-auth-partial-body': 'false' },
      body,
    });
    expect(res.status).toBe(200);
    expect(identity(res)).toEqual({
      subject: 'service:orders-client',
      route: 'orders.create',
      bodyVerified: 'true',
    });
    // A different body under the same signature is refused.
    const s2 = await signedJson(world, body);
    const bad = await rawSend(envoy.base, {
      method: 'POST',
      target: '/authz/v1/orders',
      headers: { ...s2.headers, host: 'orders.example' },
      body: '{"order_id":"o8"}',
    });
    expect([bad.status, bad.headers['x-trustplane-reason']]).toEqual([401, 'request_binding_mismatch']);
  });

  it('attack: a partial body (x-envoy-auth-partial-body: true) is never taken for the whole body', async () => {
    const body = '{"order_id":"o10"}';
    const s = await signedJson(world, body);
    const res = await rawSend(envoy.base, {
      method: 'POST',
      target: '/authz/v1/orders',
      headers: { ...s.headers, host: 'orders.example', 'x-envoy-auth-partial-body': 'true' },
      body,
    });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([403, 'unverifiable_body']);
  });

  it('attack: caller-sent X-Original-* and X-Forwarded-Method/-Uri are never read behind Envoy', async () => {
    const s = await signed(world, { target: '/v1/orders/search' });
    const res = await rawSend(envoy.base, {
      method: 'DELETE',
      target: '/authz/v1/orders/42',
      headers: {
        ...s.headers,
        ...nginxHeaders('GET', '/v1/orders/search'),
        ...traefikHeaders('GET', '/v1/orders/search'),
      },
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(envoy.audit.events.at(-1)).toMatchObject({ method: 'DELETE', path: '/v1/orders/42' });
  });
});
