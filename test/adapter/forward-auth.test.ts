import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, signed, type World, signedJson } from '../helpers/fixture.js';
import {
  rawSend,
  startTestAdapter,
  withNotesRoute,
  type RawResponse,
  type TestAdapter,
} from '../helpers/adapter.js';

let world: World;
let fa: TestAdapter;

beforeAll(async () => {
  world = await createWorld({ policyPatch: withNotesRoute });
  fa = await startTestAdapter(world, { mode: 'forward-auth', forwardAuthPathPrefix: '/authz' });
});
afterAll(async () => {
  await fa.adapter.close();
});

function identity(res: RawResponse) {
  return {
    subject: res.headers['x-trustplane-subject'],
    route: res.headers['x-trustplane-route-id'],
    bodyVerified: res.headers['x-trustplane-body-verified'],
  };
}

describe('forward-auth: nginx auth_request protocol', () => {
  it('allows with identity headers in the 200 response', async () => {
    const s = await signed(world, { target: '/v1/orders/search?limit=5' });
    const res = await rawSend(fa.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, 'x-original-method': 'GET', 'x-original-uri': '/v1/orders/search?limit=5' },
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe('');
    expect(identity(res)).toEqual({
      subject: 'service:orders-client',
      route: 'orders.search',
      bodyVerified: 'true',
    });
    expect(res.headers['x-trustplane-jti']).toBe(s.claims.jti);
    expect(fa.audit.events.at(-1)).toMatchObject({
      component: 'forward-auth',
      decision: 'allow',
      path: '/v1/orders/search',
    });
  });
  it('denies a replay and a tampered URI', async () => {
    const s = await signed(world, { target: '/v1/orders/search?limit=5' });
    const send = (uri: string) =>
      rawSend(fa.base, {
        method: 'GET',
        target: '/auth',
        headers: { ...s.headers, 'x-original-method': 'GET', 'x-original-uri': uri },
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
    const res = await rawSend(fa.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, 'x-original-method': 'POST', 'x-original-uri': '/v1/orders' },
    });
    expect([res.status, JSON.parse(res.body)]).toEqual([
      403,
      { allowed: false, reason: 'unverifiable_body' },
    ]);
  });
  it('a GET whose gateway signals a body is denied too (body smuggling on a bodiless route)', async () => {
    const s = await signed(world);
    const res = await rawSend(fa.base, {
      method: 'GET',
      target: '/auth',
      headers: {
        ...s.headers,
        'x-original-method': 'GET',
        'x-original-uri': '/v1/orders/search',
        'x-original-content-length': '12',
      },
    });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([403, 'unverifiable_body']);
  });
  it('a GET whose gateway signals a transfer coding is denied unverifiable_body', async () => {
    const s = await signed(world);
    const res = await rawSend(fa.base, {
      method: 'GET',
      target: '/auth',
      headers: {
        ...s.headers,
        'x-original-method': 'GET',
        'x-original-uri': '/v1/orders/search',
        'x-original-transfer-encoding': 'chunked',
      },
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
    const res = await rawSend(fa.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, 'x-original-method': 'POST', 'x-original-uri': '/v1/orders/o1/notes' },
    });
    expect(res.status).toBe(200);
    expect(identity(res)).toEqual({
      subject: 'service:orders-client',
      route: 'orders.notes',
      bodyVerified: 'false',
    });
  });
  it('attack: path confusion %2F in the original URI', async () => {
    const s = await signed(world);
    const res = await rawSend(fa.base, {
      method: 'GET',
      target: '/auth',
      headers: { ...s.headers, 'x-original-method': 'GET', 'x-original-uri': '/v1/orders/..%2Fsearch' },
    });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([400, 'unsafe_request_path']);
  });
  it('an original URI that is not in origin-form is refused malformed_request', async () => {
    const s = await signed(world);
    const res = await rawSend(fa.base, {
      method: 'GET',
      target: '/auth',
      headers: {
        ...s.headers,
        'x-original-method': 'GET',
        'x-original-uri': 'http://evil.example/v1/orders/search',
      },
    });
    expect([res.status, res.headers['x-trustplane-reason']]).toEqual([400, 'malformed_request']);
  });
});

describe('forward-auth: Traefik ForwardAuth protocol', () => {
  it('reads X-Forwarded-Method/-Uri/-Host/-Proto', async () => {
    const s = await signed(world, { target: '/v1/orders/o42', routeId: 'orders.get' });
    const res = await rawSend(fa.base, {
      method: 'GET',
      target: '/',
      headers: {
        ...s.headers,
        'x-forwarded-method': 'GET',
        'x-forwarded-uri': '/v1/orders/o42',
        'x-forwarded-host': 'orders.example',
        'x-forwarded-proto': 'https',
      },
    });
    expect(res.status).toBe(200);
    expect(identity(res).route).toBe('orders.get');
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
    const res = await rawSend(fa.base, {
      method: 'POST',
      target: '/authz/v1/orders?dry_run=1',
      headers: s.headers,
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
    const bad = await rawSend(fa.base, {
      method: 'POST',
      target: '/authz/v1/orders',
      headers: s2.headers,
      body: '{"order_id":"o8"}',
    });
    expect([bad.status, bad.headers['x-trustplane-reason']]).toEqual([401, 'request_binding_mismatch']);
  });
});
