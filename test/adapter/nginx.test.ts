import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, signed, type World, signedJson } from '../helpers/fixture.js';
import {
  sendSigned,
  startUpstream,
  withNotesRoute,
  type TestAdapter,
  type Upstream,
} from '../helpers/adapter.js';
import { startNginxForwardAuth } from '../helpers/frameworks.js';
import { NGINX, type NginxServer } from '../helpers/nginx.js';
import { requireServer } from '../helpers/redis.js';

describe('nginx auth_request in front of a loopback upstream (examples/nginx/trustplane-server.conf)', () => {
  if (!requireServer('nginx', NGINX)) return;

  let world: World;
  let upstream: Upstream;
  let fa: TestAdapter;
  let nginx: NginxServer;

  beforeAll(async () => {
    world = await createWorld({ policyPatch: withNotesRoute });
    upstream = await startUpstream();
    ({ forwardAuth: fa, nginx } = await startNginxForwardAuth(world, upstream.port));
  });
  afterAll(async () => {
    await nginx?.stop();
    await fa?.adapter.close();
    await upstream?.close();
  });

  it('an allowed request reaches the upstream with the verified identity and no proof material', async () => {
    const s = await signed(world, { target: '/v1/orders/search?b=2&a=1' });
    const before = upstream.requests.length;
    const res = await sendSigned(nginx.base, s, {
      headers: { 'x-trustplane-subject': 'service:spoofed', 'x-trustplane-route-id': 'admin' },
    });
    expect(res.status, nginx.errorLog()).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ subject: 'service:orders-client', bytes: 0 });
    expect(upstream.requests.length).toBe(before + 1);
    const seen = upstream.requests.at(-1)!;
    expect(seen.url).toBe('/v1/orders/search?b=2&a=1');
    expect(seen.headers).toMatchObject({
      'x-trustplane-subject': 'service:orders-client',
      'x-trustplane-route-id': 'orders.search',
      'x-trustplane-jti': s.claims.jti,
      'x-trustplane-key-binding': 'software',
      'x-trustplane-body-verified': 'true',
    });
    for (const h of ['authorization', 'x-trustplane-proof', 'x-trustplane-nonce'])
      expect(seen.headers[h]).toBeUndefined();
  });

  it('a denied request gets the JSON deny body and never reaches the upstream', async () => {
    const s = await signed(world);
    const before = upstream.requests.length;
    const res = await sendSigned(nginx.base, s, { headers: { authorization: null } });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toEqual({ allowed: false, reason: 'missing_passport' });
    expect(res.headers['www-authenticate']).toBe('Bearer realm="trustplane"');
    const wrongAudience = await sendSigned(
      nginx.base,
      await signed(world, { claims: { aud: 'billing-api' } }),
    );
    expect([wrongAudience.status, JSON.parse(wrongAudience.body)]).toEqual([
      403,
      { allowed: false, reason: 'audience_mismatch' },
    ]);
    expect(upstream.requests.length).toBe(before);
  });

  it('a replayed request is denied jti_replay', async () => {
    const s = await signed(world);
    expect((await sendSigned(nginx.base, s)).status).toBe(200);
    const before = upstream.requests.length;
    const replay = await sendSigned(nginx.base, s);
    expect([replay.status, JSON.parse(replay.body)]).toEqual([401, { allowed: false, reason: 'jti_replay' }]);
    expect(upstream.requests.length).toBe(before);
  });

  it('a body route is denied unverifiable_body; a route that allows unverified bodies passes, marked', async () => {
    const body = '{"order_id":"o1"}';
    const create = await signedJson(world, body);
    const before = upstream.requests.length;
    const denied = await sendSigned(nginx.base, create, {}, body);
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
    const allowed = await sendSigned(nginx.base, notes, {}, 'note');
    expect(allowed.status).toBe(200);
    expect(upstream.requests.at(-1)!.headers['x-trustplane-body-verified']).toBe('false');
    expect(upstream.requests.at(-1)!.body.toString()).toBe('note');
  });

  it('attack: path confusion %2F never reaches the upstream (nginx maps the 400 to 500)', async () => {
    const s = await signed(world);
    const before = upstream.requests.length;
    const res = await sendSigned(nginx.base, s, { target: '/v1/orders/..%2Fsearch' });
    expect(res.status).toBe(500);
    expect(upstream.requests.length).toBe(before);
    expect(fa.audit.events.at(-1)).toMatchObject({ decision: 'deny', reason: 'unsafe_request_path' });
  });
});
