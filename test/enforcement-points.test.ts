import { writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdapter, resolveAdapterConfig, type Adapter } from '../pkg/adapter/index.js';
import { MemoryAuditSink, type AuditEvent } from '../pkg/audit/index.js';
import { MemoryReplayStore, type ReasonCode, type ReplayStore } from '../pkg/authcore/index.js';
import { trustplane as fastifyTrustplane } from '../pkg/middleware/fastify/index.js';
import { trustplane as honoTrustplane, type TrustplaneEnv } from '../pkg/middleware/hono/index.js';
import { trustplane as nodeTrustplane } from '../pkg/middleware/node/index.js';
import { createLogger } from '../pkg/runtime/index.js';
import { createEnforcementKernel, verifyRequest, type TrustplaneMaterial } from '../pkg/verifier/index.js';
import { rawSend, startUpstream, writeWorld, type Upstream } from './helpers/adapter.js';
import { ExtAuthzClient, deniedHeaders, envoyCheckRequest } from './helpers/ext-authz-grpc.js';
import { NOW, ORIGIN, createWorld, signed, type SignSpec, type World } from './helpers/fixture.js';
import { patchedPolicy } from './middleware/helpers.js';

// One table of cases, run against every enforcement point: the kernel called directly (library),
// the Hono middleware (app.request), the Node middleware in a real Express app, the Fastify plugin
// in a real Fastify 5 app, and the adapter in proxy and forward-auth modes over loopback, and its
// gRPC ext_authz listener called with CheckRequests shaped like Envoy's. Reasons, statuses, deny bodies,
// X-TrustPlane-Reason, whether the upstream was reached (and with which identity) and the audit
// events must be the same everywhere; the differences a point's protocol forces are listed in
// docs/architecture.md and asserted here where they apply. The gRPC point's: its answer is a
// CheckResponse (the deny's status, headers and body in a DeniedHttpResponse, "reached" is gRPC OK,
// the identity is what the OkHttpResponse sets), Envoy sends the body in raw_body and every header
// line in header_map (encode_raw_headers: true, so it sees repeated lines like the Node points),
// and a dry-run pass removes every identity header (headers_to_remove) instead of answering them empty.

const MAX_BODY = 64 * 1024;

/** The routes this table adds to the fixture's. */
function tableRoutes(doc: Record<string, unknown>, version: 'A' | 'B'): void {
  const software = {
    source_type: 'software_jwks',
    issuer: 'https://issuer.example/software-jwks',
    trust_domain: 'example.local',
    subject_exact: 'service:orders-client',
  };
  const groups = doc.route_groups as { routes: Record<string, unknown>[] }[];
  groups[0]!.routes.push(
    {
      route_id: 'orders.dryrun',
      method: 'GET',
      path_template: '/v1/dry/orders',
      enforcement: 'dry-run',
      allowed_sources: [software],
    },
    {
      route_id: 'orders.audited',
      method: 'GET',
      path_template: '/v1/audited/orders',
      // Snapshot A requires a durable audit write; B (loaded mid-request) does not.
      ...(version === 'A' ? { audit: 'required' } : {}),
      allowed_sources: [software],
    },
  );
  doc.policy_version = version;
  doc.revocations = [
    { kind: 'key', value: 'revoked-request-key' },
    { kind: 'jti', value: 'jti-revoked' },
  ];
}

/** One request of a case: repeated header lines are kept as separate lines where the point can. */
interface CaseRequest {
  readonly method: string;
  /** Path and query, exactly as sent. */
  readonly target: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body?: string;
}

/** What a point did with one request, normalized across points. */
interface Outcome {
  readonly status: number;
  readonly body: string;
  readonly reasonHeader: string | undefined;
  readonly wwwAuthenticate: string | undefined;
  /** The request reached the upstream (handler ran, proxy forwarded, forward-auth said 200). */
  readonly reached: boolean;
  /** The verified subject the upstream saw (undefined: none). */
  readonly identity: string | undefined;
  /** Forward-auth: the identity and body-verified headers were answered, empty (a dry-run pass). */
  readonly blankIdentity?: true;
}

/** The parts of an audit event every point must agree on. */
type EventView = Pick<
  AuditEvent,
  'event_type' | 'decision' | 'status' | 'reason' | 'route_id' | 'enforcement' | 'policy_version'
>;

interface Harness {
  readonly name: 'library' | 'hono' | 'express' | 'fastify' | 'proxy' | 'forward-auth' | 'ext-authz-grpc';
  /** Web points see headers through the Fetch API, which merges repeated lines. */
  readonly web: boolean;
  send(req: CaseRequest): Promise<Outcome>;
  /** Audit events written since the last call. */
  events(): EventView[];
  /** Run `hook` once, right after the next successful jti consume (between verify and record). */
  afterNextConsume(hook: () => Promise<void>): void;
  /** Make snapshot `version` current. */
  load(version: 'A' | 'B'): Promise<void>;
  /** The Prometheus text (adapter harnesses only). */
  metrics?(): Promise<string>;
  close(): Promise<void>;
}

/** A memory replay store that can run a hook right after a consume (a reload mid-request). */
class HookedReplayStore implements ReplayStore {
  readonly #inner = new MemoryReplayStore();
  hook: (() => Promise<void>) | undefined;
  async consume(key: string, expiresAt: number, now: number): Promise<boolean> {
    const first = await this.#inner.consume(key, expiresAt, now);
    const hook = this.hook;
    this.hook = undefined;
    if (first && hook) await hook();
    return first;
  }
}

const view = (e: AuditEvent): EventView => ({
  event_type: e.event_type,
  decision: e.decision,
  status: e.status,
  ...(e.reason !== undefined ? { reason: e.reason } : {}),
  ...(e.route_id !== undefined ? { route_id: e.route_id } : {}),
  ...(e.enforcement !== undefined ? { enforcement: e.enforcement } : {}),
  ...(e.policy_version !== undefined ? { policy_version: e.policy_version } : {}),
});

function eventLog(sink: MemoryAuditSink): () => EventView[] {
  let seen = 0;
  return () => {
    const fresh = sink.events.slice(seen).map(view);
    seen = sink.events.length;
    return fresh;
  };
}

function webRequest(req: CaseRequest): Request {
  const headers = new Headers();
  for (const [k, v] of req.headers) headers.append(k, v);
  return new Request(`${ORIGIN}${req.target}`, {
    method: req.method,
    headers,
    ...(req.body !== undefined ? { body: req.body } : {}),
  });
}

function rawHeaders(req: CaseRequest): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of req.headers) {
    const prior = out[k];
    out[k] = prior === undefined ? v : Array.isArray(prior) ? [...prior, v] : [prior, v];
  }
  return out;
}

const header = (h: IncomingHttpHeaders, name: string) => {
  const v = h[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

let world: World;
let snapshots: Record<'A' | 'B', TrustplaneMaterial>;

/** Middleware and library harnesses share this: a provider over snapshot A or B. */
function materialSwitch() {
  let current: TrustplaneMaterial = snapshots.A;
  return {
    provider: () => current,
    load: async (v: 'A' | 'B') => {
      current = snapshots[v];
    },
  };
}

async function libraryHarness(): Promise<Harness> {
  const sink = new MemoryAuditSink();
  const replay = new HookedReplayStore();
  const material = materialSwitch();
  const kernel = createEnforcementKernel({
    component: 'library',
    material: material.provider,
    replayStore: replay,
    audit: sink,
    clock: () => NOW,
    maxBodyBytes: MAX_BODY,
  });
  return {
    name: 'library',
    web: true,
    async send(req) {
      const request = webRequest(req);
      const e = await kernel.enforce({
        request,
        facts: { method: req.method, path: req.target.split('?')[0]! },
        startedMs: performance.now(),
      });
      if (e.outcome === 'deny') {
        return {
          status: e.answer.status,
          body: e.answer.body,
          reasonHeader: e.answer.headers['x-trustplane-reason'],
          wwwAuthenticate: e.answer.headers['www-authenticate'],
          reached: false,
          identity: undefined,
        };
      }
      return {
        status: 200,
        body: '',
        reasonHeader: undefined,
        wwwAuthenticate: undefined,
        reached: true,
        identity: e.outcome === 'allow' ? e.decision.subject : undefined,
      };
    },
    events: eventLog(sink),
    afterNextConsume: (hook) => (replay.hook = hook),
    load: material.load,
    close: async () => undefined,
  };
}

async function honoHarness(): Promise<Harness> {
  const sink = new MemoryAuditSink();
  const replay = new HookedReplayStore();
  const material = materialSwitch();
  const app = new Hono<TrustplaneEnv>();
  app.use(
    '*',
    honoTrustplane({
      material: material.provider,
      replayStore: replay,
      audit: sink,
      clock: () => NOW,
      maxBodyBytes: MAX_BODY,
    }),
  );
  app.all('*', async (c) => {
    await c.req.text();
    return c.json({ subject: c.get('trustplane')?.subject ?? null }, 200, { 'x-upstream': 'yes' });
  });
  return {
    name: 'hono',
    web: true,
    async send(req) {
      const res = await app.request(webRequest(req));
      const body = await res.text();
      const reached = res.headers.get('x-upstream') === 'yes';
      return {
        status: res.status,
        body: reached ? '' : body,
        reasonHeader: res.headers.get('x-trustplane-reason') ?? undefined,
        wwwAuthenticate: res.headers.get('www-authenticate') ?? undefined,
        reached,
        identity: reached
          ? ((JSON.parse(body) as { subject: string | null }).subject ?? undefined)
          : undefined,
      };
    },
    events: eventLog(sink),
    afterNextConsume: (hook) => (replay.hook = hook),
    load: material.load,
    close: async () => undefined,
  };
}

/** Normalize a raw HTTP answer from a point whose upstream answers with `x-upstream: yes`. */
function fromRaw(res: { status: number; headers: IncomingHttpHeaders; body: string }): Outcome {
  const reached = res.headers['x-upstream'] === 'yes';
  return {
    status: res.status,
    body: reached ? '' : res.body,
    reasonHeader: header(res.headers, 'x-trustplane-reason'),
    wwwAuthenticate: header(res.headers, 'www-authenticate'),
    reached,
    identity: reached
      ? ((JSON.parse(res.body) as { subject: string | null }).subject ?? undefined)
      : undefined,
  };
}

async function expressHarness(): Promise<Harness> {
  const sink = new MemoryAuditSink();
  const replay = new HookedReplayStore();
  const material = materialSwitch();
  const app = express();
  app.use(
    nodeTrustplane({
      material: material.provider,
      replayStore: replay,
      audit: sink,
      clock: () => NOW,
      maxBodyBytes: MAX_BODY,
    }),
  );
  app.use(express.text({ type: '*/*' }));
  app.use((req, res) => {
    res.set('x-upstream', 'yes').json({ subject: req.trustplane?.subject ?? null });
  });
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    name: 'express',
    web: false,
    async send(req) {
      return fromRaw(
        await rawSend(base, {
          method: req.method,
          target: req.target,
          headers: rawHeaders(req),
          ...(req.body !== undefined ? { body: req.body } : {}),
        }),
      );
    },
    events: eventLog(sink),
    afterNextConsume: (hook) => (replay.hook = hook),
    load: material.load,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The Fastify plugin in a real Fastify 5 app over loopback; the route handler parses the body. */
async function fastifyHarness(): Promise<Harness> {
  const sink = new MemoryAuditSink();
  const replay = new HookedReplayStore();
  const material = materialSwitch();
  const app = Fastify();
  await app.register(fastifyTrustplane, {
    material: material.provider,
    replayStore: replay,
    audit: sink,
    clock: () => NOW,
    maxBodyBytes: MAX_BODY,
  });
  app.all('*', async (request, reply) => {
    reply.header('x-upstream', 'yes');
    return { subject: request.trustplane?.subject ?? null };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    name: 'fastify',
    web: false,
    async send(req) {
      return fromRaw(
        await rawSend(base, {
          method: req.method,
          target: req.target,
          headers: rawHeaders(req),
          ...(req.body !== undefined ? { body: req.body } : {}),
        }),
      );
    },
    events: eventLog(sink),
    afterNextConsume: (hook) => (replay.hook = hook),
    load: material.load,
    close: () => app.close(),
  };
}

async function adapterHarness(
  mode: 'proxy' | 'forward-auth' | 'ext-authz-grpc',
  upstream: Upstream,
): Promise<Harness> {
  const sink = new MemoryAuditSink();
  const replay = new HookedReplayStore();
  const files = writeWorld(world);
  let generation = 0;
  writeFileSync(files.policyBundle, await policyDoc('A'));
  const config = resolveAdapterConfig({
    flags: {
      mode,
      listen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      ...(mode === 'proxy' ? { upstream: upstream.url } : {}),
      ...(mode === 'forward-auth' ? { forwardAuthGateway: 'nginx' as const } : {}),
      ...(mode === 'ext-authz-grpc' ? { extAuthzGrpcListen: '127.0.0.1:0' } : {}),
      trustMaterial: files.trustMaterial,
      policyBundle: files.policyBundle,
      trustMaterialPublicKeys: [files.signerKey],
      policyBundlePublicKeys: [files.signerKey],
      reloadIntervalMs: 0,
      shutdownTimeoutMs: 2_000,
      maxBodyBytes: MAX_BODY,
    },
  });
  const adapter: Adapter = await startAdapter(config, {
    clock: () => NOW,
    audit: sink,
    replayStore: replay,
    log: createLogger('silent'),
    admin: false,
  });
  const base = `http://127.0.0.1:${adapter.address.port}`;
  const grpc =
    mode === 'ext-authz-grpc' ? new ExtAuthzClient(`127.0.0.1:${adapter.address.port}`) : undefined;
  const load = async (v: 'A' | 'B') => {
    writeFileSync(files.policyBundle, await policyDoc(v, ++generation));
    const outcome = await adapter.reload();
    expect(outcome.policy).not.toBe('failed');
  };
  return {
    name: mode,
    web: false,
    async send(req) {
      if (grpc !== undefined) return checkOutcome(grpc, req);
      if (mode === 'proxy') {
        return fromRaw(
          await rawSend(base, {
            method: req.method,
            target: req.target,
            headers: rawHeaders(req),
            ...(req.body !== undefined ? { body: req.body } : {}),
          }),
        );
      }
      // As an nginx auth_request location calls it (examples/nginx): the original headers, the
      // method, URI, host and body length in X-Original-* / X-Forwarded-Host; the body itself is
      // passed too, so that it is bound (as Envoy's with_request_body and Traefik's forwardBody do).
      const res = await rawSend(base, {
        method: 'POST',
        target: '/auth',
        headers: {
          ...rawHeaders(req),
          'x-original-method': req.method,
          'x-original-uri': req.target,
          'x-original-content-length': req.body !== undefined ? String(Buffer.byteLength(req.body)) : '',
          'x-original-transfer-encoding': '',
          'x-forwarded-host': 'orders.example',
          'x-forwarded-proto': 'https',
        },
        ...(req.body !== undefined ? { body: req.body } : {}),
      });
      const reached = res.status === 200;
      return {
        status: reached ? 200 : res.status,
        body: reached ? '' : res.body,
        reasonHeader: header(res.headers, 'x-trustplane-reason'),
        wwwAuthenticate: header(res.headers, 'www-authenticate'),
        reached,
        // A dry-run pass answers the identity headers empty (so gateways overwrite caller-sent ones).
        identity: header(res.headers, 'x-trustplane-subject') || undefined,
        ...(reached &&
        header(res.headers, 'x-trustplane-subject') === '' &&
        header(res.headers, 'x-trustplane-body-verified') === ''
          ? { blankIdentity: true }
          : {}),
      };
    },
    events: eventLog(sink),
    afterNextConsume: (hook) => (replay.hook = hook),
    load,
    metrics: () => adapter.metrics.registry.metrics(),
    close: async () => {
      grpc?.close();
      await adapter.close();
    },
  };
}

/**
 * One case request as Envoy's ext_authz filter sends it over gRPC (with_request_body,
 * pack_as_bytes, encode_raw_headers), and the CheckResponse as the caller and upstream would see it.
 */
async function checkOutcome(client: ExtAuthzClient, req: CaseRequest): Promise<Outcome> {
  const lines = [...req.headers];
  if (req.body !== undefined && !lines.some(([k]) => k.toLowerCase() === 'content-length')) {
    lines.push(['content-length', String(Buffer.byteLength(req.body))]);
  }
  const res = await client.check(
    envoyCheckRequest({
      method: req.method,
      target: req.target,
      headers: lines,
      rawHeaders: true,
      ...(req.body !== undefined ? { body: req.body } : {}),
    }),
  );
  if (res.http_response !== 'ok_response') {
    const h = deniedHeaders(res);
    return {
      status: res.denied_response!.status.code,
      body: res.denied_response!.body,
      reasonHeader: h['x-trustplane-reason'],
      wwwAuthenticate: h['www-authenticate'],
      reached: false,
      identity: undefined,
    };
  }
  expect(res.status?.code ?? 0).toBe(0);
  const set = new Map(res.ok_response!.headers.map((o) => [o.header.key, o.header.value]));
  const removed = res.ok_response!.headers_to_remove;
  return {
    status: 200,
    body: '',
    reasonHeader: undefined,
    wwwAuthenticate: undefined,
    reached: true,
    identity: set.get('x-trustplane-subject'),
    // A dry-run pass: nothing set, every identity header (and Body-Verified) removed upstream.
    ...(set.size === 0 &&
    removed.includes('x-trustplane-subject') &&
    removed.includes('x-trustplane-body-verified')
      ? { blankIdentity: true }
      : {}),
  };
}

/**
 * Policy version A or B as signed file text. `generation` moves `issued_at` forward: a file reload
 * refuses an older document, and another document under the same `issued_at` (bundle_conflict).
 */
async function policyDoc(version: 'A' | 'B', generation = 0): Promise<string> {
  const doc = structuredClone(world.policyDoc);
  delete doc.signature;
  delete doc.signed_by;
  tableRoutes(doc, version);
  doc.issued_at = (doc.issued_at as number) + generation;
  const { signDocument } = await import('../pkg/bundle/index.js');
  const signedDoc = await signDocument(doc, world.bundleSigner, {
    issuer: 'https://bundles.example',
    kid: 'bundle-signer-1',
  });
  return JSON.stringify(signedDoc);
}

/** A signed request as a case request (its headers as the SDK produced them). */
async function signedCase(spec: SignSpec, edit: (h: [string, string][]) => [string, string][] = (h) => h) {
  const s = await signed(world, spec);
  const u = new URL(s.url);
  const headers = edit(Object.entries(s.headers) as [string, string][]);
  return {
    method: s.method,
    target: `${u.pathname}${u.search}`,
    headers,
    ...(spec.body !== undefined ? { body: spec.body } : {}),
  };
}

const without = (name: string) => (h: [string, string][]) => h.filter(([k]) => k !== name);

interface Expected {
  readonly status: number;
  readonly reason?: ReasonCode;
  readonly reached: boolean;
  readonly identity?: string;
  readonly events: readonly EventView[];
}

interface Case {
  readonly name: string;
  /** Requests sent in order; the last one is checked against `expect`. */
  readonly build: () => Promise<CaseRequest[]>;
  readonly expect: Expected;
  /** What the Fetch-based points (library, Hono) see instead, when the Fetch API forces it. */
  readonly expectWeb?: Expected;
  /** Reload snapshot B right after the jti consume (between verify and record). */
  readonly reloadMidRequest?: boolean;
}

const SUBJECT = 'service:orders-client';
const allowEvent = (route: string, extra: Partial<EventView> = {}): EventView => ({
  event_type: 'authorization_decision',
  decision: 'allow',
  status: 200,
  route_id: route,
  policy_version: 'A',
  ...extra,
});
const denyEvent = (
  reason: ReasonCode,
  status: number,
  route?: string,
  extra: Partial<EventView> = {},
): EventView => ({
  event_type: 'authorization_decision',
  decision: 'deny',
  status,
  reason,
  ...(route !== undefined ? { route_id: route } : {}),
  policy_version: 'A',
  ...extra,
});
const denied = (reason: ReasonCode, status: number, route?: string): Expected => ({
  status,
  reason,
  reached: false,
  events: [denyEvent(reason, status, route)],
});

const JSON_BODY = '{"sku":"A-1","qty":2}';

const CASES: readonly Case[] = [
  {
    name: 'an allowed GET reaches the upstream with the verified identity',
    build: async () => [await signedCase({})],
    expect: { status: 200, reached: true, identity: SUBJECT, events: [allowEvent('orders.search')] },
  },
  {
    name: 'an allowed POST binds its body',
    build: async () => [
      await signedCase({
        method: 'POST',
        target: '/v1/orders',
        routeId: 'orders.create',
        body: JSON_BODY,
        headers: { 'content-type': 'application/json' },
      }),
    ],
    expect: { status: 200, reached: true, identity: SUBJECT, events: [allowEvent('orders.create')] },
  },
  {
    name: 'no passport: 401 missing_passport, the route still named in the event',
    build: async () => [await signedCase({}, without('authorization'))],
    expect: denied('missing_passport', 401, 'orders.search'),
  },
  {
    name: 'attack: tampered body: 401 request_binding_mismatch',
    build: async () => {
      const c = await signedCase({
        method: 'POST',
        target: '/v1/orders',
        routeId: 'orders.create',
        body: JSON_BODY,
        headers: { 'content-type': 'application/json' },
      });
      return [{ ...c, body: JSON_BODY.replace('2', '9') }];
    },
    expect: denied('request_binding_mismatch', 401, 'orders.create'),
  },
  {
    name: 'attack: replay: the same request twice, the second 401 jti_replay',
    build: async () => {
      const c = await signedCase({});
      return [c, c];
    },
    expect: {
      status: 401,
      reason: 'jti_replay',
      reached: false,
      events: [allowEvent('orders.search'), denyEvent('jti_replay', 401, 'orders.search')],
    },
  },
  {
    name: 'a route outside the policy: 403 bundle_route_missing',
    build: async () => [await signedCase({ target: '/v1/nothing/here' })],
    expect: denied('bundle_route_missing', 403),
  },
  {
    name: 'attack: revoked caller key (cnf.kid): 403 revoked',
    build: async () => [await signedCase({ claims: { cnf: { kid: 'revoked-request-key' } as never } })],
    expect: denied('revoked', 403, 'orders.search'),
  },
  {
    name: 'attack: revoked jti: 403 revoked',
    build: async () => [await signedCase({ claims: { jti: 'jti-revoked' } })],
    expect: denied('revoked', 403, 'orders.search'),
  },
  {
    name: 'a passport signed by a key the issuer does not list: 401 invalid_passport_signature',
    build: async () => [await signedCase({ issuerKey: world.unlisted, requestKey: world.caller })],
    expect: denied('invalid_passport_signature', 401, 'orders.search'),
  },
  {
    name: 'a key binding below the route minimum: 403 insufficient_key_binding',
    build: async () => [
      await signedCase({
        method: 'POST',
        target: '/v1/orders/42/approve',
        routeId: 'orders.secure',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      }),
    ],
    expect: denied('insufficient_key_binding', 403, 'orders.secure'),
  },
  {
    // User-Agent is one of the headers Node's req.headers keeps only the first line of: a point
    // reading req.headers would verify "a" while the caller signed (and the upstream gets) both.
    name: 'a repeated covered header is joined the same way everywhere (", ") and verifies',
    build: async () => [
      await signedCase(
        {
          target: '/v1/tenants/t1/orders',
          routeId: 'orders.tenant',
          headers: { 'x-tenant-id': 't1', 'user-agent': 'a, b' },
          cover: ['x-tenant-id', 'user-agent'],
        },
        (h) => [...h.filter(([k]) => k !== 'user-agent'), ['user-agent', 'a'], ['user-agent', 'b']],
      ),
    ],
    expect: { status: 200, reached: true, identity: SUBJECT, events: [allowEvent('orders.tenant')] },
  },
  {
    name: 'attack: a repeated Authorization header: 400 malformed_request',
    build: async () => {
      const c = await signedCase({});
      const auth = c.headers.find(([k]) => k === 'authorization')!;
      return [{ ...c, headers: [...c.headers, auth] }];
    },
    expect: denied('malformed_request', 400),
    // The Fetch API hands the two lines over already joined ("Bearer a, Bearer a").
    expectWeb: denied('malformed_passport', 401, 'orders.search'),
  },
  {
    name: 'attack: path confusion %2F: 400 unsafe_request_path',
    build: async () => [{ ...(await signedCase({})), target: '/v1/orders/a%2Fb' }],
    expect: denied('unsafe_request_path', 400),
  },
  {
    name: 'a body over the limit: 413 body_too_large',
    build: async () => {
      const body = 'x'.repeat(MAX_BODY + 1);
      return [
        {
          method: 'POST',
          target: '/v1/orders',
          headers: [
            ['content-type', 'text/plain'],
            ['content-length', String(body.length)],
          ],
          body,
        },
      ];
    },
    expect: denied('body_too_large', 413),
  },
  {
    name: 'dry-run: a deny is recorded (would_deny) but the request goes on without identity',
    build: async () => [
      await signedCase({ target: '/v1/dry/orders', routeId: 'orders.dryrun' }, without('authorization')),
    ],
    expect: {
      status: 200,
      reached: true,
      events: [denyEvent('missing_passport', 401, 'orders.dryrun', { enforcement: 'dry-run' })],
    },
  },
  {
    name: 'dry-run: a tampered request goes on without identity too (the deny is on record)',
    build: async () => [
      await signedCase({ target: '/v1/dry/orders', routeId: 'orders.dryrun' }, (h) =>
        h.map(([k, v]) => [k, k === 'x-trustplane-nonce' ? `${v}x` : v] as [string, string]),
      ),
    ],
    expect: {
      status: 200,
      reached: true,
      events: [denyEvent('request_binding_mismatch', 401, 'orders.dryrun', { enforcement: 'dry-run' })],
    },
  },
  {
    name: 'dry-run: a malformed query is refused (request layer) even without a passport',
    build: async () => [
      {
        ...(await signedCase(
          { target: '/v1/dry/orders', routeId: 'orders.dryrun' },
          without('authorization'),
        )),
        target: '/v1/dry/orders?a=%zz',
      },
    ],
    expect: denied('malformed_request', 400),
  },
  {
    name: 'dry-run: an allowed request carries its identity, the event marked dry-run',
    build: async () => [await signedCase({ target: '/v1/dry/orders', routeId: 'orders.dryrun' })],
    expect: {
      status: 200,
      reached: true,
      identity: SUBJECT,
      events: [allowEvent('orders.dryrun', { enforcement: 'dry-run' })],
    },
  },
  {
    name: "a reload between verify and record: the request keeps its snapshot's audit: required",
    reloadMidRequest: true,
    build: async () => [await signedCase({ target: '/v1/audited/orders', routeId: 'orders.audited' })],
    // The sink has no durable write: under snapshot A the allow cannot stand (503). Reading the
    // route after the reload (B: best effort) would have let it through.
    expect: denied('audit_unavailable', 503, 'orders.audited'),
  },
];

const harnesses: Harness[] = [];
let upstream: Upstream;

beforeAll(async () => {
  world = await createWorld();
  const [a, b] = await Promise.all([
    patchedPolicy(world, (doc) => tableRoutes(doc, 'A')),
    patchedPolicy(world, (doc) => tableRoutes(doc, 'B')),
  ]);
  snapshots = { A: { trust: world.trust, policy: a }, B: { trust: world.trust, policy: b } };
  upstream = await startUpstream((seen, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
    res.end(JSON.stringify({ subject: seen.headers['x-trustplane-subject'] ?? null }));
  });
  harnesses.push(
    await libraryHarness(),
    await honoHarness(),
    await expressHarness(),
    await fastifyHarness(),
    await adapterHarness('proxy', upstream),
    await adapterHarness('forward-auth', upstream),
    await adapterHarness('ext-authz-grpc', upstream),
  );
});

afterAll(async () => {
  for (const h of harnesses) await h.close();
  await upstream?.close();
});

describe('one case table, every enforcement point', () => {
  it.each(CASES.map((c) => [c.name, c]))('%s', async (_name, c) => {
    const results: Record<string, { outcome: Outcome; events: EventView[] }> = {};
    for (const h of harnesses) {
      h.events();
      if (c.reloadMidRequest) h.afterNextConsume(() => h.load('B'));
      const requests = await c.build();
      let outcome: Outcome | undefined;
      for (const r of requests) outcome = await h.send(r);
      const events = h.events();
      if (c.reloadMidRequest) await h.load('A');
      results[h.name] = { outcome: outcome!, events };

      const expected = h.web && c.expectWeb ? c.expectWeb : c.expect;
      const where = `${h.name}: ${c.name}`;
      expect(outcome!.status, where).toBe(expected.status);
      expect(outcome!.reached, where).toBe(expected.reached);
      expect(outcome!.identity, where).toBe(expected.identity);
      if (expected.reason !== undefined) {
        expect(outcome!.body, where).toBe(`{"allowed":false,"reason":"${expected.reason}"}`);
        expect(outcome!.reasonHeader, where).toBe(expected.reason);
        expect(outcome!.wwwAuthenticate !== undefined, where).toBe(expected.status === 401);
      } else {
        expect(outcome!.reasonHeader, where).toBeUndefined();
      }
      expect(events, where).toEqual(expected.events);
      if (h.name === 'forward-auth' || h.name === 'ext-authz-grpc') {
        expect(outcome!.blankIdentity === true, where).toBe(
          expected.reached && expected.identity === undefined,
        );
      }
    }
    // Byte for byte: every point that shares an expectation answered the same body and reason.
    const groups = new Map<string, string[]>();
    for (const h of harnesses) {
      const key = h.web && c.expectWeb ? 'web' : 'all';
      const r = results[h.name]!;
      groups.set(key, [
        ...(groups.get(key) ?? []),
        JSON.stringify([r.outcome.status, r.outcome.body, r.outcome.reasonHeader]),
      ]);
    }
    for (const answers of groups.values()) expect(new Set(answers).size).toBe(1);
  });

  it('verifyRequest alone reaches the decision the events record (the kernel adds only route options)', async () => {
    const replayStore = new MemoryReplayStore();
    for (const c of CASES.filter((k) => !k.reloadMidRequest && k.expectWeb === undefined)) {
      let decision;
      for (const r of await c.build()) {
        decision = await verifyRequest(webRequest(r), {
          ...snapshots.A,
          replayStore,
          clock: () => NOW,
          maxBodyBytes: MAX_BODY,
        });
      }
      const last = c.expect.events.at(-1)!;
      expect(decision!.allowed ? 'allow' : decision!.reason, c.name).toBe(last.reason ?? 'allow');
    }
  });
});

describe('dry-run is visible to operators, invisible to callers', () => {
  it('the adapter forwards a would-deny without any X-TrustPlane-* header and counts it as would_deny', async () => {
    const proxy = harnesses.find((h) => h.name === 'proxy')!;
    const count = async () => {
      const text = await proxy.metrics!();
      const line = text
        .split('\n')
        .find(
          (l) =>
            l.startsWith('trustplane_decisions_total{') &&
            l.includes('outcome="would_deny"') &&
            l.includes('route="orders.dryrun"') &&
            l.includes('reason="missing_passport"'),
        );
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    const before = await count();
    const seenBefore = upstream.requests.length;
    const request = await signedCase(
      { target: '/v1/dry/orders', routeId: 'orders.dryrun' },
      without('authorization'),
    );
    const r = await proxy.send({
      ...request,
      headers: [...request.headers, ['x-trustplane-subject', 'spoofed']],
    });
    expect(r).toMatchObject({ status: 200, reached: true, identity: undefined, reasonHeader: undefined });
    expect(upstream.requests.length).toBe(seenBefore + 1);
    const seen = upstream.requests.at(-1)!;
    expect(Object.keys(seen.headers).filter((k) => k.startsWith('x-trustplane-'))).toEqual([]);
    expect(await count()).toBe(before + 1);
    expect(proxy.events()).toEqual([
      denyEvent('missing_passport', 401, 'orders.dryrun', { enforcement: 'dry-run' }),
    ]);
  });
});
