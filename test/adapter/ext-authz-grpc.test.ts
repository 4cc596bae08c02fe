import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkExtAuthzRequest } from '../../pkg/adapter/ext-authz-grpc.js';
import {
  resolveAdapterConfig,
  startAdapter,
  type Adapter,
  type EnforcementRuntime,
} from '../../pkg/adapter/index.js';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import {
  HEALTHY,
  MemoryReplayStore,
  REASON_CODES,
  unhealthy,
  type ComponentHealth,
  type ReplayStore,
} from '../../pkg/authcore/index.js';
import { IDENTITY_HEADERS } from '../../pkg/proof/wire.js';
import { createLogger } from '../../pkg/runtime/index.js';
import {
  rawSend,
  startTestAdapter,
  withNotesRoute,
  writeWorld,
  type RawResponse,
  type TestAdapter,
} from '../helpers/adapter.js';
import {
  ExtAuthzClient,
  applyOkResponse,
  deniedHeaders,
  envoyCheckRequest,
  envoyHttpStatusCodes,
  headerLines,
  type CheckResponse,
  type EnvoyRequest,
} from '../helpers/ext-authz-grpc.js';
import { NOW, createWorld, signed, signedJson, type World } from '../helpers/fixture.js';

// The gRPC ext_authz point (Envoy's envoy.filters.http.ext_authz with grpc_service, Istio's CUSTOM
// action) over loopback with the vendored official protos, CheckRequests shaped like Envoy's. The
// same adapter also serves forward-auth over HTTP for Envoy (forwardAuthGateway envoy), so that the
// body rules can be compared on one kernel.

const ROOT = path.resolve(import.meta.dirname, '../..');
const SUBJECT = 'service:orders-client';

/** A replay store whose readiness the test switches. */
class SwitchableReplayStore implements ReplayStore {
  readonly #inner = new MemoryReplayStore();
  state: ComponentHealth = HEALTHY;
  consume(key: string, expiresAt: number, now: number): Promise<boolean> {
    return this.#inner.consume(key, expiresAt, now);
  }
  async health(): Promise<ComponentHealth> {
    return this.state;
  }
}

let world: World;
/** forward-auth (Envoy HTTP) on `base`, ext_authz gRPC beside it. */
let both: TestAdapter;
let client: ExtAuthzClient;
/** mode ext-authz-grpc alone, with a switchable replay store. */
let solo: Adapter;
let soloStore: SwitchableReplayStore;
let soloClient: ExtAuthzClient;
let soloAudit: MemoryAuditSink;

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
            subject_exact: SUBJECT,
          },
        ],
      });
    },
  });
  both = await startTestAdapter(world, {
    mode: 'forward-auth',
    forwardAuthGateway: 'envoy',
    extAuthzGrpcListen: '127.0.0.1:0',
  });
  client = new ExtAuthzClient(`127.0.0.1:${both.adapter.extAuthzGrpcAddress!.port}`);

  const files = writeWorld(world);
  soloStore = new SwitchableReplayStore();
  soloAudit = new MemoryAuditSink();
  solo = await startAdapter(
    resolveAdapterConfig({
      flags: {
        mode: 'ext-authz-grpc',
        extAuthzGrpcListen: '127.0.0.1:0',
        adminListen: '127.0.0.1:0',
        trustMaterial: files.trustMaterial,
        policyBundle: files.policyBundle,
        trustMaterialPublicKeys: [files.signerKey],
        policyBundlePublicKeys: [files.signerKey],
        reloadIntervalMs: 0,
        shutdownTimeoutMs: 2_000,
      },
    }),
    { clock: () => NOW, audit: soloAudit, replayStore: soloStore, log: createLogger('silent') },
  );
  soloClient = new ExtAuthzClient(`127.0.0.1:${solo.address.port}`);
}, 60_000);

afterAll(async () => {
  client?.close();
  soloClient?.close();
  await both?.adapter.close();
  await solo?.close();
});

/** The header lines a signed request carries, plus content-length for a body (as on the wire). */
function lines(s: { headers: Readonly<Record<string, string>> }, body?: string): [string, string][] {
  const out = Object.entries(s.headers) as [string, string][];
  if (body !== undefined) out.push(['content-length', String(Buffer.byteLength(body))]);
  return out;
}

function okHeaders(res: CheckResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of res.ok_response?.headers ?? []) out[h.header.key] = h.header.value;
  return out;
}

/** Reason, HTTP status and gRPC code of a deny (or `ok`). */
function verdict(res: CheckResponse): [string, number, number] {
  if (res.http_response === 'ok_response') return ['ok', 200, res.status?.code ?? 0];
  const h = deniedHeaders(res);
  return [h['x-trustplane-reason'] ?? '?', res.denied_response!.status.code, res.status!.code];
}

/** What forward-auth over HTTP (Envoy's HTTP service) answers for the same request. */
async function forwardAuth(req: EnvoyRequest): Promise<RawResponse> {
  const headers: Record<string, string> = { host: 'orders.example', 'x-forwarded-proto': 'https' };
  for (const [k, v] of req.headers) headers[k] = v;
  if (req.body !== undefined) headers['x-envoy-auth-partial-body'] = req.partial ? 'true' : 'false';
  return rawSend(both.base, {
    method: req.method,
    target: req.target,
    headers,
    ...(req.body !== undefined ? { body: req.body } : {}),
  });
}

describe('ext_authz gRPC: bodies', () => {
  it('a bound POST body is allowed: OkHttpResponse sets the identity and Body-Verified true', async () => {
    const body = '{"sku":"A-1","qty":2}';
    const s = await signedJson(world, body);
    const res = await client.check(
      envoyCheckRequest({ method: 'POST', target: '/v1/orders', headers: lines(s, body), body }),
    );
    expect(res.status?.code).toBe(0);
    expect(res.http_response).toBe('ok_response');
    expect(okHeaders(res)).toMatchObject({
      'x-trustplane-subject': SUBJECT,
      'x-trustplane-route-id': 'orders.create',
      'x-trustplane-body-verified': 'true',
    });
    expect(both.audit.events.at(-1)).toMatchObject({
      component: 'forward-auth',
      decision: 'allow',
      route_id: 'orders.create',
      method: 'POST',
      path: '/v1/orders',
      request_id: 'envoy-6b0d3c1e-0000-4000-8000-000000000001',
      client_address: '10.0.0.7',
    });
  });

  it('attack: tampered body: denied 401 request_binding_mismatch (kernel body and X-TrustPlane-Reason, UNAUTHENTICATED)', async () => {
    const body = '{"sku":"A-1","qty":2}';
    const s = await signedJson(world, body);
    const tampered = '{"sku":"A-1","qty":9}';
    const res = await client.check(
      envoyCheckRequest({
        method: 'POST',
        target: '/v1/orders',
        headers: lines(s, tampered),
        body: tampered,
      }),
    );
    expect(res.http_response).toBe('denied_response');
    expect(res.status?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(res.denied_response!.status.code).toBe(401);
    expect(res.denied_response!.body).toBe('{"allowed":false,"reason":"request_binding_mismatch"}');
    expect(deniedHeaders(res)).toMatchObject({
      'x-trustplane-reason': 'request_binding_mismatch',
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'www-authenticate': 'Bearer realm="trustplane", error="invalid_token"',
    });
  });

  it('a UTF-8 body packed as the `body` string (pack_as_bytes: false) is bound too', async () => {
    const body = '{"sku":"Ä-1","qty":2}';
    const s = await signedJson(world, body);
    const res = await client.check(
      envoyCheckRequest({
        method: 'POST',
        target: '/v1/orders',
        headers: lines(s, body),
        body,
        bodyAsString: true,
      }),
    );
    expect(verdict(res)).toEqual(['ok', 200, 0]);
    expect(okHeaders(res)['x-trustplane-body-verified']).toBe('true');
  });

  it('attack: a partial body (x-envoy-auth-partial-body: true) is never taken for the whole body, as in forward-auth', async () => {
    const body = '{"sku":"A-1","qty":2}';
    const cut = body.slice(0, 8);
    const req = async (): Promise<EnvoyRequest> => {
      const s = await signedJson(world, body);
      return { method: 'POST', target: '/v1/orders', headers: lines(s, body), body: cut, partial: true };
    };
    const res = await client.check(envoyCheckRequest(await req()));
    expect(verdict(res)).toEqual(['unverifiable_body', 403, grpc.status.PERMISSION_DENIED]);
    const http = await forwardAuth(await req());
    expect([http.headers['x-trustplane-reason'], http.status]).toEqual(['unverifiable_body', 403]);
  });

  it('an absent body (declared, not passed: no with_request_body) is unverifiable, as in forward-auth', async () => {
    const body = '{"sku":"A-1","qty":2}';
    const s1 = await signedJson(world, body);
    const res = await client.check(
      envoyCheckRequest({ method: 'POST', target: '/v1/orders', headers: lines(s1, body) }),
    );
    expect(verdict(res)).toEqual(['unverifiable_body', 403, grpc.status.PERMISSION_DENIED]);
    const s2 = await signedJson(world, body);
    const http = await rawSend(both.base, {
      method: 'POST',
      target: '/v1/orders',
      headers: { ...s2.headers, host: 'orders.example', 'content-length': '0' },
    });
    // Forward-auth over HTTP: the same request whose body Envoy did not pass (no partial header).
    expect([http.headers['x-trustplane-reason'], http.status]).toEqual(['unverifiable_body', 403]);
  });

  it('an absent body on a route with allow_unverified_body is allowed and marked Body-Verified false', async () => {
    const body = 'free text note';
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders/o1/notes',
      routeId: 'orders.notes',
      body,
      headers: { 'content-type': 'text/plain' },
    });
    const res = await client.check(
      envoyCheckRequest({ method: 'POST', target: '/v1/orders/o1/notes', headers: lines(s, body) }),
    );
    expect(verdict(res)).toEqual(['ok', 200, 0]);
    expect(okHeaders(res)).toMatchObject({
      'x-trustplane-route-id': 'orders.notes',
      'x-trustplane-body-verified': 'false',
    });
  });

  it('a GET without a body: allowed; nothing says there is none, so Body-Verified false (as forward-auth)', async () => {
    const s = await signed(world, {});
    const res = await client.check(
      envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers: lines(s) }),
    );
    expect(verdict(res)).toEqual(['ok', 200, 0]);
    expect(okHeaders(res)['x-trustplane-body-verified']).toBe('false');
    const s2 = await signed(world, {});
    const http = await forwardAuth({ method: 'GET', target: '/v1/orders/search', headers: lines(s2) });
    expect([http.status, http.headers['x-trustplane-body-verified']]).toEqual([200, 'false']);
  });

  it('a body over maxBodyBytes: 413 body_too_large', async () => {
    const body = 'x'.repeat(1024 * 1024 + 1);
    const res = await client.check(
      envoyCheckRequest({
        method: 'POST',
        target: '/v1/orders',
        headers: [['content-type', 'text/plain']],
        body,
      }),
    );
    expect(verdict(res)).toEqual(['body_too_large', 413, grpc.status.PERMISSION_DENIED]);
  });
});

describe('ext_authz gRPC: identity headers', () => {
  it('attack: spoofed X-TrustPlane-Subject: the allow overwrites every copy; the upstream sees only the verified identity', async () => {
    const s = await signed(world, {});
    const sent: [string, string][] = [
      ...lines(s),
      ['x-trustplane-subject', 'service:admin'],
      ['x-trustplane-route-id', 'orders.refund'],
    ];
    const res = await client.check(
      envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers: sent, rawHeaders: true }),
    );
    expect(verdict(res)).toEqual(['ok', 200, 0]);
    for (const h of res.ok_response!.headers) {
      // Overwrite, never append: the deprecated append=false (older Envoy) and the action (newer).
      expect(h.append?.value, h.header.key).toBe(false);
      expect(h.append_action, h.header.key).toBe(2); // OVERWRITE_IF_EXISTS_OR_ADD
    }
    // Envoy removes headers_to_remove AFTER setting `headers`: no set header may be listed there.
    const set = res.ok_response!.headers.map((h) => h.header.key);
    expect(res.ok_response!.headers_to_remove.filter((n) => set.includes(n))).toEqual([]);
    const upstream = applyOkResponse(headerLines(sent), res.ok_response!);
    expect(upstream.get('x-trustplane-subject')).toEqual([SUBJECT]);
    expect(upstream.get('x-trustplane-route-id')).toEqual(['orders.search']);
    for (const name of IDENTITY_HEADERS) expect(upstream.get(name), name).toHaveLength(1);
    // The passport is consumed here: the upstream gets identity headers, not the credential.
    expect(res.ok_response!.headers_to_remove).toContain('authorization');
    expect(upstream.has('authorization')).toBe(false);
  });

  it('the proof material and any other caller-sent X-TrustPlane-* header never reach the upstream (as in proxy mode)', async () => {
    const s = await signed(world, {});
    const sent: [string, string][] = [...lines(s), ['x-trustplane-made-up', 'x']];
    const res = await client.check(
      envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers: sent, rawHeaders: true }),
    );
    expect(verdict(res)).toEqual(['ok', 200, 0]);
    const upstream = applyOkResponse(headerLines(sent), res.ok_response!);
    const leftover = [...upstream.keys()].filter(
      (n) =>
        n.startsWith('x-trustplane-') &&
        !(IDENTITY_HEADERS as readonly string[]).includes(n) &&
        n !== 'x-trustplane-body-verified',
    );
    // Before: the proof, nonce and every other caller-sent X-TrustPlane-* header went through.
    expect(leftover).toEqual([]);
    expect(sent.some(([n]) => n === 'x-trustplane-proof' || n === 'x-trustplane-nonce')).toBe(true);
  });

  it('attack: spoofed identity on a dry-run pass: headers_to_remove lists every identity header, none is set', async () => {
    const s = await signed(world, { target: '/v1/dry/orders', routeId: 'orders.dryrun' });
    const sent: [string, string][] = [
      ...lines(s).filter(([k]) => k !== 'authorization'),
      ['x-trustplane-subject', 'service:admin'],
    ];
    const res = await client.check(
      envoyCheckRequest({ method: 'GET', target: '/v1/dry/orders', headers: sent }),
    );
    expect(verdict(res)).toEqual(['ok', 200, 0]);
    expect(okHeaders(res)).toEqual({});
    expect(res.ok_response!.headers_to_remove).toEqual(
      expect.arrayContaining([...IDENTITY_HEADERS, 'x-trustplane-body-verified']),
    );
    const upstream = applyOkResponse(headerLines(sent), res.ok_response!);
    expect(
      [...upstream.keys()].filter(
        (k) => k.startsWith('x-trustplane-') && IDENTITY_HEADERS.includes(k as never),
      ),
    ).toEqual([]);
    expect(both.audit.events.at(-1)).toMatchObject({
      decision: 'deny',
      reason: 'missing_passport',
      enforcement: 'dry-run',
    });
  });
});

describe('ext_authz gRPC: request headers', () => {
  it('attack: large headers are refused 431 request_headers_too_large (bytes and count), before any credential', async () => {
    const s = await signed(world, {});
    const big = await client.check(
      envoyCheckRequest({
        method: 'GET',
        target: '/v1/orders/search',
        headers: [...lines(s), ['x-padding', 'p'.repeat(70 * 1024)]],
      }),
    );
    expect(verdict(big)).toEqual(['request_headers_too_large', 431, grpc.status.PERMISSION_DENIED]);
    expect(big.denied_response!.body).toBe('{"allowed":false,"reason":"request_headers_too_large"}');
    const many = await client.check(
      envoyCheckRequest({
        method: 'GET',
        target: '/v1/orders/search',
        headers: [
          ...lines(s),
          ...Array.from({ length: 300 }, (_, i) => [`x-h${i}`, 'v'] as [string, string]),
        ],
        rawHeaders: true,
      }),
    );
    expect(verdict(many)).toEqual(['request_headers_too_large', 431, grpc.status.PERMISSION_DENIED]);
    expect(both.audit.events.at(-1)).toMatchObject({ decision: 'deny', reason: 'request_headers_too_large' });
  });

  it('attack: a repeated Authorization: header_map lines are refused 400 malformed_request; a merged map is one malformed passport', async () => {
    const s = await signed(world, {});
    const auth = lines(s).find(([k]) => k === 'authorization')!;
    const raw = await client.check(
      envoyCheckRequest({
        method: 'GET',
        target: '/v1/orders/search',
        headers: [...lines(s), auth],
        rawHeaders: true,
      }),
    );
    expect(verdict(raw)).toEqual(['malformed_request', 400, grpc.status.PERMISSION_DENIED]);
    const s2 = await signed(world, {});
    const auth2 = lines(s2).find(([k]) => k === 'authorization')!;
    const merged = await client.check(
      envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers: [...lines(s2), auth2] }),
    );
    expect(verdict(merged)).toEqual(['malformed_passport', 401, grpc.status.UNAUTHENTICATED]);
  });

  it('a CheckRequest without attributes.request.http is denied 400 malformed_request, never allowed', async () => {
    const res = await client.check({ attributes: { source: {} } });
    expect(verdict(res)).toEqual(['malformed_request', 400, grpc.status.PERMISSION_DENIED]);
  });

  it('attack: a Host other than the signed origin is refused request_binding_mismatch (bindHost)', async () => {
    const s = await signed(world, {});
    const res = await client.check(
      envoyCheckRequest({
        method: 'GET',
        target: '/v1/orders/search',
        headers: lines(s),
        authority: 'evil.example',
      }),
    );
    expect(verdict(res)[0]).toBe('request_binding_mismatch');
  });

  it('every status a reason answers at an enforcement point is one of Envoy HttpStatus codes (passed through)', () => {
    const codes = envoyHttpStatusCodes();
    const layers = new Set(['request', 'passport', 'policy', 'proof', 'replay', 'dependency', 'bundle']);
    const missing = Object.entries(REASON_CODES)
      .filter(([, info]) => layers.has(info.layer) && !codes.has(info.status))
      .map(([code, info]) => `${code}:${info.status}`);
    expect(missing).toEqual([]);
  });
});

describe('ext_authz gRPC: mode ext-authz-grpc, health and shutdown', () => {
  it('serves Check alone (no HTTP listener) through the kernel, with metrics', async () => {
    const s = await signed(world, {});
    const res = await soloClient.check(
      envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers: lines(s) }),
    );
    expect(verdict(res)).toEqual(['ok', 200, 0]);
    const replay = await soloClient.check(
      envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers: lines(s) }),
    );
    expect(verdict(replay)).toEqual(['jti_replay', 401, grpc.status.UNAUTHENTICATED]);
    expect(soloAudit.events.map((e) => e.reason ?? e.decision)).toEqual(['allow', 'jti_replay']);
    const text = await solo.metrics.registry.metrics();
    expect(text).toMatch(/trustplane_decisions_total\{[^}]*outcome="deny"[^}]*reason="jti_replay"[^}]*\} 1/);
  });

  it('grpc.health.v1.Health: SERVING when ready, NOT_SERVING while a component is not, NOT_FOUND for another service', async () => {
    expect(await soloClient.health()).toBe('SERVING');
    expect(await soloClient.health('envoy.service.auth.v3.Authorization')).toBe('SERVING');
    soloStore.state = unhealthy('unavailable');
    expect(await soloClient.health()).toBe('NOT_SERVING');
    expect((await solo.ready()).ready).toBe(false);
    soloStore.state = HEALTHY;
    expect(await soloClient.health()).toBe('SERVING');
    await expect(soloClient.health('some.other.Service')).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
  });

  it('graceful shutdown: the listener stops; a later call fails (Envoy: failure_mode_allow false denies)', async () => {
    const files = writeWorld(world);
    const a = await startAdapter(
      resolveAdapterConfig({
        flags: {
          mode: 'ext-authz-grpc',
          extAuthzGrpcListen: '127.0.0.1:0',
          adminListen: '127.0.0.1:0',
          trustMaterial: files.trustMaterial,
          policyBundle: files.policyBundle,
          trustMaterialPublicKeys: [files.signerKey],
          policyBundlePublicKeys: [files.signerKey],
          replayJournal: path.join(files.dir, 'replay.journal'),
          reloadIntervalMs: 0,
          shutdownTimeoutMs: 2_000,
        },
      }),
      { clock: () => NOW, audit: new MemoryAuditSink(), log: createLogger('silent') },
    );
    const c = new ExtAuthzClient(`127.0.0.1:${a.address.port}`);
    expect(await c.health()).toBe('SERVING');
    const started = Date.now();
    await a.close();
    expect(Date.now() - started).toBeLessThan(10_000);
    await expect(c.health()).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    c.close();
  });
});

/** A replay store whose consume waits `delayMs` (a check that stays in flight). */
class SlowReplayStore implements ReplayStore {
  readonly #inner = new MemoryReplayStore();
  constructor(readonly delayMs: number) {}
  async consume(key: string, expiresAt: number, now: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, this.delayMs));
    return this.#inner.consume(key, expiresAt, now);
  }
}

describe('ext_authz gRPC: failures are denies', () => {
  it('a check in flight when SIGTERM arrives is answered (allowed here), and the listener then stops', async () => {
    const files = writeWorld(world);
    const audit = new MemoryAuditSink();
    const a = await startAdapter(
      resolveAdapterConfig({
        flags: {
          mode: 'ext-authz-grpc',
          extAuthzGrpcListen: '127.0.0.1:0',
          adminListen: '127.0.0.1:0',
          trustMaterial: files.trustMaterial,
          policyBundle: files.policyBundle,
          trustMaterialPublicKeys: [files.signerKey],
          policyBundlePublicKeys: [files.signerKey],
          reloadIntervalMs: 0,
          shutdownTimeoutMs: 5_000,
        },
      }),
      { clock: () => NOW, audit, replayStore: new SlowReplayStore(400), log: createLogger('silent') },
    );
    const c = new ExtAuthzClient(`127.0.0.1:${a.address.port}`);
    const s = await signed(world, {});
    const inFlight = c.check(
      envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers: lines(s) }),
    );
    // The call is being decided (the jti consume takes 400 ms) when the drain starts.
    await new Promise((r) => setTimeout(r, 150));
    const closed = a.close();
    expect(verdict(await inFlight)).toEqual(['ok', 200, 0]);
    await closed;
    expect(audit.events.map((e) => e.decision)).toEqual(['allow']);
    await expect(c.health()).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    c.close();
  });

  it('an unexpected failure while deciding is a DeniedHttpResponse 500 internal_error, never an RPC error', async () => {
    const errors: string[] = [];
    const rt = {
      config: { forwardAuthorization: false },
      kernel: {
        maxBodyBytes: 1024,
        enforce: () => Promise.reject(new Error('kernel exploded')),
      },
      log: { error: (msg: string) => errors.push(msg) },
    } as unknown as EnforcementRuntime;
    const res = await checkExtAuthzRequest(
      rt,
      envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers: [] }),
    );
    expect(res.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(res.ok_response).toBeUndefined();
    expect(res.denied_response?.status.code).toBe(500);
    expect(res.denied_response?.body).toBe('{"allowed":false,"reason":"internal_error"}');
    expect(errors).toEqual(['ext_authz check failed']);
  });
});

describe('ext_authz gRPC: loading', () => {
  it('the optional peers are loaded through requireOptional (dependency_missing naming the package when absent)', () => {
    const source = readFileSync(path.join(ROOT, 'pkg/adapter/ext-authz-grpc.ts'), 'utf8');
    const loaded = [...source.matchAll(/requireOptional<[^>]+>\('([^']+)', FEATURE\)/g)].map((m) => m[1]);
    expect(loaded).toEqual(['@grpc/grpc-js', '@grpc/proto-loader']);
    expect(source).toContain("const FEATURE = 'the Envoy ext_authz gRPC listener';");
  });

  it('@grpc/grpc-js and @grpc/proto-loader are imported on first use only (types and dynamic import())', () => {
    const dir = path.join(ROOT, 'pkg/adapter');
    for (const file of ['ext-authz-grpc.ts', 'server.ts', 'index.ts']) {
      const source = ts.createSourceFile(
        file,
        readFileSync(path.join(dir, file), 'utf8'),
        ts.ScriptTarget.ES2022,
      );
      const runtime = source.statements
        .filter(ts.isImportDeclaration)
        .filter((d) => !(d.importClause?.isTypeOnly ?? false))
        .map((d) => (d.moduleSpecifier as ts.StringLiteral).text)
        .filter((m) => m.startsWith('@grpc/'));
      expect(runtime, file).toEqual([]);
    }
  });
});
