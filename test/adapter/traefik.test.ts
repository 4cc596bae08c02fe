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
import { createWorld, signed, signedJson, type World } from '../helpers/fixture.js';
import {
  readTraefikConfig,
  startTraefikModel,
  type TraefikDynamicConfig,
  type TraefikModel,
} from '../helpers/traefik.js';

// examples/traefik/dynamic.yml in front of the real forward-auth adapter (`--forward-auth-gateway
// traefik`) over loopback. Traefik cannot be installed here: test/helpers/traefik.ts builds the
// auth request exactly as Traefik's ForwardAuth does (forward.go) from the file's settings. The
// security rule: the upstream sees exactly what was verified, whatever X-Original-* / X-Forwarded-*
// the client sends.

const FILE = fileURLToPath(new URL('../../examples/traefik/dynamic.yml', import.meta.url));
const BODY_VERIFIED = 'x-trustplane-body-verified';

let world: World;
let config: TraefikDynamicConfig;
let upstream: Upstream;
let fa: TestAdapter;
let traefik: TraefikModel;

beforeAll(async () => {
  world = await createWorld({ policyPatch: withNotesRoute });
  config = readTraefikConfig(FILE);
  upstream = await startUpstream();
  fa = await startTestAdapter(world, {
    mode: 'forward-auth',
    forwardAuthGateway: 'traefik',
    maxBodyBytes: config.forwardAuth.maxBodySize!,
  });
  traefik = await startTraefikModel(config, fa.base, upstream.url);
});
afterAll(async () => {
  await traefik?.close();
  await fa?.adapter.close();
  await upstream?.close();
});

describe('examples/traefik/dynamic.yml', () => {
  it('sets what the security rule depends on', () => {
    const f = config.forwardAuth;
    expect(new URL(f.address).pathname).toBe('/auth');
    expect(f.trustForwardHeader).toBe(false);
    expect(f.forwardBody).toBe(true);
    expect(f.maxBodySize).toBeGreaterThan(0);
    // Every identity header the endpoint answers is replaced on the request, and only those.
    expect((f.authResponseHeaders ?? []).map((h) => h.toLowerCase()).sort()).toEqual(
      [...IDENTITY_HEADERS, BODY_VERIFIED].sort(),
    );
    // No authRequestHeaders allow-list: the endpoint sees every header the upstream will see, so
    // its header-safety checks (method override, URL rewrite, underscore names) apply.
    expect(f.authRequestHeaders ?? []).toEqual([]);
    // The identity is decided first; the proof material is removed after.
    expect(config.router.middlewares[0]).toBe('trustplane');
    expect(Object.keys(config.customRequestHeaders).map((h) => h.toLowerCase())).toEqual(
      expect.arrayContaining(['authorization', 'x-trustplane-proof', 'x-trustplane-nonce']),
    );
  });
});

describe('Traefik ForwardAuth (examples/traefik/dynamic.yml) in front of the forward-auth adapter', () => {
  it('the auth request carries every client header and the five X-Forwarded-* Traefik sets', async () => {
    const s = await signed(world, { target: '/v1/orders/search?b=2&a=1' });
    const res = await sendSigned(traefik.base, s, {
      headers: { 'x-original-uri': '/v1/admin', 'x-forwarded-uri': '/v1/admin', 'x-other': 'x' },
    });
    expect(res.status, res.body).toBe(200);
    const sent = traefik.authRequests.at(-1)!;
    expect(sent.method).toBe('GET');
    expect(sent.target).toBe('/auth');
    expect(Object.keys(sent.headers)).toEqual(
      expect.arrayContaining([
        'authorization',
        'x-original-uri',
        'x-other',
        'x-forwarded-for',
        'x-forwarded-method',
        'x-forwarded-proto',
        'x-forwarded-host',
        'x-forwarded-uri',
        ...Object.keys(s.headers).map((h) => h.toLowerCase()),
      ]),
    );
    expect(sent.headers).toMatchObject({
      'x-forwarded-method': 'GET',
      'x-forwarded-uri': '/v1/orders/search?b=2&a=1',
      'x-forwarded-host': 'orders.example',
      'x-forwarded-for': '127.0.0.1',
    });
    expect(fa.audit.events.at(-1)).toMatchObject({ client_address: '127.0.0.1' });
  });

  it('an allowed GET reaches the upstream exactly as verified, with the verified identity only', async () => {
    const s = await signed(world, { target: '/v1/orders/search?b=2&a=1' });
    const before = upstream.requests.length;
    const spoofed: Record<string, string> = {};
    for (const h of [...IDENTITY_HEADERS, BODY_VERIFIED]) spoofed[h] = 'spoofed';
    const res = await sendSigned(traefik.base, s, { headers: spoofed });
    expect(res.status, res.body).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
    const seen = upstream.requests.at(-1)!;
    expect([seen.method, seen.url]).toEqual(['GET', '/v1/orders/search?b=2&a=1']);
    expect(seen.headers).toMatchObject({
      'x-trustplane-subject': 'service:orders-client',
      'x-trustplane-route-id': 'orders.search',
      'x-trustplane-jti': s.claims.jti,
      // No body was forwarded and nothing says there was none: a GET is decided with the empty body.
      [BODY_VERIFIED]: 'false',
    });
    for (const h of ['authorization', 'x-trustplane-proof', 'x-trustplane-nonce'])
      expect(seen.headers[h], h).toBeUndefined();
  });

  it('forwardBody binds the body: an allowed POST is marked verified; a tampered one is denied', async () => {
    const body = '{"order_id":"o9"}';
    const before = upstream.requests.length;
    const ok = await sendSigned(traefik.base, await signedJson(world, body), {}, body);
    expect(ok.status, ok.body).toBe(200);
    expect(upstream.requests.at(-1)!.headers[BODY_VERIFIED]).toBe('true');
    expect(upstream.requests.at(-1)!.body.toString()).toBe(body);
    const tampered = await sendSigned(
      traefik.base,
      await signedJson(world, body),
      {},
      body.replace('o9', 'o1'),
    );
    expect([tampered.status, JSON.parse(tampered.body)]).toEqual([
      401,
      { allowed: false, reason: 'request_binding_mismatch' },
    ]);
    expect(tampered.headers['x-trustplane-reason']).toBe('request_binding_mismatch');
    expect(upstream.requests.length).toBe(before + 1);
  });

  it('attack: client-sent X-Original-* / X-Forwarded-* describing the signed request change nothing', async () => {
    // Signed for GET /v1/orders/search; sent as DELETE /v1/orders/42 with headers that describe the
    // signed request in both gateways' vocabularies.
    const s = await signed(world, { target: '/v1/orders/search' });
    const before = upstream.requests.length;
    const res = await sendSigned(
      traefik.base,
      { ...s, method: 'DELETE' },
      {
        target: '/v1/orders/42',
        headers: {
          'x-original-method': 'GET',
          'x-original-uri': '/v1/orders/search',
          'x-forwarded-method': 'GET',
          'x-forwarded-uri': '/v1/orders/search',
          'x-forwarded-host': 'orders.example',
          'x-forwarded-proto': 'https',
        },
      },
    );
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.headers['x-trustplane-reason']).toBeDefined();
    expect(upstream.requests.length).toBe(before);
    expect(fa.audit.events.at(-1)).toMatchObject({
      decision: 'deny',
      method: 'DELETE',
      path: '/v1/orders/42',
    });
  });

  it.each([
    ['x-http-method-override', 'DELETE'],
    ['x-original-url', '/v1/admin/wipe'],
    ['x_trustplane_subject', 'service:admin'],
  ])(
    'attack: %s behind Traefik (red team 01) is 400 unsafe_request_header, never upstream',
    async (name, value) => {
      // Traefik forwards every client header upstream; the endpoint must see the same ones.
      const body = '{"item":"x"}';
      const before = upstream.requests.length;
      const res = await sendSigned(
        traefik.base,
        await signedJson(world, body),
        { headers: { [name]: value } },
        body,
      );
      expect([res.status, res.headers['x-trustplane-reason']]).toEqual([400, 'unsafe_request_header']);
      expect(JSON.parse(res.body)).toEqual({ allowed: false, reason: 'unsafe_request_header' });
      expect(upstream.requests.length).toBe(before);
    },
  );

  it('attack (misconfiguration): with trustForwardHeader: true the same request gets through', async () => {
    // Why the example sets trustForwardHeader: false. Traefik then keeps the client's X-Forwarded-*.
    const trusting = await startTraefikModel(
      { ...config, forwardAuth: { ...config.forwardAuth, trustForwardHeader: true } },
      fa.base,
      upstream.url,
    );
    try {
      const s = await signed(world, { target: '/v1/orders/search' });
      const res = await sendSigned(
        trusting.base,
        { ...s, method: 'DELETE' },
        {
          target: '/v1/orders/42',
          headers: { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/v1/orders/search' },
        },
      );
      expect(res.status).toBe(200);
      expect(upstream.requests.at(-1)).toMatchObject({ method: 'DELETE', url: '/v1/orders/42' });
    } finally {
      await trusting.close();
    }
  });

  it('attack: replay: the second use is 401 jti_replay, passed through with the JSON body', async () => {
    const s = await signed(world);
    expect((await sendSigned(traefik.base, s)).status).toBe(200);
    const before = upstream.requests.length;
    const replay = await sendSigned(traefik.base, s);
    expect([replay.status, JSON.parse(replay.body)]).toEqual([401, { allowed: false, reason: 'jti_replay' }]);
    expect(replay.headers['www-authenticate']).toMatch(/^Bearer realm="trustplane"/);
    expect(upstream.requests.length).toBe(before);
  });

  it('attack: path confusion %2F: the 400 reaches the client unchanged, never the upstream', async () => {
    const before = upstream.requests.length;
    const res = await sendSigned(traefik.base, await signed(world), { target: '/v1/orders/..%2Fsearch' });
    expect([res.status, JSON.parse(res.body)]).toEqual([
      400,
      { allowed: false, reason: 'unsafe_request_path' },
    ]);
    expect(upstream.requests.length).toBe(before);
  });
});
