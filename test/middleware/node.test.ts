import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryAuditSink, type AuditEvent, type AuditSink } from '../../pkg/audit/index.js';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import type { LoadedPolicy } from '../../pkg/bundle/index.js';
import {
  trustplane,
  type AllowDecision,
  type Decision,
  type TrustplaneCommonOptions,
  type TrustplaneOptions,
} from '../../pkg/middleware/node/index.js';
import { signRequest } from '../../pkg/proof/index.js';
import { issuePassport } from '../../pkg/authcore/index.js';
import { NOW, ORIGIN, createWorld, signed, type World } from '../helpers/fixture.js';
import { expectOneEvent, patchedPolicy, revokeSubject, secretsOf } from './helpers.js';

let world: World;
const servers: http.Server[] = [];

beforeAll(async () => {
  world = await createWorld();
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

type Extra = Partial<Omit<TrustplaneCommonOptions, 'replayStore'>> & {
  onDecision?: NonNullable<TrustplaneOptions['onDecision']>;
  trustProxy?: boolean;
  before?: (app: Express) => void;
  mount?: string;
  material?: () => { trust: World['trust']; policy: LoadedPolicy } | undefined;
  policy?: LoadedPolicy;
};

interface TestServer {
  base: string;
  port: number;
  sink: MemoryAuditSink;
  replayStore: MemoryReplayStore;
  calls: { n: number };
}

const identity = (d: AllowDecision | undefined) => ({
  subject: d?.subject,
  issuer: d?.issuer,
  routeId: d?.routeId,
  keyBinding: d?.keyBinding,
});

const parsers: Record<string, express.RequestHandler> = {
  json: express.json(),
  raw: express.raw({ type: '*/*' }),
  text: express.text({ type: '*/*' }),
};

/** A real Express 5 app on 127.0.0.1:0, guarded by trustplane(); `calls` counts handler runs. */
async function startApp(extra: Extra = {}): Promise<TestServer> {
  const sink = new MemoryAuditSink();
  const replayStore = new MemoryReplayStore();
  const calls = { n: 0 };
  const { before, mount, material, policy, ...rest } = extra;
  const app = express();
  before?.(app);
  const common = { replayStore, clock: () => NOW, audit: sink, ...rest };
  const guard =
    material !== undefined
      ? trustplane({ ...common, material })
      : trustplane({ ...common, trust: world.trust, policy: policy ?? world.policy });
  if (mount !== undefined) app.use(mount, guard);
  else app.use(guard);

  app.get('/v1/orders/search', (req, res) => {
    calls.n += 1;
    res.json({ ...identity(req.trustplane), jti: req.trustplane?.jti });
  });
  app.get('/v1/orders/:id', (req, res) => {
    calls.n += 1;
    res.json({ ...identity(req.trustplane), id: req.params.id });
  });
  app.post(
    '/v1/orders',
    (req: Request, res: Response, next: NextFunction) => {
      const parser = parsers[String(req.query.parser ?? 'json')];
      if (parser) parser(req, res, next);
      else next();
    },
    async (req: Request, res: Response) => {
      calls.n += 1;
      const mode = String(req.query.parser ?? 'json');
      let body: unknown = req.body;
      if (mode === 'stream') {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        body = Buffer.concat(chunks).toString('utf8');
      } else if (Buffer.isBuffer(req.body)) {
        body = { hex: req.body.toString('hex') };
      }
      res.json({ ...identity(req.trustplane), mode, body });
    },
  );
  app.use((_req, res) => {
    calls.n += 1;
    res.status(299).send('reached');
  });

  const server = http.createServer(app);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, port, sink, replayStore, calls };
}

type Signed = Awaited<ReturnType<typeof signed>> & { body?: string };

/** Send a signed request with real fetch over loopback. */
function send(
  t: TestServer,
  s: Signed,
  override: { body?: string; headers?: Record<string, string | null> } = {},
): Promise<globalThis.Response> {
  const headers = new Headers(s.headers);
  for (const [k, v] of Object.entries(override.headers ?? {})) {
    if (v === null) headers.delete(k);
    else headers.set(k, v);
  }
  const body = override.body ?? s.body;
  return fetch(t.base + s.url.slice(ORIGIN.length), {
    method: s.method,
    headers,
    ...(body !== undefined && s.method !== 'GET' ? { body } : {}),
  });
}

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * Send with node:http, so the request target goes out byte for byte (fetch would normalize the
 * path), headers may repeat, and the body can be chunked without a Content-Length.
 */
function rawSend(
  t: TestServer,
  options: {
    method?: string;
    path: string;
    headers: OutgoingHttpHeaders | string[];
    chunks?: (string | Buffer)[];
    abortAfterChunks?: boolean;
  },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(
      {
        host: '127.0.0.1',
        port: t.port,
        method: options.method ?? 'GET',
        path: options.path,
        headers: options.headers,
        agent: false,
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    for (const chunk of options.chunks ?? []) req.write(chunk);
    if (options.abortAfterChunks) {
      setTimeout(() => {
        req.destroy();
        resolve({ status: 0, headers: {}, body: '' });
      }, 50);
    } else req.end();
  });
}

const ORDER = '{"order_id":"ord_123","amount":"42.00","note":"é ✓"}';

async function signedPost(
  body = ORDER,
  target = '/v1/orders',
  contentType = 'application/json',
): Promise<Signed> {
  const s = await signed(world, {
    method: 'POST',
    target,
    routeId: 'orders.create',
    body,
    headers: { 'content-type': contentType },
  });
  return { ...s, body };
}

async function expectDenied(
  res: globalThis.Response | RawResponse,
  status: number,
  reason: string,
  challenge?: 'missing' | 'invalid',
): Promise<void> {
  const get = (name: string): string | null =>
    res instanceof globalThis.Response
      ? res.headers.get(name)
      : ((res.headers[name] as string | undefined) ?? null);
  expect(res.status).toBe(status);
  expect(res instanceof globalThis.Response ? await res.text() : res.body).toBe(
    JSON.stringify({ allowed: false, reason }),
  );
  expect(get('content-type')).toBe('application/json');
  expect(get('cache-control')).toBe('no-store');
  const www = get('www-authenticate');
  if (challenge === 'missing') expect(www).toBe('Bearer realm="trustplane"');
  else if (challenge === 'invalid') expect(www).toBe('Bearer realm="trustplane", error="invalid_token"');
  else expect(www).toBeNull();
}

describe('node trustplane(): allow (Express 5 over loopback)', () => {
  it('allows a signed GET and sets req.trustplane', async () => {
    const t = await startApp();
    const s: Signed = await signed(world, { headers: { 'x-request-id': 'req-7' } });
    const res = await send(t, s);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      subject: 'service:orders-client',
      issuer: 'https://issuer.example/software-jwks',
      routeId: 'orders.search',
      keyBinding: 'software',
      jti: s.claims.jti,
    });
    expect(t.calls.n).toBe(1);
    const event = expectOneEvent(
      t.sink.events,
      { decision: 'allow', route_id: 'orders.search', status: 200 },
      secretsOf(s),
    );
    expect(event).toMatchObject({
      component: 'middleware-node',
      instance: hostname(),
      method: 'GET',
      authority: `127.0.0.1:${t.port}`,
      path: '/v1/orders/search',
      client_address: '127.0.0.1',
      request_id: 'req-7',
      transcript_sha256: s.transcript.sha256,
    });
  });

  it('allows a signed POST; express.json() downstream sees the exact body', async () => {
    const t = await startApp();
    const s = await signedPost();
    const res = await send(t, s);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      subject: 'service:orders-client',
      issuer: 'https://issuer.example/software-jwks',
      routeId: 'orders.create',
      keyBinding: 'software',
      mode: 'json',
      body: JSON.parse(ORDER),
    });
    expect(t.calls.n).toBe(1);
    expectOneEvent(
      t.sink.events,
      { decision: 'allow', route_id: 'orders.create', status: 200 },
      secretsOf(s),
    );
  });

  it('express.raw(), express.text() and a handler reading the stream get the same bytes', async () => {
    const t = await startApp();
    const big = JSON.stringify({ pad: 'ü'.repeat(40_000) }); // > the stream's 16 KiB buffer
    for (const [mode, body] of [
      ['raw', ORDER],
      ['text', ORDER],
      ['stream', ORDER],
      ['raw', big],
      ['stream', big],
    ] as const) {
      const s = await signedPost(body, `/v1/orders?parser=${mode}`);
      const res = await send(t, s);
      expect(res.status).toBe(200);
      const got = (await res.json()) as { mode: string; body: unknown };
      expect(got.mode).toBe(mode);
      expect(got.body).toEqual(mode === 'raw' ? { hex: Buffer.from(body).toString('hex') } : body);
    }
    expect(t.calls.n).toBe(5);
  });

  it('a chunked body (no Content-Length) is bound and re-injected', async () => {
    const t = await startApp();
    const s = await signedPost();
    const bytes = Buffer.from(ORDER);
    const res = await rawSend(t, {
      method: 'POST',
      path: '/v1/orders',
      headers: s.headers,
      chunks: [bytes.subarray(0, 10), bytes.subarray(10)],
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ mode: 'json', body: JSON.parse(ORDER) });
  });

  it('an empty POST body still reaches express.json() as {}', async () => {
    const t = await startApp();
    const s = await signedPost('');
    const res = await send(t, s);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ body: {} });
  });

  it('an empty chunked body is bound as empty and still parsed downstream', async () => {
    const t = await startApp();
    const s = await signedPost('', '/v1/orders?parser=text', 'text/plain');
    const res = await rawSend(t, {
      method: 'POST',
      path: '/v1/orders?parser=text',
      headers: { ...s.headers, 'transfer-encoding': 'chunked' },
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ mode: 'text', body: '' });
  });

  it('a body already fully buffered when the middleware runs (after async middleware) is re-injected', async () => {
    const t = await startApp({
      before: (app) => app.use((_req, _res, next) => void setTimeout(next, 30)),
    });
    const big = JSON.stringify({ pad: 'x'.repeat(100_000) });
    for (const [body, mode] of [
      [ORDER, 'json'],
      [big, 'stream'],
      ['', 'text'],
    ] as const) {
      const s = await signedPost(
        body,
        `/v1/orders?parser=${mode}`,
        mode === 'json' ? 'application/json' : 'text/plain',
      );
      const chunks = body === '' ? [] : [body];
      const res = await rawSend(t, {
        method: 'POST',
        path: `/v1/orders?parser=${mode}`,
        headers: { ...s.headers, 'transfer-encoding': 'chunked' },
        chunks,
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ mode, body: mode === 'json' ? JSON.parse(body) : body });
    }
    expect(t.calls.n).toBe(3);
  });

  it('mounted under a path (app.use("/v1", …)) it still verifies the full original path', async () => {
    const t = await startApp({ mount: '/v1' });
    expect((await send(t, await signed(world))).status).toBe(200);
    const s = await signed(world);
    await expectDenied(
      await rawSend(t, { path: '/v1/orders/./search', headers: s.headers }),
      400,
      'unsafe_request_path',
    );
    expect(t.calls.n).toBe(1);
  });

  it('accepts a raw Buffer req.body from an earlier express.raw() (identity encoding)', async () => {
    const t = await startApp({ before: (app) => app.use(express.raw({ type: '*/*' })) });
    const s = await signedPost(ORDER, '/v1/orders?parser=none');
    const res = await send(t, s);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ body: { hex: Buffer.from(ORDER).toString('hex') } });
  });
});

describe('node trustplane(): deny (handler not run, exact body, one audit event)', () => {
  it('missing_passport: 401 with a Bearer challenge', async () => {
    const t = await startApp();
    const s = await signed(world);
    await expectDenied(
      await send(t, s, { headers: { authorization: null } }),
      401,
      'missing_passport',
      'missing',
    );
    expect(t.calls.n).toBe(0);
    expectOneEvent(
      t.sink.events,
      // The route is resolved for the event (and a dry-run route) even though the passport is missing.
      { decision: 'deny', reason: 'missing_passport', status: 401, route_id: 'orders.search' },
      secretsOf(s),
    );
  });

  it('attack: tampered body: request_binding_mismatch, and invalid_request_proof without digest headers', async () => {
    const t = await startApp();
    const s = await signedPost('{"amount":"1.00"}');
    await expectDenied(
      await send(t, s, { body: '{"amount":"9.00"}' }),
      401,
      'request_binding_mismatch',
      'invalid',
    );
    expectOneEvent(
      t.sink.events,
      { decision: 'deny', reason: 'request_binding_mismatch', route_id: 'orders.create', status: 401 },
      secretsOf(s),
    );
    t.sink.events.length = 0;
    await expectDenied(
      await send(t, s, {
        body: '{"amount":"9.00"}',
        headers: { 'x-trustplane-body-sha256': null, 'x-trustplane-transcript-sha256': null },
      }),
      401,
      'invalid_request_proof',
      'invalid',
    );
    expectOneEvent(
      t.sink.events,
      { decision: 'deny', reason: 'invalid_request_proof', route_id: 'orders.create', status: 401 },
      secretsOf(s),
    );
    expect(t.calls.n).toBe(0);
    expect(t.replayStore.size).toBe(0);
    // The untampered request still goes through on the same keep-alive connections.
    expect((await send(t, s)).status).toBe(200);
  });

  it('attack: replay: the same signed request twice is jti_replay', async () => {
    const t = await startApp();
    const s = await signedPost();
    expect((await send(t, s)).status).toBe(200);
    await expectDenied(await send(t, s), 401, 'jti_replay', 'invalid');
    expect(t.calls.n).toBe(1);
    expect(t.sink.events.map((e) => [e.decision, e.reason, e.route_id])).toEqual([
      ['allow', undefined, 'orders.create'],
      ['deny', 'jti_replay', 'orders.create'],
    ]);
  });

  it('bundle_route_missing: 403 for a path no route matches', async () => {
    const t = await startApp();
    const s = await signed(world, { target: '/v1/invoices', routeId: 'invoices.list' });
    await expectDenied(await send(t, s), 403, 'bundle_route_missing');
    expect(t.calls.n).toBe(0);
    expectOneEvent(
      t.sink.events,
      { decision: 'deny', reason: 'bundle_route_missing', status: 403 },
      secretsOf(s),
    );
  });

  it('body_too_large: 413 by Content-Length, before reading', async () => {
    const t = await startApp({ maxBodyBytes: 64 });
    const s = await signedPost(JSON.stringify({ pad: 'x'.repeat(100) }));
    const res = await send(t, s);
    await expectDenied(res, 413, 'body_too_large');
    expect(res.headers.get('connection')).toBe('close');
    expect(t.calls.n).toBe(0);
    expectOneEvent(t.sink.events, { decision: 'deny', reason: 'body_too_large', status: 413 });
  });

  it('body_too_large: 413 for a chunked upload without Content-Length', async () => {
    const t = await startApp({ maxBodyBytes: 1024 });
    const s = await signedPost(JSON.stringify({ pad: 'x'.repeat(4000) }));
    const chunk = Buffer.from(s.body!);
    const res = await rawSend(t, {
      method: 'POST',
      path: '/v1/orders',
      headers: s.headers,
      chunks: [chunk.subarray(0, 700), chunk.subarray(700, 1400), chunk.subarray(1400)],
    });
    await expectDenied(res, 413, 'body_too_large');
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(t.calls.n).toBe(0);
    expectOneEvent(t.sink.events, {
      decision: 'deny',
      reason: 'body_too_large',
      status: 413,
      route_id: 'orders.create',
    });
    // Also through fetch with a streamed body.
    t.sink.events.length = 0;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < chunk.length; i += 500) controller.enqueue(chunk.subarray(i, i + 500));
        controller.close();
      },
    });
    const streamed = await fetch(`${t.base}/v1/orders`, {
      method: 'POST',
      headers: s.headers,
      body: stream,
      duplex: 'half',
    } as RequestInit);
    await expectDenied(streamed, 413, 'body_too_large');
    // A chunked body is read only once the passport and route passed: the event names the route.
    expectOneEvent(t.sink.events, {
      decision: 'deny',
      reason: 'body_too_large',
      status: 413,
      route_id: 'orders.create',
    });
    expect(t.calls.n).toBe(0);
  });

  it('attack: spoofed second Authorization header: malformed_request', async () => {
    const t = await startApp();
    const s = await signed(world);
    const other = await signed(world);
    // Raw header list (node:http then adds no Host of its own).
    const headers = ['host', `127.0.0.1:${t.port}`, ...Object.entries(s.headers).flat()];
    headers.push('authorization', other.headers.authorization!);
    await expectDenied(await rawSend(t, { path: '/v1/orders/search', headers }), 400, 'malformed_request');
    expect(t.calls.n).toBe(0);
    expectOneEvent(t.sink.events, { decision: 'deny', reason: 'malformed_request', status: 400 });
  });

  it('an absolute-form request target is refused (malformed_request)', async () => {
    const t = await startApp();
    const s = await signed(world);
    await expectDenied(
      await rawSend(t, { path: `${ORIGIN}/v1/orders/search`, headers: s.headers }),
      400,
      'malformed_request',
    );
    expect(t.calls.n).toBe(0);
  });

  it('a client that aborts mid-body gets no handler run; the decision is audited', async () => {
    const t = await startApp();
    const s = await signedPost();
    await rawSend(t, {
      method: 'POST',
      path: '/v1/orders',
      headers: { ...s.headers, 'content-length': String(Buffer.byteLength(ORDER) + 100) },
      chunks: [ORDER],
      abortAfterChunks: true,
    });
    await vi.waitFor(() => expect(t.sink.events).toHaveLength(1));
    expectOneEvent(t.sink.events, {
      decision: 'deny',
      reason: 'malformed_request',
      status: 400,
      route_id: 'orders.create',
    });
    expect(t.calls.n).toBe(0);
  });
});

describe('attack: path confusion %2F', () => {
  // Signed for the canonical path, sent with a raw path that a proxy or framework could normalize
  // into it (or into another route): refused before routing, whatever the signature says.
  for (const path of [
    '/v1/orders/..%2Fsearch',
    '/v1/orders/%2e%2e/search',
    '/v1/orders/./search',
    '/v1/orders/../orders/search',
    '/v1/orders//search',
    '/v1/orders/search%2F',
    '/v1/orders/%5c..%5csearch',
    '/v1/orders/..;/search',
  ]) {
    it(`${path} → 400 unsafe_request_path`, async () => {
      const t = await startApp();
      const s = await signed(world);
      await expectDenied(await rawSend(t, { path, headers: s.headers }), 400, 'unsafe_request_path');
      expect(t.calls.n).toBe(0);
      const event = expectOneEvent(
        t.sink.events,
        { decision: 'deny', reason: 'unsafe_request_path', status: 400 },
        secretsOf(s),
      );
      expect(event).toMatchObject({ stage: 'path', path });
      expect(t.replayStore.size).toBe(0);
    });
  }
});

describe('node trustplane(): body consumed by an earlier parser', () => {
  it('express.json() before trustplane() fails closed with 500 internal_error and one clear log line', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const t = await startApp({ before: (app) => app.use(express.json()) });
    for (let i = 0; i < 2; i += 1) {
      await expectDenied(await send(t, await signedPost()), 500, 'internal_error');
    }
    expect(t.calls.n).toBe(0);
    expect(t.sink.events.map((e) => [e.reason, e.status])).toEqual([
      ['internal_error', 500],
      ['internal_error', 500],
    ]);
    expect(t.sink.events[0]!.detail).toContain('register trustplane() before express.json()');
    expect(errors).toHaveBeenCalledTimes(1);
    errors.mockRestore();
    // A GET without a body is unaffected.
    expect((await send(t, await signed(world))).status).toBe(200);
  });
});

describe('node trustplane(): scheme and trustProxy', () => {
  // Without a base_url or publicOrigin, the transcript's origin is the request's own.
  async function noBaseUrl(): Promise<LoadedPolicy> {
    return patchedPolicy(world, (doc) => {
      doc.apis = [{ api_id: 'orders-api', audience: 'orders-api' }];
    });
  }
  async function signedFor(url: string) {
    const passport = await issuePassport(
      {
        iss: 'https://issuer.example/software-jwks',
        sub: 'service:orders-client',
        aud: 'orders-api',
        iat: NOW,
        exp: NOW + 300,
        jti: `jti-${crypto.randomUUID()}`,
        trust_domain: 'example.local',
        cnf: { kid: 'k', key_binding: 'software', public_key_b64url: world.caller.publicKey.x },
      },
      world.caller,
      { kid: 'caller-1' },
    );
    return signRequest({ method: 'GET', url, routeId: 'orders.search', passport, requestKey: world.caller });
  }

  it('X-Forwarded-Proto counts only with trustProxy; the authority is Host', async () => {
    const policy = await noBaseUrl();
    const plain = await startApp({ policy });
    const proxied = await startApp({ policy, trustProxy: true });
    const s = await signedFor('https://orders.example/v1/orders/search');
    const headers = { ...s.headers, host: 'Orders.Example', 'x-forwarded-proto': 'https' };
    await expectDenied(
      await rawSend(plain, { path: '/v1/orders/search', headers }),
      401,
      'request_binding_mismatch',
      'invalid',
    );
    const ok = await rawSend(proxied, { path: '/v1/orders/search', headers });
    expect(ok.status).toBe(200);
    // Over plain http without a proxy header, an http-signed request verifies.
    const h = await signedFor(`http://127.0.0.1:${plain.port}/v1/orders/search`);
    expect((await rawSend(plain, { path: '/v1/orders/search', headers: h.headers })).status).toBe(200);
  });

  it('publicOrigin overrides the request origin', async () => {
    const policy = await noBaseUrl();
    const t = await startApp({ policy, publicOrigin: 'https://orders.example' });
    const s = await signedFor('https://orders.example/v1/orders/search');
    expect((await rawSend(t, { path: '/v1/orders/search', headers: s.headers })).status).toBe(200);
  });
});

describe('node trustplane(): material provider, audit failures, onDecision', () => {
  it('a policy swapped between requests takes effect on the next request', async () => {
    const revoking = await patchedPolicy(world, (doc) => {
      revokeSubject('service:orders-client')(doc);
      doc.policy_version = 'v2';
    });
    let current: { trust: World['trust']; policy: LoadedPolicy } | undefined = {
      trust: world.trust,
      policy: world.policy,
    };
    const t = await startApp({ material: () => current });
    expect((await send(t, await signedPost())).status).toBe(200);
    current = { trust: world.trust, policy: revoking };
    await expectDenied(await send(t, await signedPost()), 403, 'revoked');
    current = undefined;
    await expectDenied(await send(t, await signedPost()), 503, 'policy_unavailable');
    current = { trust: world.trust, policy: world.policy };
    expect((await send(t, await signedPost())).status).toBe(200);
    expect(t.calls.n).toBe(2);
    expect(t.sink.events.map((e) => [e.decision, e.reason, e.policy_version])).toEqual([
      ['allow', undefined, undefined],
      ['deny', 'revoked', 'v2'],
      ['deny', 'policy_unavailable', undefined],
      ['allow', undefined, undefined],
    ]);
  });

  it('a failing audit sink does not change the decision; onAuditError sees each failure', async () => {
    const failures: { error: unknown; event: AuditEvent | undefined }[] = [];
    const audit: AuditSink = { write: () => Promise.reject(new Error('db down')) };
    const t = await startApp({ audit, onAuditError: (error, event) => failures.push({ error, event }) });
    const s = await signedPost();
    expect((await send(t, s)).status).toBe(200);
    await expectDenied(await send(t, s), 401, 'jti_replay', 'invalid');
    expect(t.calls.n).toBe(1);
    expect(failures.map((f) => [(f.error as Error).message, f.event?.decision])).toEqual([
      ['db down', 'allow'],
      ['db down', 'deny'],
    ]);
  });

  it('onDecision sees every decision; if it throws, the request fails closed (500)', async () => {
    const seen: Decision[] = [];
    const ok = await startApp({ onDecision: (d) => void seen.push(d) });
    const s = await signed(world);
    expect((await send(ok, s)).status).toBe(200);
    expect((await send(ok, s)).status).toBe(401);
    expect(seen.map((d) => d.allowed)).toEqual([true, false]);
    const bad = await startApp({
      onDecision: () => {
        throw new Error('metrics broken');
      },
    });
    await expectDenied(await send(bad, await signedPost()), 500, 'internal_error');
    expect(bad.calls.n).toBe(0);
    // The event records the decision that stands: the fail-closed deny that was answered.
    expectOneEvent(bad.sink.events, {
      decision: 'deny',
      reason: 'internal_error',
      route_id: 'orders.create',
      status: 500,
    });
  });

  it('options are checked at construction', () => {
    const replayStore = new MemoryReplayStore();
    expect(() => trustplane({ replayStore } as unknown as TrustplaneOptions)).toThrow(TypeError);
    expect(() =>
      trustplane({ trust: world.trust, policy: world.policy, replayStore, maxBodyBytes: 1.5 }),
    ).toThrow(RangeError);
    expect(() =>
      trustplane({
        trust: world.trust,
        policy: world.policy,
        replayStore,
        onDecision: 'log' as unknown as NonNullable<TrustplaneOptions['onDecision']>,
      }),
    ).toThrow(/onDecision/);
  });
});
