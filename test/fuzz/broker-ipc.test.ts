import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { auditEventSchema, MemoryAuditSink } from '../../pkg/audit/index.js';
import { isReasonCode, isRetryableReason, verifyPassport } from '../../pkg/authcore/index.js';
import {
  Broker,
  brokerIpcRequestSchema,
  brokerIpcResponseSchema,
  softwareIdentity,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
} from '../../pkg/broker/index.js';
import { sha256HexSync } from '../../pkg/internal/sha256.js';
import {
  clientPathProblem,
  normalizeCoveredHeaders,
  normalizeQuery,
  transcriptFromDigests,
  verifyProof,
} from '../../pkg/proof/index.js';
import {
  allowBrokerOn,
  BROKER_ISSUER,
  createWorld,
  NOW,
  TRUST_DOMAIN,
  type World,
} from '../helpers/fixture.js';
import { readVectorJson } from '../helpers/vectors.js';
import { attempt, attemptAsync, fuzzParams, FUZZ_TEST_TIMEOUT_MS } from './fuzz-config.js';
import { applyJsonMutations, interestingChar, jsonMutation } from './mutations.js';

/*
 * Fuzz of the broker-ipc-v1 boundary: the request/response schemas, and `Broker.issue` with a
 * software identity. Whatever arrives (any JSON, any value, a mutated valid request), the broker
 * answers a schema-valid broker-ipc-v1 allow or deny, never throws, records one schema-valid audit
 * event, and allows only a request that is internally consistent: its passport verifies and its
 * stamp is a valid proof over the transcript the description defines.
 */

const WORKLOAD = 'spiffe://example.local/ns/orders/sa/worker';

let world: World;
let audit: MemoryAuditSink;
let broker: Broker;
const vectors: { request: unknown; response: unknown }[] = [];

beforeAll(async () => {
  world = await createWorld({ policyPatch: allowBrokerOn(['orders.create', 'orders.search']) });
  audit = new MemoryAuditSink();
  broker = new Broker({
    issuer: BROKER_ISSUER,
    issuerKey: world.broker,
    issuerKid: 'broker-1',
    identity: softwareIdentity({ subject: WORKLOAD, trustDomain: TRUST_DOMAIN }),
    material: () => ({ trust: world.trust, policy: world.policy }),
    clock: () => NOW,
    audit,
  });
  for (const name of ['broker-ipc-v1.success.json', 'broker-ipc-v1.denied.json']) {
    vectors.push(readVectorJson<{ request: unknown; response: unknown }>(`trustplane-v1/${name}`));
  }
});

/** Describe a request from its real parts, as an SDK does. */
function describeHttp(spec: {
  method: string;
  path: string;
  routeId: string;
  query: string;
  headers: Readonly<Record<string, string>>;
  body: string;
  nonce: string;
}): BrokerIpcRequest['http'] {
  const headers: Record<string, string> = { ...spec.headers, 'x-trustplane-nonce': spec.nonce };
  const allow = normalizeCoveredHeaders(Object.keys(headers));
  const normalized = normalizeQuery(spec.query);
  return {
    method: spec.method,
    scheme: 'https',
    authority: 'orders.example',
    path: spec.path,
    content_encoding: 'identity',
    query: {
      raw: spec.query,
      normalization: 'rfc3986-sort-keys-values',
      normalized,
      sha256: sha256HexSync(normalized),
    },
    headers: {
      allow_list: allow,
      selected: allow.map((name) => ({ name, value_sha256: sha256HexSync(headers[name]!.trim()) })),
    },
    audience: 'orders-api',
    route_id: spec.routeId,
    body_sha256: sha256HexSync(spec.body),
    nonce: spec.nonce,
  };
}

/** Valid requests for the software broker: the two broker routes, random query, headers, nonce. */
const validRequest: fc.Arbitrary<BrokerIpcRequest> = fc
  .record({
    route: fc.constantFrom(
      { method: 'GET', path: '/v1/orders/search', routeId: 'orders.search' },
      { method: 'POST', path: '/v1/orders', routeId: 'orders.create' },
    ),
    query: fc
      .stringMatching(/^(?:[a-z0-9]{1,4}=[A-Za-z0-9%._~-]{0,6}&?){0,3}$/)
      .filter((q) => !/%(?![0-9A-Fa-f]{2})/.test(q)),
    headers: fc.dictionary(fc.stringMatching(/^x-[a-z0-9-]{1,8}$/), fc.string({ maxLength: 12 }), {
      maxKeys: 3,
    }),
    body: fc.string({ maxLength: 20 }),
    nonce: fc.stringMatching(/^[A-Za-z0-9_-]{8,32}$/),
    requestId: fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/),
    keyBinding: fc.constantFrom(
      { requested: 'software', acceptable: ['software'], fallback: false },
      { requested: 'attested_workload', acceptable: ['attested_workload'], fallback: true },
      { requested: 'software', acceptable: ['software', 'hardware_local'], fallback: false },
    ),
    ctx: fc.option(
      fc.constantFrom(
        { selected_fields: ['purpose'], values: { purpose: 'refund' } },
        { selected_fields: ['purpose', 'max_txn_value'], values: { max_txn_value: '10.00' } },
      ),
      { nil: undefined },
    ),
  })
  .map((r) => ({
    request_id: r.requestId,
    protocol: 'local-json-ipc' as const,
    operation: 'issue_request_bound_passport' as const,
    http: describeHttp({ ...r.route, query: r.query, headers: r.headers, body: r.body, nonce: r.nonce }),
    key_binding: {
      intent: 'route_policy_minimum' as const,
      requested_key_binding: r.keyBinding.requested as 'software',
      acceptable_key_bindings: r.keyBinding.acceptable as ['software'],
      allow_software_fallback: r.keyBinding.fallback,
    },
    ...(r.ctx ? { ctx: r.ctx as unknown as BrokerIpcRequest['ctx'] } : {}),
  }));

const DOMAIN_STRINGS = [
  'GET',
  'POST',
  'get',
  'HEAD',
  '/v1/orders/search',
  '/v1/orders',
  '/v1/orders/',
  '/V1/ORDERS/SEARCH',
  '/v1/orders/%2e%2e/search',
  '/v1//orders',
  'orders.search',
  'orders.create',
  'orders.get',
  'orders-api',
  'other-api',
  'software',
  'attested_workload',
  'hardware_local',
  'x-trustplane-nonce',
  'X-TrustPlane-Nonce',
  'local-json-ipc',
  'issue_request_bound_passport',
  'route_policy_minimum',
  'rfc3986-sort-keys-values',
  'http',
  'https',
  'ftp',
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
];
const MEMBER_NAMES = [
  'method',
  'path',
  'raw',
  'normalized',
  'sha256',
  'nonce',
  'route_id',
  'audience',
  'request_id',
  'value_sha256',
  'authority',
];

/** A copy without own `__proto__` members. */
function withoutProtoMembers(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutProtoMembers);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (key !== '__proto__') out[key] = withoutProtoMembers((value as Record<string, unknown>)[key]);
  }
  return out;
}

/** The deny/allow answer is schema-valid broker-ipc-v1, with registry codes and the right request_id. */
function expectWellFormedAnswer(response: BrokerIpcResponse, raw: unknown): void {
  const parsed = brokerIpcResponseSchema.safeParse(response);
  expect(parsed.success, `not broker-ipc-v1: ${JSON.stringify(response).slice(0, 300)}`).toBe(true);
  const id = (raw as { request_id?: unknown } | null)?.request_id;
  const expectedId = typeof id === 'string' && id.length > 0 && id.length <= 256 ? id : 'unknown';
  if (typeof raw === 'object' && raw !== null) expect(response.request_id).toBe(expectedId);
  if (!response.accepted) {
    expect(isReasonCode(response.reason_code)).toBe(true);
    expect(response.error.code).toBe(response.reason_code);
    if (isReasonCode(response.reason_code))
      expect(response.error.retryable).toBe(isRetryableReason(response.reason_code));
  }
}

/** One audit event per answer, schema-valid, agreeing with the answer. */
function expectOneEvent(response: BrokerIpcResponse): void {
  expect(audit.events).toHaveLength(1);
  const event = auditEventSchema.safeParse(audit.events[0]);
  expect(
    event.success,
    `audit event is not schema-valid: ${JSON.stringify(audit.events[0]).slice(0, 300)}`,
  ).toBe(true);
  if (event.success) {
    expect(event.data.decision).toBe(response.accepted ? 'allow' : 'deny');
    if (!response.accepted) expect(event.data.reason).toBe(response.reason_code);
  }
  audit.events.length = 0;
}

/** An allow is for a consistent request, and its artifacts verify (no wrong accept). */
async function expectSoundAllow(response: BrokerIpcResponse, raw: unknown): Promise<void> {
  if (!response.accepted) return;
  const parsed = brokerIpcRequestSchema.safeParse(raw);
  expect(parsed.success, 'allowed a request that is not broker-ipc-v1').toBe(true);
  if (!parsed.success) return;
  const { http, key_binding: kb } = parsed.data;
  // The description is the description of one request.
  expect(clientPathProblem(http.path)).toBeUndefined();
  expect(normalizeQuery(http.query.raw)).toBe(http.query.normalized);
  expect(sha256HexSync(http.query.normalized)).toBe(http.query.sha256);
  expect(normalizeCoveredHeaders(http.headers.allow_list)).toEqual(http.headers.allow_list);
  expect(http.headers.selected.find((h) => h.name === 'x-trustplane-nonce')?.value_sha256).toBe(
    sha256HexSync(http.nonce),
  );
  expect(kb.acceptable_key_bindings.includes('software') || kb.allow_software_fallback).toBe(true);
  // The route resolves to route_id, for the route's audience.
  const match = world.policy.routeTable.resolve(http.method, http.path);
  expect(match?.route.route_id).toBe(http.route_id);
  expect(match?.api.audience).toBe(http.audience);
  // The passport verifies for that audience, and the stamp is a proof over the transcript.
  const passport = await verifyPassport(response.artifacts.passport.value, {
    issuers: world.trust,
    audience: http.audience,
    now: NOW,
  });
  expect(passport.claims).toMatchObject({
    iss: BROKER_ISSUER,
    sub: WORKLOAD,
    jti: response.artifacts.passport.jti,
  });
  expect(passport.claims.cnf.key_binding).toBe('software');
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
    passportJti: passport.claims.jti,
    nonce: http.nonce,
    issuedAt: passport.claims.iat,
    keyBinding: passport.claims.cnf.key_binding,
  });
  expect(response.artifacts.stamp.transcript_sha256).toBe(transcript.sha256);
  expect(await verifyProof(transcript.digest, response.artifacts.stamp.value, passport.cnfKey)).toBe(true);
}

describe('fuzz: broker-ipc-v1', () => {
  it('positive control: a valid request from the software identity is allowed, and its artifacts verify', async () => {
    const request = fc.sample(validRequest, { numRuns: 1 })[0]!;
    const response = await broker.issue(request);
    expect(response).toMatchObject({ accepted: true, status: 'allow' });
    expectWellFormedAnswer(response, request);
    await expectSoundAllow(response, request);
    expectOneEvent(response);
  });

  it(
    'brokerIpcRequestSchema / brokerIpcResponseSchema never throw; what they accept is their input unchanged',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.anything({ maxDepth: 3, withNullPrototype: true, withMap: true, withBigInt: true }),
            fc.jsonValue({ maxDepth: 3 }),
            fc
              .tuple(
                fc.nat({ max: 1 }),
                fc.boolean(),
                fc.array(jsonMutation(DOMAIN_STRINGS, MEMBER_NAMES), { minLength: 1, maxLength: 3 }),
              )
              .map(([i, request, ms]) =>
                applyJsonMutations(request ? vectors[i]!.request : vectors[i]!.response, ms),
              ),
          ),
          (value) => {
            for (const schema of [brokerIpcRequestSchema, brokerIpcResponseSchema]) {
              const out = attempt(() => schema.safeParse(value));
              if (!out.ok) throw out.error;
              // zod records drop an own `__proto__` member (assigning a string to it is a no-op): the
              // only difference allowed, harmless since record values must be strings.
              if (out.value.success) expect(out.value.data).toEqual(withoutProtoMembers(value));
            }
          },
        ),
        fuzzParams('broker-ipc.schemas'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'Broker.issue on any value: never throws, answers a schema-valid deny, records one valid audit event',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.anything({
              maxDepth: 3,
              withNullPrototype: true,
              withBigInt: true,
              withMap: true,
              withSparseArray: true,
            }),
            fc.jsonValue({ maxDepth: 4 }),
            fc.record(
              {
                request_id: fc.oneof(
                  fc.string({ unit: interestingChar, maxLength: 300 }),
                  fc.constant(''),
                  fc.nat(),
                ),
                protocol: fc.constantFrom('local-json-ipc', 'x'),
                operation: fc.constantFrom('issue_request_bound_passport', 'x'),
                http: fc.jsonValue({ maxDepth: 2 }),
                key_binding: fc.jsonValue({ maxDepth: 2 }),
              },
              { requiredKeys: [] },
            ),
          ),
          async (raw) => {
            audit.events.length = 0;
            const out = await attemptAsync(() => broker.issue(raw));
            if (!out.ok) throw out.error;
            expect(out.value.accepted, 'an arbitrary value was allowed').toBe(false);
            expectWellFormedAnswer(out.value, raw);
            expectOneEvent(out.value);
          },
        ),
        fuzzParams('broker-ipc.issue-anything'),
      );
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'Broker.issue on mutated valid requests: a schema-valid answer; an allow only for a consistent request whose artifacts verify',
    async () => {
      let allowed = 0;
      let denied = 0;
      await fc.assert(
        fc.asyncProperty(
          validRequest,
          fc.array(jsonMutation(DOMAIN_STRINGS, MEMBER_NAMES), { maxLength: 3 }),
          async (request, mutations) => {
            audit.events.length = 0;
            const raw = applyJsonMutations(request, mutations);
            const out = await attemptAsync(() => broker.issue(raw));
            if (!out.ok) throw out.error;
            const response = out.value;
            expectWellFormedAnswer(response, raw);
            expectOneEvent(response);
            await expectSoundAllow(response, raw);
            if (response.accepted) allowed++;
            else denied++;
          },
        ),
        fuzzParams('broker-ipc.issue-mutated'),
      );
      expect(allowed, 'no request was allowed: the property is vacuous').toBeGreaterThan(0);
      expect(denied).toBeGreaterThan(0);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});
