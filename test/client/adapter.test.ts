import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generateSigningKey,
  issuePassport,
  type KeyBinding,
  type SigningKey,
} from '../../pkg/authcore/index.js';
import {
  brokerIpcRequestSchema,
  brokerIpcResponseSchema,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
} from '../../pkg/proof/broker-ipc-v1.js';
import {
  BrokerDeniedError,
  BrokerResponseError,
  ProtectedClient,
  brokerPassports,
  describeRequestForBroker,
  prepareRequest,
  selfIssuedPassports,
  type BrokerPassportsOptions,
  type PassportSource,
  type ProtectedClientOptions,
} from '../../pkg/client/index.js';
import { signProof, transcriptFromDigests } from '../../pkg/proof/index.js';
import {
  BROKER_ISSUER,
  NOW,
  SOFTWARE_ISSUER,
  TRUST_DOMAIN,
  createWorld,
  type World,
} from '../helpers/fixture.js';
import { startTestAdapter, startUpstream, type TestAdapter, type Upstream } from '../helpers/adapter.js';

const WORKLOAD = 'spiffe://example.local/ns/orders/sa/worker';

let world: World;
let upstream: Upstream;
let tp: TestAdapter;

beforeAll(async () => {
  world = await createWorld({
    // Without an API base_url the verifier binds the transcript to the origin the caller
    // addressed (here the loopback adapter), exactly what the client signs.
    policyPatch: (doc) => {
      for (const api of doc.apis as Record<string, unknown>[]) delete api.base_url;
    },
  });
  upstream = await startUpstream();
  tp = await startTestAdapter(world, { upstream: upstream.url });
});

afterAll(async () => {
  await tp.adapter.close();
  await upstream.close();
});

interface Sent {
  url: string;
  init: RequestInit;
}

/** A real fetch that records what it sent (to replay it, or to count calls). */
function recordingFetch() {
  const sent: Sent[] = [];
  const f = ((url: RequestInfo | URL, init?: RequestInit) => {
    sent.push({ url: String(url), init: init ?? {} });
    return fetch(url, init);
  }) as typeof fetch;
  return { sent, fetch: f };
}

function selfIssued(key: SigningKey = world.caller): PassportSource {
  return selfIssuedPassports({
    issuer: SOFTWARE_ISSUER,
    subject: 'service:orders-client',
    trustDomain: TRUST_DOMAIN,
    signingKey: key,
    kid: 'caller-1',
    clock: () => NOW,
  });
}

function makeClient(passports: PassportSource, options: Partial<ProtectedClientOptions> = {}) {
  const rec = recordingFetch();
  const client = new ProtectedClient({
    baseUrl: tp.base,
    audience: 'orders-api',
    passports,
    fetch: rec.fetch,
    ...options,
  });
  return { client, sent: rec.sent };
}

async function denyOf(res: Response) {
  return { status: res.status, body: (await res.json()) as unknown };
}

describe('self-issued passports through a real adapter', () => {
  it('a GET is allowed and reaches the upstream with the caller identity', async () => {
    const { client, sent } = makeClient(selfIssued());
    const before = upstream.requests.length;
    const res = await client.request({
      method: 'GET',
      path: '/v1/orders/search',
      routeId: 'orders.search',
      query: 'q=a&limit=2',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ subject: 'service:orders-client', bytes: 0 });
    expect(upstream.requests).toHaveLength(before + 1);
    const seen = upstream.requests.at(-1)!;
    expect(seen.url).toBe('/v1/orders/search?limit=2&q=a'); // the canonical query
    expect(seen.headers).toMatchObject({
      'x-trustplane-subject': 'service:orders-client',
      'x-trustplane-issuer': SOFTWARE_ISSUER,
      'x-trustplane-trust-domain': TRUST_DOMAIN,
      'x-trustplane-key-binding': 'software',
      'x-trustplane-route-id': 'orders.search',
    });
    expect(seen.headers.authorization).toBeUndefined();
    expect(sent).toHaveLength(1);
  });

  it('a base URL with a path prefix, and the fetch convenience', async () => {
    const { client } = makeClient(selfIssued(), { baseUrl: `${tp.base}/v1` });
    const res = await client.fetch('/orders/ord_1', { routeId: 'orders.get' });
    expect(res.status).toBe(200);
    expect(upstream.requests.at(-1)!.url).toBe('/v1/orders/ord_1');
    expect(upstream.requests.at(-1)!.headers['x-trustplane-route-id']).toBe('orders.get');
  });

  it('a POST body arrives as the exact bytes that were hashed', async () => {
    const { client } = makeClient(selfIssued());
    const body = '{"order_id":"ord_123","note":"caf\u00e9 \u2603"}';
    const res = await client.request({
      method: 'POST',
      path: '/v1/orders',
      routeId: 'orders.create',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(200);
    const seen = upstream.requests.at(-1)!;
    expect(seen.body.equals(Buffer.from(body, 'utf8'))).toBe(true);
    expect(seen.headers['content-type']).toBe('application/json');
  });

  it('a route that covers a header: allowed when the client covers it, denied when it does not', async () => {
    const covering = makeClient(selfIssued(), { coveredHeaders: ['x-tenant-id'] }).client;
    const ok = await covering.fetch('/v1/tenants/t1/orders', {
      routeId: 'orders.tenant',
      headers: { 'X-Tenant-Id': 't1' },
    });
    expect(ok.status).toBe(200);
    expect(upstream.requests.at(-1)!.headers['x-tenant-id']).toBe('t1');
    const before = upstream.requests.length;
    const bare = makeClient(selfIssued()).client;
    const denied = await bare.fetch('/v1/tenants/t1/orders', {
      routeId: 'orders.tenant',
      headers: { 'X-Tenant-Id': 't1' },
    });
    expect(await denyOf(denied)).toEqual({
      status: 401,
      body: { allowed: false, reason: 'insufficient_covered_headers' },
    });
    expect(upstream.requests).toHaveLength(before);
  });

  it('two requests carry two different passports (jti) and nonces', async () => {
    const { client, sent } = makeClient(selfIssued());
    const before = upstream.requests.length;
    for (let i = 0; i < 2; i++) {
      expect((await client.fetch('/v1/orders/search', { routeId: 'orders.search' })).status).toBe(200);
    }
    const jtis = upstream.requests.slice(before).map((r) => r.headers['x-trustplane-jti']);
    expect(jtis).toHaveLength(2);
    expect(jtis[0]).toEqual(expect.any(String));
    expect(jtis[0]).not.toBe(jtis[1]);
    const nonces = sent.map((s) => (s.init.headers as Headers).get('x-trustplane-nonce'));
    expect(nonces[0]).toEqual(expect.any(String));
    expect(nonces[0]).not.toBe(nonces[1]);
  });

  it('attack: replay: a captured request sent again is denied jti_replay', async () => {
    const { client, sent } = makeClient(selfIssued());
    const first = await client.request({
      method: 'POST',
      path: '/v1/orders',
      routeId: 'orders.create',
      headers: { 'content-type': 'application/json' },
      body: '{"amount":"1.00"}',
    });
    expect(first.status).toBe(200);
    const before = upstream.requests.length;
    const captured = sent[0]!;
    const replay = await fetch(captured.url, captured.init);
    expect(await denyOf(replay)).toEqual({ status: 401, body: { allowed: false, reason: 'jti_replay' } });
    expect(upstream.requests).toHaveLength(before);
  });

  it('a passport signed by a key the trust material does not list is denied', async () => {
    const { client } = makeClient(selfIssued(await generateSigningKey()));
    const before = upstream.requests.length;
    const res = await client.fetch('/v1/orders/search', { routeId: 'orders.search' });
    expect(await denyOf(res)).toEqual({
      status: 401,
      body: { allowed: false, reason: 'invalid_passport_signature' },
    });
    expect(upstream.requests).toHaveLength(before);
  });
});

interface FakeBrokerOptions {
  /** Rewrite the allow response (tampering tests); may return anything. */
  mutate?: (response: BrokerIpcResponse, request: BrokerIpcRequest) => unknown;
  /** Answer with this deny instead. */
  deny?: { reason: string; retryable: boolean; details?: Record<string, string> };
  /** Mint this key binding instead of the requested one. */
  keyBinding?: KeyBinding;
}

/**
 * A fake in-memory broker: mints a broker passport (the world's broker key, a fresh request key as
 * `cnf`) and stamps transcript-v1 rebuilt from the request's `http` digests, as a real broker does.
 */
function fakeBroker(options: FakeBrokerOptions = {}) {
  const requests: BrokerIpcRequest[] = [];
  return {
    requests,
    async issue(request: BrokerIpcRequest): Promise<BrokerIpcResponse> {
      requests.push(structuredClone(request));
      if (options.deny) {
        return {
          request_id: request.request_id,
          accepted: false,
          status: 'deny',
          reason_code: options.deny.reason,
          issued_at: 0,
          expires_at: 0,
          artifacts: null,
          error: {
            code: options.deny.reason,
            message: 'requested key binding cannot be satisfied by the local broker',
            retryable: options.deny.retryable,
            ...(options.deny.details ? { details: options.deny.details } : {}),
          },
        };
      }
      const http = request.http;
      const requestKey = await generateSigningKey();
      const jti = `broker-${crypto.randomUUID()}`;
      const keyBinding = options.keyBinding ?? request.key_binding.requested_key_binding;
      const passport = await issuePassport(
        {
          iss: BROKER_ISSUER,
          sub: WORKLOAD,
          aud: http.audience,
          iat: NOW,
          exp: NOW + 60,
          jti,
          trust_domain: TRUST_DOMAIN,
          cnf: { kid: 'request-key', key_binding: keyBinding, public_key_b64url: requestKey.publicKey.x },
          ...(request.ctx ? { ctx: request.ctx.values } : {}),
          provenance: {
            profile: 'trustplane-spiffe-spire-k8s-v1',
            posture: 'spiffe_svid_verified',
            spiffe_id: WORKLOAD,
          },
        },
        world.broker,
        { kid: 'broker-1' },
      );
      const transcript = transcriptFromDigests({
        method: http.method,
        scheme: http.scheme,
        authority: http.authority,
        path: http.path,
        audience: http.audience,
        routeId: http.route_id,
        contentEncoding: http.content_encoding,
        normalizedQuery: http.query.normalized,
        querySha256: http.query.sha256,
        allowList: http.headers.allow_list,
        selected: http.headers.selected.map((h) => ({ name: h.name, valueSha256: h.value_sha256 })),
        bodySha256: http.body_sha256,
        passportJti: jti,
        nonce: http.nonce,
        issuedAt: NOW,
        keyBinding,
      });
      const response: BrokerIpcResponse = {
        request_id: request.request_id,
        accepted: true,
        status: 'allow',
        reason_code: 'broker_passport_issued',
        issued_at: NOW,
        expires_at: NOW + 60,
        artifacts: {
          passport: { format: 'passport-v1-compact-jws', value: passport, jti },
          stamp: {
            format: 'transcript-v1-ed25519-proof',
            value: await signProof(transcript.digest, requestKey),
            transcript_sha256: transcript.sha256,
          },
        },
        error: null,
      };
      return (options.mutate?.(response, request) ?? response) as BrokerIpcResponse;
    },
  };
}

const REFUND = {
  method: 'POST',
  path: '/v1/orders/ord_1/refund',
  routeId: 'orders.refund',
  headers: { 'content-type': 'application/json' },
  body: '{"amount":"100.00"}',
} as const;

function brokerSource(broker: ReturnType<typeof fakeBroker>, extra: Partial<BrokerPassportsOptions> = {}) {
  return brokerPassports({
    broker,
    keyBinding: { requested: 'attested_workload', acceptable: ['attested_workload'] },
    ctx: { purpose: 'refund', max_txn_value: '100.00', actor_type: 'service' },
    ...extra,
  });
}

describe('broker passports through a real adapter', () => {
  it('a broker-minted passport and stamp are allowed with the workload identity', async () => {
    const broker = fakeBroker();
    const { client, sent } = makeClient(brokerSource(broker));
    const res = await client.request({ ...REFUND, query: 'currency=USD&expand=items' });
    expect(res.status).toBe(200);
    const seen = upstream.requests.at(-1)!;
    expect(seen.url).toBe('/v1/orders/ord_1/refund?currency=USD&expand=items');
    expect(seen.headers).toMatchObject({
      'x-trustplane-subject': WORKLOAD,
      'x-trustplane-issuer': BROKER_ISSUER,
      'x-trustplane-key-binding': 'attested_workload',
      'x-trustplane-route-id': 'orders.refund',
    });
    expect(seen.body.toString()).toBe(REFUND.body);

    // The broker saw a valid broker-ipc-v1 request describing exactly what was sent.
    expect(broker.requests).toHaveLength(1);
    const ipc = broker.requests[0]!;
    expect(brokerIpcRequestSchema.safeParse(ipc).success).toBe(true);
    const h = sent[0]!.init.headers as Headers;
    expect(ipc.http).toMatchObject({
      method: 'POST',
      scheme: 'http',
      authority: new URL(tp.base).host,
      path: '/v1/orders/ord_1/refund',
      route_id: 'orders.refund',
      audience: 'orders-api',
      nonce: h.get('x-trustplane-nonce'),
      body_sha256: h.get('x-trustplane-body-sha256'),
      query: { raw: 'currency=USD&expand=items', normalized: 'currency=USD&expand=items' },
      headers: { allow_list: ['content-type', 'x-trustplane-nonce'] },
    });
    expect(ipc.key_binding).toEqual({
      intent: 'route_policy_minimum',
      requested_key_binding: 'attested_workload',
      acceptable_key_bindings: ['attested_workload'],
      allow_software_fallback: false,
    });
    expect(ipc.ctx).toEqual({
      selected_fields: ['actor_type', 'purpose', 'max_txn_value'],
      values: { purpose: 'refund', max_txn_value: '100.00', actor_type: 'service' },
    });
    // Header values and the body never reach the broker, only their digests.
    expect(JSON.stringify(ipc)).not.toContain('application/json');
    expect(JSON.stringify(ipc)).not.toContain('amount');
  });

  it('every request asks the broker again with a fresh request_id and nonce', async () => {
    const broker = fakeBroker();
    const { client } = makeClient(brokerSource(broker));
    expect((await client.request(REFUND)).status).toBe(200);
    expect((await client.request(REFUND)).status).toBe(200);
    const [a, b] = broker.requests;
    expect(a!.request_id).not.toBe(b!.request_id);
    expect(a!.http.nonce).not.toBe(b!.http.nonce);
  });

  it('a context over the route limit is minted but denied by the adapter', async () => {
    const broker = fakeBroker();
    const { client } = makeClient(
      brokerSource(broker, { ctx: { purpose: 'refund', max_txn_value: '900.00' } }),
    );
    const before = upstream.requests.length;
    expect(await denyOf(await client.request(REFUND))).toEqual({
      status: 403,
      body: { allowed: false, reason: 'context_policy_mismatch' },
    });
    expect(upstream.requests).toHaveLength(before);
  });
});

describe('attack: a broker response not bound to the request is refused client-side', () => {
  const cases: [string, FakeBrokerOptions, string, string][] = [
    [
      'a transcript_sha256 that does not match',
      {
        mutate: (r) => {
          if (r.accepted) r.artifacts.stamp.transcript_sha256 = '0'.repeat(64);
        },
      },
      'transcript',
      'request_binding_mismatch',
    ],
    [
      'a request_id that differs',
      {
        mutate: (r) => {
          r.request_id = 'someone-else';
        },
      },
      'request_id',
      'request_binding_mismatch',
    ],
    [
      'a stamp that does not verify over the transcript',
      {
        mutate: (r) => {
          if (r.accepted) r.artifacts.stamp.value = `${'A'.repeat(85)}A`;
        },
      },
      'stamp',
      'request_binding_mismatch',
    ],
    [
      'a passport jti other than the artifact jti',
      {
        mutate: (r) => {
          if (r.accepted) r.artifacts.passport.jti = 'other-jti';
        },
      },
      'jti',
      'malformed_passport',
    ],
    [
      'a passport that is not a JWS',
      {
        mutate: (r) => {
          if (r.accepted) r.artifacts.passport.value = 'not-a-passport';
        },
      },
      'passport',
      'malformed_passport',
    ],
    [
      'a response outside broker-ipc-v1 (unknown member)',
      { mutate: (r) => ({ ...r, extra: true }) },
      'response_shape',
      'malformed_passport',
    ],
    [
      'a key binding the caller did not accept',
      { keyBinding: 'software' },
      'key_binding',
      'insufficient_key_binding',
    ],
  ];
  for (const [name, options, check, reason] of cases) {
    it(`${name} (zero fetch calls)`, async () => {
      const broker = fakeBroker(options);
      const { client, sent } = makeClient(brokerSource(broker));
      const error = await client.request(REFUND).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(BrokerResponseError);
      expect(error).toMatchObject({ check, reason });
      expect(broker.requests).toHaveLength(1);
      expect(sent).toHaveLength(0);
    });
  }

  it('a stamp over another request (same broker, other nonce) is refused', async () => {
    // The broker answers with artifacts it minted for a different request of the same shape.
    const other = fakeBroker();
    const stale = await prepareRequest({
      method: 'POST',
      url: `${tp.base}${REFUND.path}`,
      audience: 'orders-api',
      routeId: 'orders.refund',
      headers: REFUND.headers,
      body: REFUND.body,
    });
    const foreign = await other.issue({
      request_id: 'r',
      protocol: 'local-json-ipc',
      operation: 'issue_request_bound_passport',
      http: describeRequestForBroker(stale),
      key_binding: {
        intent: 'route_policy_minimum',
        requested_key_binding: 'attested_workload',
        acceptable_key_bindings: ['attested_workload'],
        allow_software_fallback: false,
      },
    });
    const broker = fakeBroker({ mutate: (_r, req) => ({ ...foreign, request_id: req.request_id }) });
    const { client, sent } = makeClient(brokerSource(broker));
    await expect(client.request(REFUND)).rejects.toMatchObject({ check: 'transcript' });
    expect(sent).toHaveLength(0);
  });
});

describe('broker deny', () => {
  it('throws BrokerDeniedError with the reason code, retryable flag and details', async () => {
    const broker = fakeBroker({
      deny: {
        reason: 'insufficient_key_binding',
        retryable: false,
        details: { requested_key_binding: 'attested_workload', available_key_binding: 'hardware_local' },
      },
    });
    const { client, sent } = makeClient(brokerSource(broker));
    const error = await client.request(REFUND).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BrokerDeniedError);
    expect(error).toMatchObject({
      name: 'BrokerDeniedError',
      reasonCode: 'insufficient_key_binding',
      retryable: false,
      details: { requested_key_binding: 'attested_workload', available_key_binding: 'hardware_local' },
      requestId: broker.requests[0]!.request_id,
    });
    expect((error as Error).message).toContain('insufficient_key_binding');
    expect(sent).toHaveLength(0);
  });

  it('a retryable deny says so', async () => {
    const broker = fakeBroker({ deny: { reason: 'workload_identity_unavailable', retryable: true } });
    const { client } = makeClient(brokerSource(broker));
    await expect(client.request(REFUND)).rejects.toMatchObject({
      reasonCode: 'workload_identity_unavailable',
      retryable: true,
      details: {},
    });
  });

  it('brokerPassports refuses bad options eagerly', () => {
    const broker = fakeBroker();
    const make = (keyBinding: unknown, ctx?: unknown) =>
      brokerPassports({ broker, keyBinding, ctx } as BrokerPassportsOptions);
    expect(() => make({ requested: 'nope', acceptable: ['software'] })).toThrow(TypeError);
    expect(() => make({ requested: 'software', acceptable: [] })).toThrow(TypeError);
    expect(() => make({ requested: 'software', acceptable: ['hardware_local'] })).toThrow(TypeError);
    expect(() => make({ requested: 'software', acceptable: ['software', 'software'] })).toThrow(TypeError);
    expect(() => make({ requested: 'software', acceptable: ['software'] }, { secret: 'x' })).toThrow(
      TypeError,
    );
    expect(() =>
      brokerPassports({
        broker: {} as never,
        keyBinding: { requested: 'software', acceptable: ['software'] },
      }),
    ).toThrow(TypeError);
  });
});

describe('describeRequestForBroker', () => {
  const vectors = new URL('../vectors/trustplane-v1/', import.meta.url);
  const read = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, vectors), 'utf8')) as T;

  it('matches the transcript-v1 vector: allow list, selected digests, query and body digests', async () => {
    const v = read<{
      raw_request: { query: string; body_utf8: string; headers: { name: string; value: string }[] };
      transcript: {
        method: string;
        scheme: string;
        authority: string;
        path: string;
        audience: string;
        route_id: string;
        content_encoding: string;
        query_normalization: { algorithm: string; normalized: string; sha256: string };
        headers: { allow_list: string[]; selected: { name: string; value_sha256: string }[] };
        body_sha256: string;
        nonce: string;
      };
    }>('transcript-v1.json');
    const t = v.transcript;
    const headers: Record<string, string> = {};
    let nonce = '';
    for (const h of v.raw_request.headers) {
      if (h.name.toLowerCase() === 'x-trustplane-nonce') nonce = h.value;
      else headers[h.name] = h.value;
    }
    const request = await prepareRequest({
      method: t.method,
      url: `${t.scheme}://${t.authority}${t.path}${v.raw_request.query ? `?${v.raw_request.query}` : ''}`,
      audience: t.audience,
      routeId: t.route_id,
      headers,
      body: v.raw_request.body_utf8,
      nonce,
    });
    const http = describeRequestForBroker(request);
    expect(http).toEqual({
      method: t.method,
      scheme: t.scheme,
      authority: t.authority,
      path: t.path,
      content_encoding: t.content_encoding,
      query: {
        raw: v.raw_request.query,
        normalization: t.query_normalization.algorithm,
        normalized: t.query_normalization.normalized,
        sha256: t.query_normalization.sha256,
      },
      headers: {
        allow_list: t.headers.allow_list,
        selected: t.headers.selected,
      },
      audience: t.audience,
      route_id: t.route_id,
      body_sha256: t.body_sha256,
      nonce: t.nonce,
    });
  });

  it('has exactly the shape of the broker-ipc-v1 success vector', async () => {
    const v = read<{ request: BrokerIpcRequest; response: unknown }>('broker-ipc-v1.success.json');
    const request = await prepareRequest({
      method: 'POST',
      url: 'https://orders.example/v1/orders?currency=USD&expand=items',
      audience: 'orders-api',
      routeId: 'orders.create',
      headers: { 'content-type': 'application/json' },
      body: '{}',
      nonce: v.request.http.nonce,
    });
    const http = describeRequestForBroker(request);
    const shape = (o: unknown): unknown =>
      Array.isArray(o)
        ? o.map(shape)
        : typeof o === 'object' && o !== null
          ? Object.fromEntries(Object.entries(o).map(([k, x]) => [k, shape(x)]))
          : typeof o;
    expect(shape(http)).toEqual(shape(v.request.http));
    expect(http.query).toEqual(v.request.http.query);
    expect(http.headers.allow_list).toEqual(v.request.http.headers.allow_list);
    // The nonce digest is the vector's (same nonce); content-type and body are our own values.
    expect(http.headers.selected[1]).toEqual(v.request.http.headers.selected[1]);
    expect(brokerIpcResponseSchema.safeParse(v.response).success).toBe(true);
  });

  it('refuses unsafe requests before describing them', async () => {
    const base = { method: 'GET', audience: 'orders-api', routeId: 'orders.search' };
    await expect(
      prepareRequest({ ...base, url: 'https://orders.example/v1/%2e%2e/x' }),
    ).rejects.toMatchObject({
      reason: 'unsafe_request_path',
    });
    await expect(prepareRequest({ ...base, url: 'https://orders.example/v1/x/' })).rejects.toMatchObject({
      reason: 'unsafe_request_path',
    });
    await expect(prepareRequest({ ...base, url: 'https://u:p@orders.example/v1/x' })).rejects.toThrow(
      TypeError,
    );
    await expect(prepareRequest({ ...base, url: 'https://orders.example/v1/x#f' })).rejects.toThrow(
      TypeError,
    );
    await expect(
      prepareRequest({ ...base, url: 'https://orders.example/v1/x', headers: { authorization: 'Bearer x' } }),
    ).rejects.toThrow(TypeError);
  });
});
