import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  decodePassportUnverified,
  MemoryReplayStore,
  REASON_CODES,
  REASON_CODE_LIST,
  type KeyBinding,
  TrustplaneError,
} from '../../pkg/authcore/index.js';
import { auditEventSchema, MemoryAuditSink } from '../../pkg/audit/index.js';
import {
  Broker,
  brokerIpcRequestSchema,
  brokerIpcResponseSchema,
  softwareIdentity,
  spiffeWorkloadIdentity,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
  type IdentitySource,
  type IssuancePolicy,
} from '../../pkg/broker/index.js';
import { verifyRequest } from '../../pkg/verifier/index.js';
import type { LoadedPolicy } from '../../pkg/bundle/index.js';
import { patchedPolicy, revokeSubject } from '../middleware/helpers.js';
import { describeHttp, ipcRequest } from '../helpers/broker-requests.js';
import {
  BROKER_ISSUER,
  NOW,
  ORIGIN,
  TRUST_DOMAIN,
  allowBrokerOn,
  createWorld,
  type World,
} from '../helpers/fixture.js';

const VECTORS = new URL('../vectors/trustplane-v1/', import.meta.url);
const vector = (name: string) =>
  JSON.parse(readFileSync(new URL(name, VECTORS), 'utf8')) as {
    request: BrokerIpcRequest;
    response: BrokerIpcResponse;
  };
const success = vector('broker-ipc-v1.success.json');
const denied = vector('broker-ipc-v1.denied.json');

const WORKLOAD = 'spiffe://example.local/ns/orders/sa/worker';

let world: World;

beforeAll(async () => {
  world = await createWorld({
    policyPatch: allowBrokerOn(['orders.create', 'orders.search']),
  });
});

function fixedIdentity(keyBinding: KeyBinding, subject = WORKLOAD): IdentitySource {
  const identity = { subject, trustDomain: TRUST_DOMAIN, keyBinding };
  return { keyBinding, kind: 'test', current: () => identity };
}

function broker(
  options: {
    identity?: IdentitySource;
    clock?: number;
    jti?: string;
    audit?: MemoryAuditSink;
    issuance?: IssuancePolicy;
    policy?: LoadedPolicy;
  } = {},
) {
  return new Broker({
    issuer: BROKER_ISSUER,
    issuerKey: world.broker,
    issuerKid: 'broker-1',
    identity: options.identity ?? spiffeIdentity(),
    material: () => ({ trust: world.trust, policy: options.policy ?? world.policy }),
    clock: () => options.clock ?? NOW,
    ...(options.jti !== undefined ? { newJti: () => options.jti! } : {}),
    ...(options.audit ? { audit: options.audit } : {}),
    ...(options.issuance ? { issuance: options.issuance } : {}),
  });
}

function spiffeIdentity(subject = WORKLOAD, notAfter = NOW + 3600): IdentitySource {
  const identity = spiffeWorkloadIdentity(subject, TRUST_DOMAIN, notAfter);
  return { keyBinding: 'attested_workload', kind: 'test-spiffe', current: () => identity };
}

const BODY = '{"sku":"A-1","qty":2}';
const createSpec = {
  method: 'POST',
  path: '/v1/orders',
  query: 'b=2&a=1',
  headers: { 'content-type': 'application/json' },
  body: BODY,
  routeId: 'orders.create',
  nonce: 'nonce-broker-e2e-1',
};

function allowed(response: BrokerIpcResponse) {
  if (!response.accepted)
    throw new Error(`expected allow, got ${response.reason_code}: ${response.error.message}`);
  return response;
}

function toWire(
  response: BrokerIpcResponse,
  http: BrokerIpcRequest['http'],
  spec: {
    method: string;
    path: string;
    query?: string;
    headers?: Record<string, string>;
    body?: string | undefined;
  },
) {
  const a = allowed(response).artifacts;
  const headers = new Headers({
    ...spec.headers,
    authorization: `Bearer ${a.passport.value}`,
    'x-trustplane-proof': a.stamp.value,
    'x-trustplane-transcript-sha256': a.stamp.transcript_sha256,
    'x-trustplane-nonce': http.nonce,
    'x-trustplane-body-sha256': http.body_sha256,
    'x-trustplane-covered-headers': http.headers.allow_list.join(','),
  });
  const url = `${ORIGIN}${spec.path}${spec.query ? `?${spec.query}` : ''}`;
  return new Request(url, {
    method: spec.method,
    headers,
    ...(spec.body !== undefined ? { body: spec.body } : {}),
  });
}

const verifierContext = () => ({
  trust: world.trust,
  policy: world.policy,
  replayStore: new MemoryReplayStore(),
  clock: () => NOW,
});

describe('broker-ipc-v1 conformance vectors', () => {
  it('request and response shapes round-trip through the schemas unchanged', () => {
    for (const v of [success, denied]) {
      const req = brokerIpcRequestSchema.parse(v.request);
      const res = brokerIpcResponseSchema.parse(v.response);
      expect(JSON.parse(JSON.stringify(req))).toEqual(v.request);
      expect(JSON.parse(JSON.stringify(res))).toEqual(v.response);
    }
  });

  it('reproduces the success stamp transcript sha256 (379c7719…) from the vector request', async () => {
    // The broker checks bundle freshness at its own clock: the bundle in force at the vector's
    // time was issued shortly before it.
    const b = broker({
      identity: fixedIdentity('hardware_local'),
      clock: success.response.issued_at,
      jti: success.response.artifacts!.passport.jti,
      policy: await patchedPolicy(world, (doc) => {
        doc.issued_at = success.response.issued_at - 60;
      }),
    });
    const response = allowed(await b.issue(success.request));
    expect(response.artifacts.stamp.transcript_sha256).toBe(
      '379c7719c7cfea89d4353f66b64c6e0da96be62cf01b9122269085a9f6703b10',
    );
    expect(response.artifacts.stamp.transcript_sha256).toBe(
      success.response.artifacts!.stamp.transcript_sha256,
    );
    expect(response).toMatchObject({
      request_id: success.request.request_id,
      accepted: true,
      status: 'allow',
      reason_code: 'broker_passport_issued',
      issued_at: success.response.issued_at,
      expires_at: success.response.expires_at,
      error: null,
    });
    const claims = decodePassportUnverified(response.artifacts.passport.value).payload;
    expect(claims).toMatchObject({
      iss: BROKER_ISSUER,
      sub: WORKLOAD,
      aud: 'orders-api',
      jti: 'passport-v1-broker-success-001',
      cnf: { key_binding: 'hardware_local' },
      ctx: success.request.ctx!.values,
    });
  });

  it('answers the denied vector request with exactly the vector response', async () => {
    const response = await broker({ identity: fixedIdentity('hardware_local') }).issue(denied.request);
    expect(response).toEqual(denied.response);
  });
});

describe('Broker.issue', () => {
  it('mints a passport + stamp the verifier accepts for that exact request and no other', async () => {
    const audit = new MemoryAuditSink();
    const http = describeHttp(createSpec);
    const response = await broker({ audit }).issue(ipcRequest(http));
    const ok = allowed(response);
    expect(ok.expires_at - ok.issued_at).toBe(300);
    const claims = decodePassportUnverified(ok.artifacts.passport.value).payload;
    expect(claims).toMatchObject({
      sub: WORKLOAD,
      trust_domain: TRUST_DOMAIN,
      cnf: { key_binding: 'attested_workload' },
      provenance: {
        profile: 'trustplane-spiffe-spire-k8s-v1',
        posture: 'spiffe_svid_verified',
        spiffe_id: WORKLOAD,
      },
    });

    const decision = await verifyRequest(toWire(response, http, createSpec), verifierContext());
    expect(decision).toMatchObject({ allowed: true, subject: WORKLOAD, keyBinding: 'attested_workload' });

    const variants = [
      { ...createSpec, body: '{"sku":"A-1","qty":3}' },
      { ...createSpec, query: 'b=2&a=2' },
      { ...createSpec, headers: { 'content-type': 'text/plain' } },
    ];
    for (const spec of variants) {
      const d = await verifyRequest(toWire(response, http, spec), verifierContext());
      expect(d).toMatchObject({ allowed: false, reason: 'request_binding_mismatch' });
    }
    const other = await verifyRequest(
      toWire(response, http, { ...createSpec, path: '/v1/orders/search', method: 'GET', body: undefined }),
      verifierContext(),
    );
    expect(other.allowed).toBe(false);

    expect(audit.events).toHaveLength(1);
    const event = auditEventSchema.parse(audit.events[0]);
    expect(event).toMatchObject({
      event_type: 'passport_issued',
      component: 'broker',
      decision: 'allow',
      status: 200,
      sub: WORKLOAD,
      route_id: 'orders.create',
      jti: claims.jti,
      transcript_sha256: ok.artifacts.stamp.transcript_sha256,
    });
    expect(JSON.stringify(event)).not.toContain(ok.artifacts.passport.value);
  });

  it('gives every passport a fresh jti and request key', async () => {
    const b = broker();
    const a1 = allowed(await b.issue(ipcRequest(describeHttp(createSpec))));
    const a2 = allowed(await b.issue(ipcRequest(describeHttp(createSpec))));
    const c1 = decodePassportUnverified(a1.artifacts.passport.value).payload as {
      jti: string;
      cnf: { kid: string };
    };
    const c2 = decodePassportUnverified(a2.artifacts.passport.value).payload as {
      jti: string;
      cnf: { kid: string };
    };
    expect(c1.jti).not.toBe(c2.jti);
    expect(c1.cnf.kid).not.toBe(c2.cnf.kid);
  });

  it('caps the lifetime at the identity notAfter and the issuance ttl', async () => {
    const short = allowed(
      await broker({ identity: spiffeIdentity(WORKLOAD, NOW + 42) }).issue(
        ipcRequest(describeHttp(createSpec)),
      ),
    );
    expect(short.expires_at).toBe(NOW + 42);
    const ttl = allowed(
      await broker({ issuance: { version: 'trustplane-broker-issuance-v1', ttl_seconds: 60 } }).issue(
        ipcRequest(describeHttp(createSpec)),
      ),
    );
    expect(ttl.expires_at - ttl.issued_at).toBe(60);
  });

  const refusals: [string, () => Promise<BrokerIpcResponse>, string][] = [
    ['not an object', () => broker().issue('hello'), 'malformed_request'],
    [
      'unknown member',
      () => broker().issue({ ...ipcRequest(describeHttp(createSpec)), extra: 1 }),
      'malformed_request',
    ],
    [
      'query.normalized inconsistent with raw',
      () => {
        const http = describeHttp(createSpec);
        return broker().issue(ipcRequest({ ...http, query: { ...http.query, raw: 'a=9' } }));
      },
      'malformed_request',
    ],
    [
      'nonce header digest not the nonce',
      () => broker().issue(ipcRequest({ ...describeHttp(createSpec), nonce: 'another-nonce' })),
      'malformed_request',
    ],
    ...['/v1/orders/', '/v1//orders', '/v1/%6Frders', '/v1/./orders', '/v1/orders/..', '/v1\\orders'].map(
      (path) =>
        [
          `unsafe path ${path}`,
          () => broker().issue(ipcRequest(describeHttp({ ...createSpec, path }))),
          'unsafe_request_path',
        ] as [string, () => Promise<BrokerIpcResponse>, string],
    ),
    [
      'route outside the policy bundle',
      () => broker().issue(ipcRequest(describeHttp({ ...createSpec, path: '/v1/payments' }))),
      'bundle_route_missing',
    ],
    [
      'route_id that is not the route of method + path',
      () => broker().issue(ipcRequest(describeHttp({ ...createSpec, routeId: 'orders.search' }))),
      'bundle_route_missing',
    ],
    [
      'audience of another API',
      () => broker().issue(ipcRequest({ ...describeHttp(createSpec), audience: 'payments-api' })),
      'audience_mismatch',
    ],
    [
      'route whose sources do not include this broker',
      () =>
        broker().issue(
          ipcRequest(
            describeHttp({ ...createSpec, path: '/v1/orders/o-1/approve', routeId: 'orders.secure' }),
          ),
        ),
      'source_issuer_mismatch',
    ],
    [
      'subject outside the source prefix',
      () =>
        broker({ identity: spiffeIdentity('spiffe://example.local/ns/billing/sa/worker') }).issue(
          ipcRequest(describeHttp(createSpec)),
        ),
      'source_subject_mismatch',
    ],
    [
      'software broker asked for attested_workload without fallback',
      () =>
        broker({ identity: softwareIdentity({ subject: WORKLOAD, trustDomain: TRUST_DOMAIN }) }).issue(
          ipcRequest(describeHttp(createSpec)),
        ),
      'insufficient_key_binding',
    ],
    [
      'expired workload identity',
      () => broker({ identity: spiffeIdentity(WORKLOAD, NOW) }).issue(ipcRequest(describeHttp(createSpec))),
      'workload_attestation_failed',
    ],
    [
      'attack: a revoked workload subject (the verifier would refuse it)',
      async () =>
        broker({ policy: await patchedPolicy(world, revokeSubject(WORKLOAD)) }).issue(
          ipcRequest(describeHttp(createSpec)),
        ),
      'revoked',
    ],
    [
      'attack: a revoked broker issuer key (header kid)',
      async () =>
        broker({
          policy: await patchedPolicy(world, (doc) => {
            doc.revocations = [{ kind: 'key', issuer: BROKER_ISSUER, value: 'broker-1' }];
          }),
        }).issue(ipcRequest(describeHttp(createSpec))),
      'revoked',
    ],
    [
      'a policy bundle older than the route freshness class allows',
      async () =>
        broker({
          policy: await patchedPolicy(world, (doc) => {
            doc.issued_at = NOW - 301;
          }),
        }).issue(ipcRequest(describeHttp(createSpec))),
      'stale_bundle_fail_closed',
    ],
    [
      'no issuance grant for the route',
      () =>
        broker({
          issuance: {
            version: 'trustplane-broker-issuance-v1',
            grants: [{ subject_exact: WORKLOAD, audiences: ['orders-api'], routes: ['orders.search'] }],
          },
        }).issue(ipcRequest(describeHttp(createSpec))),
      'issuance_policy_denied',
    ],
  ];

  it('answers workload_identity_unavailable (retryable) when the identity source has no SVID', async () => {
    const unavailable: IdentitySource = {
      keyBinding: 'attested_workload',
      kind: 'test',
      current: () => {
        throw new TrustplaneError('workload_identity_unavailable', 'no workload SVID yet');
      },
    };
    const response = await broker({ identity: unavailable }).issue(ipcRequest(describeHttp(createSpec)));
    expect(response).toMatchObject({
      accepted: false,
      reason_code: 'workload_identity_unavailable',
      error: { retryable: true },
    });
  });

  it('the broker layer has exactly the codes these tests produce', () => {
    const broker = REASON_CODE_LIST.filter((c) => REASON_CODES[c].layer === 'broker');
    expect(broker.sort()).toEqual(
      ['issuance_policy_denied', 'workload_attestation_failed', 'workload_identity_unavailable'].sort(),
    );
  });

  it.each(refusals)('refuses %s', async (_name, run, reason) => {
    const response = await run();
    expect(response).toMatchObject({ accepted: false, status: 'deny', reason_code: reason, artifacts: null });
    expect(brokerIpcResponseSchema.safeParse(response).success).toBe(true);
  });

  it('allows software with allow_software_fallback, and the verifier then applies the route minimum', async () => {
    const http = describeHttp({
      ...createSpec,
      method: 'GET',
      path: '/v1/orders/search',
      routeId: 'orders.search',
      body: undefined,
      headers: {},
    });
    const request = ipcRequest(http, {
      key_binding: {
        intent: 'route_policy_minimum',
        requested_key_binding: 'attested_workload',
        acceptable_key_bindings: ['attested_workload'],
        allow_software_fallback: true,
      },
    });
    const response = await broker({
      identity: softwareIdentity({ subject: WORKLOAD, trustDomain: TRUST_DOMAIN }),
    }).issue(request);
    const claims = decodePassportUnverified(allowed(response).artifacts.passport.value).payload;
    expect(claims).toMatchObject({ cnf: { key_binding: 'software' }, provenance: { signer: 'software' } });
    const decision = await verifyRequest(
      toWire(response, http, { method: 'GET', path: '/v1/orders/search', query: 'b=2&a=1' }),
      verifierContext(),
    );
    expect(decision.allowed).toBe(true);
  });

  it('writes a passport_denied event for every refusal and withholds a passport whose event failed', async () => {
    const audit = new MemoryAuditSink();
    await broker({ audit }).issue(ipcRequest(describeHttp({ ...createSpec, path: '/v1/payments' })));
    expect(auditEventSchema.parse(audit.events[0])).toMatchObject({
      event_type: 'passport_denied',
      decision: 'deny',
      reason: 'bundle_route_missing',
      status: 403,
      path: '/v1/payments',
    });
    const failing = { write: () => Promise.reject(new Error('disk full')) };
    const b = new Broker({
      issuer: BROKER_ISSUER,
      issuerKey: world.broker,
      issuerKid: 'broker-1',
      identity: spiffeIdentity(),
      material: () => ({ trust: world.trust, policy: world.policy }),
      clock: () => NOW,
      audit: failing,
    });
    const response = await b.issue(ipcRequest(describeHttp(createSpec)));
    expect(response).toMatchObject({
      accepted: false,
      reason_code: 'audit_unavailable',
      error: { retryable: true },
    });
  });
});
