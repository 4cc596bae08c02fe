import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REASON_CODES, type ReasonCode } from '../../pkg/authcore/index.js';
import { auditEventSchema } from '../../pkg/audit/index.js';
import { createWorld, signed, type World, signedJson } from '../helpers/fixture.js';
import {
  rawSend,
  sendSigned,
  startTestAdapter,
  startUpstream,
  type RawResponse,
  type TestAdapter,
  type Upstream,
} from '../helpers/adapter.js';
import { metricValue, parsePrometheus } from '../helpers/prometheus.js';

let world: World;
let upstream: Upstream;
let tp: TestAdapter;

beforeAll(async () => {
  world = await createWorld();
  upstream = await startUpstream();
  tp = await startTestAdapter(world, { upstream: upstream.url });
});

afterAll(async () => {
  await tp.adapter.close();
  await upstream.close();
});

let before = 0;
function mark() {
  before = upstream.requests.length;
}
function expectDeny(res: RawResponse, reason: ReasonCode, status: number) {
  expect({ status: res.status, body: JSON.parse(res.body) as unknown }).toEqual({
    status,
    body: { allowed: false, reason },
  });
  expect(REASON_CODES[reason].status).toBe(status);
  expect(res.headers['x-trustplane-reason']).toBe(reason);
  expect(res.headers['cache-control']).toBe('no-store');
  if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="trustplane"/);
  // On deny the upstream receives nothing.
  expect(upstream.requests.length).toBe(before);
}

afterEach(() => {
  // Every event the adapter wrote is a valid v0.1 event without secrets.
  for (const e of tp.audit.events) {
    expect(auditEventSchema.safeParse(e).success).toBe(true);
  }
});

describe('adapter: allow', () => {
  it('forwards an allowed GET with identity headers and streams the response back', async () => {
    const s = await signed(world, { target: '/v1/orders/search?q=a&limit=2' });
    mark();
    const res = await sendSigned(tp.base, s);
    expect(res.status).toBe(200);
    expect(res.headers['x-upstream']).toBe('yes');
    expect(JSON.parse(res.body)).toEqual({ subject: 'service:orders-client', bytes: 0 });
    expect(upstream.requests.length).toBe(before + 1);
    const seen = upstream.requests.at(-1)!;
    // The upstream gets the canonical query the transcript covers (sorted pairs, RFC 3986 escapes).
    expect(seen.url).toBe('/v1/orders/search?limit=2&q=a');
    expect(seen.headers).toMatchObject({
      'x-trustplane-subject': 'service:orders-client',
      'x-trustplane-issuer': 'https://issuer.example/software-jwks',
      'x-trustplane-trust-domain': 'example.local',
      'x-trustplane-jti': s.claims.jti,
      'x-trustplane-key-binding': 'software',
      'x-trustplane-route-id': 'orders.search',
      // The origin the transcript covered (the API's base_url https://orders.example), whatever
      // Host and scheme the connection had.
      'x-forwarded-proto': 'https',
      host: 'orders.example',
      'x-forwarded-host': 'orders.example',
      'x-forwarded-for': '127.0.0.1',
    });
    // Proof material and the passport never reach the upstream.
    for (const h of [
      'authorization',
      'x-trustplane-proof',
      'x-trustplane-nonce',
      'x-trustplane-transcript-sha256',
    ]) {
      expect(seen.headers[h]).toBeUndefined();
    }
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const event = tp.audit.events.at(-1)!;
    expect(event).toMatchObject({
      decision: 'allow',
      status: 200,
      component: 'adapter',
      route_id: 'orders.search',
      jti: s.claims.jti,
      path: '/v1/orders/search',
      transcript_sha256: s.transcript.sha256,
    });
    expect(JSON.stringify(event)).not.toContain(s.passport);
    expect(JSON.stringify(event)).not.toContain(s.headers['x-trustplane-proof']!);
  });

  it('forwards the exact body bytes of an allowed POST', async () => {
    const body = '{"order_id":"ord_123","note":"caf\u00e9 \u2603","amount":"42.00"}';
    const s = await signedJson(world, body);
    mark();
    const res = await sendSigned(tp.base, s, {}, body);
    expect(res.status).toBe(200);
    const seen = upstream.requests.at(-1)!;
    expect(seen.body.equals(Buffer.from(body, 'utf8'))).toBe(true);
    expect(seen.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(seen.headers['content-type']).toBe('application/json');
    expect(seen.headers['x-trustplane-route-id']).toBe('orders.create');
  });

  it('forwards a chunked request body as exact bytes with a content-length', async () => {
    const body = 'x'.repeat(70_000);
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders',
      routeId: 'orders.create',
      body,
      headers: { 'content-type': 'text/plain' },
    });
    mark();
    const res = await sendSigned(tp.base, s, { headers: { 'transfer-encoding': 'chunked' } }, body);
    expect(res.status).toBe(200);
    const seen = upstream.requests.at(-1)!;
    expect(seen.body.toString()).toBe(body);
    expect(seen.headers['transfer-encoding']).toBeUndefined();
    expect(seen.headers['content-length']).toBe('70000');
  });
});

describe('adapter: upstream connection pooling', () => {
  it('sequential requests reuse one keep-alive connection to the upstream', async () => {
    const pooled = await startUpstream();
    let connections = 0;
    pooled.server.on('connection', () => (connections += 1));
    const t = await startTestAdapter(world, { upstream: pooled.url });
    try {
      for (let i = 0; i < 5; i++) expect((await sendSigned(t.base, await signed(world))).status).toBe(200);
      expect(pooled.requests).toHaveLength(5);
      expect(connections).toBe(1);
    } finally {
      await t.adapter.close();
      await pooled.close();
    }
  });
});

describe('attack: spoofed X-TrustPlane-Subject', () => {
  it('caller-sent identity headers never reach the upstream', async () => {
    const s = await signed(world);
    mark();
    const res = await sendSigned(tp.base, s, {
      headers: {
        'x-trustplane-subject': 'service:admin',
        'x-trustplane-route-id': 'admin.all',
        'x-trustplane-key-binding': 'attested_workload',
        'x-trustplane-anything': 'x',
        'x-forwarded-for': '10.0.0.1',
      },
    });
    // The spoofed headers are not covered by the proof, so the request itself verifies.
    expect(res.status).toBe(200);
    const seen = upstream.requests.at(-1)!;
    expect(seen.headers['x-trustplane-subject']).toBe('service:orders-client');
    expect(seen.headers['x-trustplane-route-id']).toBe('orders.search');
    expect(seen.headers['x-trustplane-key-binding']).toBe('software');
    expect(seen.headers['x-trustplane-anything']).toBeUndefined();
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
  });
  it('a spoofed subject without a passport reaches nothing', async () => {
    mark();
    const res = await rawSend(tp.base, {
      method: 'GET',
      target: '/v1/orders/search',
      headers: { 'x-trustplane-subject': 'service:orders-client' },
    });
    expectDeny(res, 'missing_passport', 401);
  });
  it('a repeated Authorization header is refused', async () => {
    const s = await signed(world);
    mark();
    const res = await rawSend(tp.base, {
      method: 'GET',
      target: '/v1/orders/search',
      headers: { ...s.headers, authorization: [s.headers.authorization!, 'Bearer other'] },
    });
    expectDeny(res, 'malformed_request', 400);
  });
});

describe('adapter: request ids and upgrades', () => {
  it('a caller X-Request-Id is kept when well-formed and replaced otherwise', async () => {
    const good = await sendSigned(tp.base, await signed(world), { headers: { 'x-request-id': 'req-42.a' } });
    expect(good.status).toBe(200);
    expect(upstream.requests.at(-1)!.headers['x-request-id']).toBe('req-42.a');
    const bad = await sendSigned(tp.base, await signed(world), { headers: { 'x-request-id': 'has space;' } });
    expect(bad.status).toBe(200);
    expect(upstream.requests.at(-1)!.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
  it('an Upgrade (WebSocket) request is refused 501 and never reaches the upstream', async () => {
    const s = await signed(world);
    mark();
    const u = new URL(tp.base);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({
        host: u.hostname,
        port: u.port,
        path: '/v1/orders/search',
        headers: { ...s.headers, connection: 'Upgrade', upgrade: 'websocket' },
      });
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('upgrade', () => reject(new Error('upgraded')));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(501);
    expect(upstream.requests.length).toBe(before);
  });
});

describe('adapter: deny paths (status, body, upstream untouched)', () => {
  it('missing_passport', async () => {
    const s = await signed(world);
    mark();
    expectDeny(await sendSigned(tp.base, s, { headers: { authorization: null } }), 'missing_passport', 401);
  });
  it('invalid_request_proof', async () => {
    const s = await signed(world);
    mark();
    expectDeny(
      await sendSigned(tp.base, s, { headers: { 'x-trustplane-proof': 'A'.repeat(86) } }),
      'invalid_request_proof',
      401,
    );
  });
  it('request_binding_mismatch: tampered body', async () => {
    const body = '{"amount":"1.00"}';
    const s = await signedJson(world, body);
    mark();
    expectDeny(await sendSigned(tp.base, s, {}, '{"amount":"9.00"}'), 'request_binding_mismatch', 401);
  });
  it('request_binding_mismatch: tampered query', async () => {
    const s = await signed(world, { target: '/v1/orders/search?limit=1' });
    mark();
    expectDeny(
      await sendSigned(tp.base, s, { target: '/v1/orders/search?limit=1000' }),
      'request_binding_mismatch',
      401,
    );
  });
  it('attack: replay: the same request twice', async () => {
    const s = await signed(world);
    expect((await sendSigned(tp.base, s)).status).toBe(200);
    mark();
    expectDeny(await sendSigned(tp.base, s), 'jti_replay', 401);
  });
  it('bundle_route_missing', async () => {
    const s = await signed(world, { target: '/v1/unknown' });
    mark();
    expectDeny(await sendSigned(tp.base, s), 'bundle_route_missing', 403);
  });
  it('insufficient_key_binding', async () => {
    const body = '{}';
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders/o1/approve',
      routeId: 'orders.secure',
      body,
      headers: { 'content-type': 'application/json' },
    });
    mark();
    expectDeny(await sendSigned(tp.base, s, {}, body), 'insufficient_key_binding', 403);
  });
  it('audience_mismatch', async () => {
    const s = await signed(world, { claims: { aud: 'billing-api' } });
    mark();
    expectDeny(await sendSigned(tp.base, s), 'audience_mismatch', 403);
  });
  it('passport_expired', async () => {
    const s = await signed(world, { claims: { iat: 1_767_225_600 - 900 }, ttl: 300 });
    mark();
    expectDeny(await sendSigned(tp.base, s), 'passport_expired', 401);
  });
  it('attack: path confusion %2F', async () => {
    const s = await signed(world);
    mark();
    expectDeny(
      await sendSigned(tp.base, s, { target: '/v1/orders/..%2Fsearch' }),
      'unsafe_request_path',
      400,
    );
  });
  it('attack: path confusion dot segment', async () => {
    const s = await signed(world);
    mark();
    expectDeny(await sendSigned(tp.base, s, { target: '/v1/orders/./search' }), 'unsafe_request_path', 400);
    expectDeny(await sendSigned(tp.base, s, { target: '/v1//orders/search' }), 'unsafe_request_path', 400);
  });
  it('malformed_request: an absolute-form request target', async () => {
    const s = await signed(world);
    mark();
    expectDeny(
      await sendSigned(tp.base, s, { target: 'http://orders.example/v1/orders/search' }),
      'malformed_request',
      400,
    );
  });
  it('body_too_large by content-length', async () => {
    const s = await signed(world, { method: 'POST', target: '/v1/orders', routeId: 'orders.create' });
    mark();
    const res = await sendSigned(tp.base, s, {}, 'x'.repeat(1024 * 1024 + 1));
    expectDeny(res, 'body_too_large', 413);
    expect(res.headers.connection).toBe('close');
  });
  it('body_too_large when chunked', async () => {
    const s = await signed(world, { method: 'POST', target: '/v1/orders', routeId: 'orders.create' });
    mark();
    const res = await sendSigned(
      tp.base,
      s,
      { headers: { 'transfer-encoding': 'chunked' } },
      'y'.repeat(1024 * 1024 + 10),
    );
    expectDeny(res, 'body_too_large', 413);
  });
  it('every deny wrote an audit event with its reason', () => {
    const denies = tp.audit.events.filter((e) => e.decision === 'deny');
    const reasons = new Set(denies.map((e) => e.reason));
    for (const r of [
      'missing_passport',
      'jti_replay',
      'unsafe_request_path',
      'body_too_large',
      'bundle_route_missing',
    ]) {
      expect(reasons.has(r)).toBe(true);
    }
  });
});

describe('adapter: upstream failures', () => {
  it('502 upstream_unavailable when the upstream refuses connections', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const down = await startTestAdapter(world, { upstream: `http://127.0.0.1:${port}` });
    try {
      const s = await signed(world);
      const res = await sendSigned(down.base, s);
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body)).toEqual({ allowed: false, reason: 'upstream_unavailable' });
      const m = parsePrometheus(await (await fetch(`${down.admin}/metrics`)).text());
      expect(metricValue(m, 'trustplane_upstream_errors_total', { kind: 'connect' })).toBe(1);
    } finally {
      await down.adapter.close();
    }
  });
  it('504 upstream_timeout when the upstream does not answer in time', async () => {
    const slow = await startUpstream((_seen, res) => {
      setTimeout(() => res.end('late'), 2_000).unref();
    });
    const t = await startTestAdapter(world, { upstream: slow.url, upstreamResponseTimeoutMs: 200 });
    try {
      const s = await signed(world);
      const started = Date.now();
      const res = await sendSigned(t.base, s);
      expect(res.status).toBe(504);
      expect(JSON.parse(res.body)).toEqual({ allowed: false, reason: 'upstream_timeout' });
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      await t.adapter.close();
      await slow.close();
    }
  });
});

describe('adapter: caller aborts', () => {
  it('a caller that disconnects mid-request is not counted as an upstream failure', async () => {
    const slow = await startUpstream((_seen, res) => {
      setTimeout(() => res.end('late'), 300).unref();
    });
    const t = await startTestAdapter(world, { upstream: slow.url });
    try {
      const s = await signed(world);
      const u = new URL(t.base);
      await new Promise<void>((resolve) => {
        const req = request({
          host: u.hostname,
          port: u.port,
          path: '/v1/orders/search',
          headers: s.headers,
        });
        req.on('error', () => resolve());
        req.end();
        setTimeout(() => req.destroy(), 100);
      });
      await new Promise((r) => setTimeout(r, 400));
      const m = parsePrometheus(await (await fetch(`${t.admin}/metrics`)).text());
      expect(metricValue(m, 'trustplane_upstream_errors_total')).toBe(0);
      expect(metricValue(m, 'trustplane_decisions_total', { outcome: 'allow' })).toBe(1);
      expect((await sendSigned(t.base, await signed(world))).status).toBe(200);
    } finally {
      await t.adapter.close();
      await slow.close();
    }
  });
});

describe('adapter: admin listener', () => {
  it('/healthz and /readyz answer 200; unknown paths 404', async () => {
    expect((await fetch(`${tp.admin}/healthz`)).status).toBe(200);
    const ready = await fetch(`${tp.admin}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      ready: true,
      checks: { bundles: 'ok', replay_store: 'ok' },
      // Each bundle's age, limit and time left (docs/operations.md).
      bundles: { policy: expect.any(Object), trust_material: expect.any(Object) },
    });
    expect((await fetch(`${tp.admin}/nope`)).status).toBe(404);
  });
  it('/metrics is Prometheus text and decision counters move with decisions', async () => {
    const scrape = async () => parsePrometheus(await (await fetch(`${tp.admin}/metrics`)).text());
    const m0 = await scrape();
    const allow0 = metricValue(m0, 'trustplane_decisions_total', {
      outcome: 'allow',
      route: 'orders.search',
    });
    const replay0 = metricValue(m0, 'trustplane_decisions_total', { outcome: 'deny', reason: 'jti_replay' });
    const s = await signed(world);
    expect((await sendSigned(tp.base, s)).status).toBe(200);
    expect((await sendSigned(tp.base, s)).status).toBe(401);
    const m1 = await scrape();
    expect(metricValue(m1, 'trustplane_decisions_total', { outcome: 'allow', route: 'orders.search' })).toBe(
      allow0 + 1,
    );
    expect(metricValue(m1, 'trustplane_decisions_total', { outcome: 'deny', reason: 'jti_replay' })).toBe(
      replay0 + 1,
    );
    expect(metricValue(m1, 'trustplane_verification_duration_seconds_count')).toBeGreaterThan(0);
    expect(metricValue(m1, 'trustplane_upstream_duration_seconds_count')).toBeGreaterThan(0);
    expect(metricValue(m1, 'trustplane_bundle_age_seconds', { bundle: 'policy' })).toBe(60);
    expect(m1.some((x) => x.name === 'trustplane_process_cpu_seconds_total')).toBe(true);
  });
});
