import http2 from 'node:http2';
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
import { freePort, requireServer } from '../helpers/redis.js';

describe('nginx auth_request in front of a loopback upstream (examples/nginx/trustplane-server.conf)', () => {
  if (!requireServer('nginx', NGINX)) return;

  let world: World;
  let upstream: Upstream;
  let fa: TestAdapter;
  let nginx: NginxServer;
  let h2Port: number;

  beforeAll(async () => {
    world = await createWorld({ policyPatch: withNotesRoute });
    upstream = await startUpstream();
    h2Port = await freePort();
    ({ forwardAuth: fa, nginx } = await startNginxForwardAuth(world, upstream.port, {}, h2Port));
  });

  /** One request over HTTP/2 (h2c, prior knowledge) to the example's server block. */
  function h2(
    method: string,
    path: string,
    headers: Readonly<Record<string, string>>,
    body?: string,
    declareLength = true,
  ): Promise<{ status: number; reason: string | undefined }> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(`http://127.0.0.1:${h2Port}`);
      session.on('error', reject);
      const sent: Record<string, string> = {
        ':method': method,
        ':path': path,
        ':authority': 'orders.example',
      };
      for (const [name, value] of Object.entries(headers)) if (name !== 'host') sent[name] = value;
      if (body !== undefined && declareLength) sent['content-length'] = String(Buffer.byteLength(body));
      const req = session.request(sent);
      let status = 0;
      let reason: string | undefined;
      req.on('response', (h) => {
        status = Number(h[':status']);
        reason = h['x-trustplane-reason'] as string | undefined;
      });
      req.resume();
      req.on('end', () => {
        session.close();
        resolve({ status, reason });
      });
      req.on('error', reject);
      req.end(body);
    });
  }
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

  it('HTTP/2: a GET passes; a body without Content-Length is unknown, so a POST is refused (red team F2)', async () => {
    const get = await signed(world, { target: '/v1/orders/search?a=1' });
    const before = upstream.requests.length;
    expect((await h2('GET', '/v1/orders/search?a=1', get.headers)).status).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
    // A proof over the empty body, sent with a body and no Content-Length (HTTP/2 needs neither it
    // nor Transfer-Encoding): before the fix nginx told the adapter "no body" and the upstream got
    // the unsigned body marked X-TrustPlane-Body-Verified: true.
    const smuggled = '{"amount":"1000000.00"}';
    const empty = await signedJson(world, '');
    expect(await h2('POST', '/v1/orders', empty.headers, smuggled, false)).toEqual({
      status: 403,
      reason: 'unverifiable_body',
    });
    const declared = await signedJson(world, '');
    expect(await h2('POST', '/v1/orders', declared.headers, smuggled, true)).toEqual({
      status: 403,
      reason: 'unverifiable_body',
    });
    expect(upstream.requests.length).toBe(before + 1);
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
