import { Hono } from 'hono';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryAuditSink, type AuditEvent, type AuditSink } from '../../pkg/audit/index.js';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import type { LoadedPolicy } from '../../pkg/bundle/index.js';
import {
  trustplane,
  type Decision,
  type TrustplaneCommonOptions,
  type TrustplaneOptions,
  type TrustplaneVariables,
} from '../../pkg/middleware/hono/index.js';
import { NOW, ORIGIN, createWorld, signed, type World, signedJson } from '../helpers/fixture.js';
import { expectOneEvent, patchedPolicy, secretsOf, revokeSubject } from './helpers.js';

let world: World;

beforeAll(async () => {
  world = await createWorld();
});

type Extra = Partial<Omit<TrustplaneCommonOptions, 'replayStore'>> & {
  onDecision?: NonNullable<TrustplaneOptions['onDecision']>;
  before?: (app: Hono<{ Variables: TrustplaneVariables }>) => void;
  material?: () => { trust: World['trust']; policy: LoadedPolicy } | undefined;
};

/** A Hono app guarded by trustplane(); `calls` counts handler runs. */
function makeApp(extra: Extra = {}) {
  const sink = new MemoryAuditSink();
  const replayStore = new MemoryReplayStore();
  const calls = { n: 0 };
  const { before, material, ...rest } = extra;
  const app = new Hono<{ Variables: TrustplaneVariables }>();
  before?.(app);
  const common = { replayStore, clock: () => NOW, audit: sink, ...rest };
  app.use(
    '*',
    material !== undefined
      ? trustplane({ ...common, material })
      : trustplane({ ...common, trust: world.trust, policy: world.policy }),
  );
  const identity = (d: TrustplaneVariables['trustplane']) => ({
    subject: d.subject,
    issuer: d.issuer,
    routeId: d.routeId,
    keyBinding: d.keyBinding,
  });
  app.get('/v1/orders/search', (c) => {
    calls.n += 1;
    return c.json({ ...identity(c.get('trustplane')), via: c.var.trustplane.jti });
  });
  app.post('/v1/orders', async (c) => {
    calls.n += 1;
    const text = await c.req.text();
    const json: unknown = await c.req.json();
    return c.json({ ...identity(c.get('trustplane')), text, json });
  });
  app.all('*', (c) => {
    calls.n += 1;
    return c.text('reached', 200);
  });
  return { app, sink, replayStore, calls };
}

type Signed = Awaited<ReturnType<typeof signed>>;

function send(
  app: Hono<{ Variables: TrustplaneVariables }>,
  s: Signed,
  override: { body?: string; headers?: Record<string, string | null> } = {},
) {
  const headers = new Headers(s.headers);
  for (const [k, v] of Object.entries(override.headers ?? {})) {
    if (v === null) headers.delete(k);
    else headers.set(k, v);
  }
  const body = override.body ?? (s as { body?: string }).body;
  return app.request(s.url, {
    method: s.method,
    headers,
    ...(body !== undefined && s.method !== 'GET' ? { body } : {}),
  });
}

const ORDER = '{"order_id":"ord_123","amount":"42.00","note":"é ✓"}';

async function signedPost(body = ORDER) {
  const s = await signedJson(world, body);
  return { ...s, body };
}

async function expectDenied(
  res: Response,
  status: number,
  reason: string,
  challenge?: 'missing' | 'invalid',
): Promise<void> {
  expect(res.status).toBe(status);
  expect(await res.text()).toBe(JSON.stringify({ allowed: false, reason }));
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(res.headers.get('cache-control')).toBe('no-store');
  const www = res.headers.get('www-authenticate');
  if (challenge === 'missing') expect(www).toBe('Bearer realm="trustplane"');
  else if (challenge === 'invalid') expect(www).toBe('Bearer realm="trustplane", error="invalid_token"');
  else expect(www).toBeNull();
}

describe('hono trustplane(): allow', () => {
  it('allows a signed GET and exposes the verified identity as c.get("trustplane")', async () => {
    const { app, sink, calls } = makeApp();
    const s = await signed(world, { headers: { 'x-request-id': 'req-1' } });
    const res = await send(app, s);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      subject: 'service:orders-client',
      issuer: 'https://issuer.example/software-jwks',
      routeId: 'orders.search',
      keyBinding: 'software',
      via: s.claims.jti,
    });
    expect(calls.n).toBe(1);
    const event = expectOneEvent(
      sink.events,
      { decision: 'allow', route_id: 'orders.search', status: 200 },
      secretsOf(s),
    );
    expect(event).toMatchObject({
      component: 'middleware-hono',
      method: 'GET',
      authority: 'orders.example',
      path: '/v1/orders/search',
      request_id: 'req-1',
      sub: 'service:orders-client',
      jti: s.claims.jti,
      transcript_sha256: s.transcript.sha256,
    });
    expect(event.latency_us).toBeGreaterThanOrEqual(0);
  });

  it('allows a signed POST; downstream c.req.text()/c.req.json() see the exact body', async () => {
    const { app, sink, calls } = makeApp();
    const s = await signedPost();
    const res = await send(app, s);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      subject: 'service:orders-client',
      issuer: 'https://issuer.example/software-jwks',
      routeId: 'orders.create',
      keyBinding: 'software',
      text: ORDER,
      json: JSON.parse(ORDER),
    });
    expect(calls.n).toBe(1);
    expectOneEvent(sink.events, { decision: 'allow', route_id: 'orders.create', status: 200 }, secretsOf(s));
  });

  it('hashes the raw query for the audit event and never logs it', async () => {
    const { app, sink } = makeApp();
    const s = await signed(world, { target: '/v1/orders/search?customer=alice&limit=10' });
    expect((await send(app, s)).status).toBe(200);
    const event = expectOneEvent(sink.events, { decision: 'allow', route_id: 'orders.search', status: 200 });
    expect(event.query_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(event)).not.toContain('alice');
  });
});

describe('hono trustplane(): deny (handler not run, exact body, one audit event)', () => {
  it('missing_passport: 401 with a Bearer challenge', async () => {
    const { app, sink, calls } = makeApp();
    const s = await signed(world);
    await expectDenied(
      await send(app, s, { headers: { authorization: null } }),
      401,
      'missing_passport',
      'missing',
    );
    expect(calls.n).toBe(0);
    // The route is resolved for the event (and a dry-run route) even though the passport is missing.
    expectOneEvent(
      sink.events,
      { decision: 'deny', reason: 'missing_passport', status: 401, route_id: 'orders.search' },
      secretsOf(s),
    );
  });

  it('attack: tampered body: request_binding_mismatch, and invalid_request_proof without digest headers', async () => {
    const { app, sink, calls, replayStore } = makeApp();
    const s = await signedPost('{"amount":"1.00"}');
    await expectDenied(
      await send(app, s, { body: '{"amount":"9.00"}' }),
      401,
      'request_binding_mismatch',
      'invalid',
    );
    expectOneEvent(
      sink.events,
      { decision: 'deny', reason: 'request_binding_mismatch', route_id: 'orders.create', status: 401 },
      secretsOf(s),
    );
    sink.events.length = 0;
    await expectDenied(
      await send(app, s, {
        body: '{"amount":"9.00"}',
        headers: { 'x-trustplane-body-sha256': null, 'x-trustplane-transcript-sha256': null },
      }),
      401,
      'invalid_request_proof',
      'invalid',
    );
    expectOneEvent(
      sink.events,
      { decision: 'deny', reason: 'invalid_request_proof', route_id: 'orders.create', status: 401 },
      secretsOf(s),
    );
    expect(calls.n).toBe(0);
    expect(replayStore.size).toBe(0);
  });

  it('attack: replay: the same signed request twice is jti_replay', async () => {
    const { app, sink, calls } = makeApp();
    const s = await signedPost();
    expect((await send(app, s)).status).toBe(200);
    await expectDenied(await send(app, s), 401, 'jti_replay', 'invalid');
    expect(calls.n).toBe(1);
    expect(sink.events.map((e) => [e.decision, e.reason, e.route_id])).toEqual([
      ['allow', undefined, 'orders.create'],
      ['deny', 'jti_replay', 'orders.create'],
    ]);
  });

  it('bundle_route_missing: 403 for a path no route matches', async () => {
    const { app, sink, calls } = makeApp();
    const s = await signed(world, { target: '/v1/invoices', routeId: 'invoices.list' });
    await expectDenied(await send(app, s), 403, 'bundle_route_missing');
    expect(calls.n).toBe(0);
    expectOneEvent(
      sink.events,
      { decision: 'deny', reason: 'bundle_route_missing', status: 403 },
      secretsOf(s),
    );
  });

  it('body_too_large: 413 beyond maxBodyBytes (declared and streamed)', async () => {
    const { app, sink, calls } = makeApp({ maxBodyBytes: 64 });
    const s = await signedPost(JSON.stringify({ pad: 'x'.repeat(100) }));
    await expectDenied(await send(app, s), 413, 'body_too_large');
    expectOneEvent(sink.events, { decision: 'deny', reason: 'body_too_large', status: 413 });
    sink.events.length = 0;
    // Without a Content-Length: a streamed body.
    const bytes = new TextEncoder().encode(s.body);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 50));
        controller.enqueue(bytes.slice(50));
        controller.close();
      },
    });
    const res = await app.request(s.url, {
      method: 'POST',
      headers: s.headers,
      body: stream,
      duplex: 'half',
    } as RequestInit);
    await expectDenied(res, 413, 'body_too_large');
    expectOneEvent(sink.events, { decision: 'deny', reason: 'body_too_large', status: 413 });
    expect(calls.n).toBe(0);
  });

  it('a body already read by earlier middleware fails closed (500 internal_error)', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const { app, sink, calls } = makeApp({
      before: (a) =>
        a.use('*', async (c, next) => {
          await c.req.raw.text();
          await next();
        }),
    });
    const s = await signedPost();
    await expectDenied(await send(app, s), 500, 'internal_error');
    expect(calls.n).toBe(0);
    expectOneEvent(sink.events, { decision: 'deny', reason: 'internal_error', status: 500 });
    expect(sink.events[0]!.detail).toContain('before the middleware ran');
    expect(errors).toHaveBeenCalledTimes(1);
    errors.mockRestore();
  });
});

describe('hono trustplane(): audit sink failures and onDecision', () => {
  it('a throwing or rejecting audit sink does not change the decision; onAuditError sees it', async () => {
    for (const write of [
      () => {
        throw new Error('disk full');
      },
      () => Promise.reject(new Error('db down')),
    ]) {
      const failures: { error: unknown; event: AuditEvent | undefined }[] = [];
      const audit: AuditSink = { write };
      const { app, calls } = makeApp({
        audit,
        onAuditError: (error, event) => failures.push({ error, event }),
      });
      const s = await signed(world);
      expect((await send(app, s)).status).toBe(200);
      await expectDenied(await send(app, s), 401, 'jti_replay', 'invalid');
      expect(calls.n).toBe(1);
      expect(failures).toHaveLength(2);
      expect(failures[0]!.event).toMatchObject({ decision: 'allow' });
      expect(failures[1]!.event).toMatchObject({ decision: 'deny', reason: 'jti_replay' });
    }
  });

  it('a failing onAuditError is contained too; the default reporter logs the 1st and 10th failure', async () => {
    const broken: AuditSink = { write: () => Promise.reject(new Error('down')) };
    const { app } = makeApp({
      audit: broken,
      onAuditError: () => {
        throw new Error('reporter broken');
      },
    });
    expect((await send(app, await signed(world))).status).toBe(200);

    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const quiet = makeApp({ audit: broken });
    for (let i = 0; i < 12; i += 1) {
      expect((await send(quiet.app, await signed(world))).status).toBe(200);
    }
    expect(errors.mock.calls.map((c) => String(c[0]))).toEqual([
      'trustplane: audit write failed (1 so far): down',
      'trustplane: audit write failed (10 so far): down',
    ]);
    errors.mockRestore();
  });

  it('onDecision sees every decision; if it throws, the request fails closed', async () => {
    const seen: Decision[] = [];
    const ok = makeApp({ onDecision: (d) => void seen.push(d) });
    const s = await signed(world);
    expect((await send(ok.app, s)).status).toBe(200);
    expect((await send(ok.app, s)).status).toBe(401);
    expect(seen.map((d) => d.allowed)).toEqual([true, false]);

    const bad = makeApp({
      onDecision: () => {
        throw new Error('metrics broken');
      },
    });
    await expectDenied(await send(bad.app, await signed(world)), 500, 'internal_error');
    expect(bad.calls.n).toBe(0);
    // The event records the decision that stands: the fail-closed deny that was answered.
    expectOneEvent(bad.sink.events, {
      decision: 'deny',
      reason: 'internal_error',
      route_id: 'orders.search',
      status: 500,
    });
  });
});

describe('hono trustplane(): material provider (hot reload)', () => {
  it('a policy swapped between requests takes effect on the next request', async () => {
    const revoking = await patchedPolicy(world, (doc) => {
      revokeSubject('service:orders-client')(doc);
      doc.policy_version = 'v2';
    });
    let current: { trust: World['trust']; policy: LoadedPolicy } | undefined = {
      trust: world.trust,
      policy: world.policy,
    };
    const { app, sink, calls } = makeApp({ material: () => current });
    expect((await send(app, await signed(world))).status).toBe(200);
    current = { trust: world.trust, policy: revoking };
    await expectDenied(await send(app, await signed(world)), 403, 'revoked');
    current = undefined;
    await expectDenied(await send(app, await signed(world)), 503, 'policy_unavailable');
    current = { trust: world.trust, policy: world.policy };
    expect((await send(app, await signed(world))).status).toBe(200);
    expect(calls.n).toBe(2);
    expect(sink.events.map((e) => [e.decision, e.reason, e.policy_version])).toEqual([
      ['allow', undefined, undefined],
      ['deny', 'revoked', 'v2'],
      ['deny', 'policy_unavailable', undefined],
      ['allow', undefined, undefined],
    ]);
  });

  it('a throwing provider or one returning garbage fails closed (500 internal_error)', async () => {
    const thrower = makeApp({
      material: () => {
        throw new Error('reload in progress');
      },
    });
    await expectDenied(await send(thrower.app, await signed(world)), 500, 'internal_error');
    const garbage = makeApp({ material: () => ({ trust: world.trust, policy: {} as LoadedPolicy }) });
    await expectDenied(await send(garbage.app, await signed(world)), 500, 'internal_error');
    expect(thrower.calls.n + garbage.calls.n).toBe(0);
  });
});

describe('hono trustplane(): options are checked at construction', () => {
  const replayStore = new MemoryReplayStore();
  it('rejects missing or doubled material and bad limits', () => {
    expect(() => trustplane({ replayStore } as unknown as TrustplaneOptions)).toThrow(TypeError);
    expect(() =>
      trustplane({
        replayStore,
        trust: world.trust,
        policy: world.policy,
        material: () => undefined,
      } as unknown as TrustplaneOptions),
    ).toThrow(TypeError);
    expect(() =>
      trustplane({ trust: world.trust, policy: world.policy } as unknown as TrustplaneOptions),
    ).toThrow(/replayStore/);
    expect(() =>
      trustplane({ trust: world.trust, policy: world.policy, replayStore, maxBodyBytes: -1 }),
    ).toThrow(RangeError);
    expect(() =>
      trustplane({ trust: world.trust, policy: world.policy, replayStore, skewSeconds: NaN }),
    ).toThrow(RangeError);
    expect(() =>
      trustplane({ trust: world.trust, policy: world.policy, replayStore, routeId: 'no.such.route' }),
    ).toThrow(/not in the policy bundle/);
    expect(() =>
      trustplane({ trust: world.trust, policy: world.policy, replayStore, publicOrigin: 'orders.example' }),
    ).toThrow(/publicOrigin/);
    expect(() =>
      trustplane({
        trust: world.trust,
        policy: world.policy,
        replayStore,
        audit: {} as AuditSink,
      }),
    ).toThrow(/AuditSink/);
  });

  it('a fixed routeId and a publicOrigin are applied', async () => {
    const { app } = makeApp({ routeId: 'orders.search', publicOrigin: ORIGIN });
    expect((await send(app, await signed(world))).status).toBe(200);
  });
});
