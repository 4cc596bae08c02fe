import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  issuePassport,
  MemoryReplayStore,
  TrustplaneError,
  REASON_CODES,
  REASON_CODE_LIST,
  type ReasonCode,
  type ReplayStore,
} from '../../pkg/authcore/index.js';
import { encodeBase64Url } from '../../pkg/internal/base64url.js';
import { patchedPolicy } from '../middleware/helpers.js';
import { utf8 } from '../../pkg/internal/bytes.js';
import { buildTranscript, signProof, bodySha256 } from '../../pkg/proof/index.js';
import {
  denyBody,
  denyResponse,
  verifyRequest,
  type Decision,
  type NormalizedRequest,
  type VerifierContext,
} from '../../pkg/verifier/index.js';
import {
  BROKER_ISSUER,
  NOW,
  ORIGIN,
  OTHER_ISSUER,
  UNLISTED_ISSUER,
  createWorld,
  signed,
  toRequest,
  type World,
  signedJson,
} from '../helpers/fixture.js';

const seen = new Set<ReasonCode>();

function expectDeny(decision: Decision, reason: ReasonCode, status: number): void {
  expect(decision.allowed).toBe(false);
  if (decision.allowed) return;
  expect({ reason: decision.reason, status: decision.status }).toEqual({ reason, status });
  expect(REASON_CODES[reason].status).toBe(status);
  expect(denyBody(decision)).toEqual({ allowed: false, reason });
  seen.add(reason);
}

let world: World;
let store: MemoryReplayStore;
let ctx: VerifierContext;

beforeAll(async () => {
  world = await createWorld();
});

function context(overrides: Partial<VerifierContext> = {}): VerifierContext {
  store = new MemoryReplayStore();
  ctx = { trust: world.trust, policy: world.policy, replayStore: store, clock: () => NOW, ...overrides };
  return ctx;
}

/** A raw-target request (as the adapter or Node middleware builds it). */
async function rawRequest(
  s: { method: string; headers: Readonly<Record<string, string>> },
  path: string,
  query = '',
  body = '',
): Promise<NormalizedRequest> {
  return {
    method: s.method,
    scheme: 'https',
    authority: 'orders.example',
    path,
    query,
    headers: new Map(Object.entries(s.headers)),
    bodySha256: await bodySha256(body),
    bodyLength: utf8(body).length,
  };
}

describe('verifyRequest: allow', () => {
  it('allows a signed GET and reports the verified identity', async () => {
    const s = await signed(world);
    const d = await verifyRequest(toRequest(s), context());
    expect(d).toMatchObject({
      allowed: true,
      status: 200,
      routeId: 'orders.search',
      apiId: 'orders-api',
      audience: 'orders-api',
      subject: 'service:orders-client',
      issuer: 'https://issuer.example/software-jwks',
      trustDomain: 'example.local',
      jti: s.claims.jti,
      keyBinding: 'software',
      sourceType: 'software_jwks',
      transcriptSha256: s.transcript.sha256,
    });
  });

  it('allows a signed POST with a JSON body and a templated route', async () => {
    const body = '{"order_id":"ord_123","amount":"42.00"}';
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders?currency=USD&expand=items',
      routeId: 'orders.create',
      body,
      headers: { 'content-type': 'application/json' },
    });
    const d = await verifyRequest(toRequest(s, {}, body), context());
    expect(d).toMatchObject({ allowed: true, routeId: 'orders.create' });
    const g = await signed(world, { target: '/v1/orders/ord_42', routeId: 'orders.get' });
    expect(await verifyRequest(toRequest(g), ctx)).toMatchObject({ allowed: true, routeId: 'orders.get' });
  });

  it('accepts a request without the optional transcript and body digest headers', async () => {
    const s = await signed(world);
    const d = await verifyRequest(
      toRequest(s, { headers: { 'x-trustplane-transcript-sha256': null, 'x-trustplane-body-sha256': null } }),
      context(),
    );
    expect(d.allowed).toBe(true);
  });

  it('accepts official-SDK style requests without X-TrustPlane-Covered-Headers (route list applies)', async () => {
    const s = await signed(world);
    const d = await verifyRequest(
      toRequest(s, { headers: { 'x-trustplane-covered-headers': null } }),
      context(),
    );
    expect(d.allowed).toBe(true);
  });

  it('allows a broker-issued attested_workload passport with provenance and context', async () => {
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders/ord_1/refund',
      routeId: 'orders.refund',
      body: '{}',
      headers: { 'content-type': 'application/json' },
      issuerKey: world.broker,
      requestKey: world.caller,
      kid: 'broker-1',
      keyBinding: 'attested_workload',
      claims: {
        iss: BROKER_ISSUER,
        sub: 'spiffe://example.local/ns/orders/sa/worker',
        ctx: { purpose: 'refund', max_txn_value: '100.00' },
        provenance: {
          profile: 'trustplane-spiffe-spire-k8s-v1',
          posture: 'spiffe_svid_verified',
          spiffe_id: 'spiffe://example.local/ns/orders/sa/worker',
        },
      },
    });
    const d = await verifyRequest(toRequest(s, {}, '{}'), context());
    expect(d).toMatchObject({ allowed: true, keyBinding: 'attested_workload', sourceType: 'spiffe_spire' });
  });

  it('builds a deny Response with WWW-Authenticate on 401 and the JSON body', async () => {
    const s = await signed(world);
    const d = await verifyRequest(toRequest(s, { headers: { authorization: null } }), context());
    expectDeny(d, 'missing_passport', 401);
    if (d.allowed) return;
    const res = denyResponse(d);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('Bearer');
    expect(await res.json()).toEqual({ allowed: false, reason: 'missing_passport' });
  });
});

describe('verifyRequest: parse and request layer', () => {
  it('missing or non-Bearer authorization', async () => {
    const s = await signed(world);
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { authorization: 'Basic Zm9vOmJhcg==' } }), context()),
      'malformed_passport',
      401,
    );
  });
  it('missing proof, malformed proof, missing nonce', async () => {
    const s = await signed(world);
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { 'x-trustplane-proof': null } }), context()),
      'missing_proof',
      401,
    );
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { 'x-trustplane-proof': 'abc' } }), context()),
      'missing_proof',
      401,
    );
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { 'x-trustplane-nonce': null } }), context()),
      'missing_proof',
      401,
    );
  });
  it('malformed query encoding', async () => {
    const s = await signed(world);
    expectDeny(
      await verifyRequest(await rawRequest(s, '/v1/orders/search', 'a=%zz'), context()),
      'malformed_request',
      400,
    );
  });
  it('body over the limit', async () => {
    const body = 'x'.repeat(2048);
    const s = await signed(world, { method: 'POST', target: '/v1/orders', routeId: 'orders.create', body });
    expectDeny(
      await verifyRequest(toRequest(s, {}, body), context({ maxBodyBytes: 1024 })),
      'body_too_large',
      413,
    );
  });
  it('no route for the method and path', async () => {
    const s = await signed(world, { target: '/v1/unknown', routeId: 'x' });
    expectDeny(await verifyRequest(toRequest(s), context()), 'bundle_route_missing', 403);
    const d = await signed(world, { method: 'DELETE', target: '/v1/orders', routeId: 'x' });
    expectDeny(await verifyRequest(toRequest(d), context()), 'bundle_route_missing', 403);
  });
  it('unexpected internal failure denies with internal_error (fail closed)', async () => {
    const s = await signed(world);
    const broken = new Proxy(world.policy, {
      get(target, prop, receiver) {
        if (prop === 'routeTable') throw new Error('boom');
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    expectDeny(await verifyRequest(toRequest(s), context({ policy: broken })), 'internal_error', 500);
  });
});

describe('public origin', () => {
  it('the transcript uses the configured publicOrigin: a request signed for another origin is denied', async () => {
    const s = await signed(world);
    expectDeny(
      await verifyRequest(toRequest(s), context({ publicOrigin: 'https://orders.internal' })),
      'request_binding_mismatch',
      401,
    );
    expect(
      (await verifyRequest(toRequest(s), context({ publicOrigin: 'https://orders.example' }))).allowed,
    ).toBe(true);
  });
  it('a malformed publicOrigin fails closed (internal_error), never falls back to the request host', async () => {
    const s = await signed(world);
    expectDeny(
      await verifyRequest(toRequest(s), context({ publicOrigin: 'orders.example' })),
      'internal_error',
      500,
    );
    expect(store.size).toBe(0);
  });
});

describe('attack: path confusion', () => {
  const cases: [string, string][] = [
    ['%2F', '/v1/orders%2Fsearch'],
    ['%2f lowercase', '/v1/orders%2fsearch'],
    ['%2e%2e', '/v1/orders/%2e%2e/orders/search'],
    ['%2E', '/v1/orders/%2E/search'],
    ['//', '/v1//orders/search'],
    ['\\', '/v1/orders\\search'],
    ['%5C', '/v1/orders%5Csearch'],
    ['dot segment', '/v1/orders/./search'],
    ['dot-dot segment', '/v1/x/../orders/search'],
    ['control character', '/v1/orders/search\u0000'],
    ['double encoding %25', '/v1/orders/%252e%252e/search'],
    ['..; (servlet path parameter)', '/v1/x/..;y/orders/search'],
    [';-only segment', '/v1/orders/;/search'],
    ['; path parameter (servlets strip it: admin;x is admin)', '/v1/orders/search;jsessionid=1'],
    ['%73 (an encoded letter: a decoding upstream reads search)', '/v1/orders/%73earch'],
    ['%40 (an encoded @, which needs no encoding)', '/v1/orders/a%40b'],
    ['%c3%a9 (lowercase hex: a second spelling of %C3%A9)', '/v1/orders/caf%c3%a9'],
  ];
  for (const [name, path] of cases) {
    it(`attack: path confusion ${name}`, async () => {
      const s = await signed(world);
      expectDeny(await verifyRequest(await rawRequest(s, path), context()), 'unsafe_request_path', 400);
      expect(store.size).toBe(0);
    });
  }
  it('a Web Request with %2F in the path is refused', async () => {
    const s = await signed(world);
    expectDeny(
      await verifyRequest(toRequest(s, { url: `${ORIGIN}/v1/orders%2Fsearch` }), context()),
      'unsafe_request_path',
      400,
    );
  });
});

describe('attack: path confusion that survives path safety', () => {
  it('a path that reaches another route once letter case is folded: ambiguous_request_path', async () => {
    // /v1/orders/SEARCH resolves to orders.get ({order_id}); an Express upstream (case-insensitive by
    // default) would run the orders.search handler.
    const s = await signed(world, { target: '/v1/orders/SEARCH', routeId: 'orders.get' });
    expectDeny(await verifyRequest(toRequest(s), context()), 'ambiguous_request_path', 400);
    expect(store.size).toBe(0);
  });
  it('the same path on an API whose upstream is case-sensitive (case_sensitive_paths) is allowed', async () => {
    const policy = await patchedPolicy(world, (doc) => {
      (doc.apis as Record<string, unknown>[])[0]!.case_sensitive_paths = true;
    });
    const s = await signed(world, { target: '/v1/orders/SEARCH', routeId: 'orders.get' });
    expect((await verifyRequest(toRequest(s), context({ policy }))).allowed).toBe(true);
  });
  it('a percent-encoded non-ASCII segment in uppercase hex is one spelling and allowed', async () => {
    const s = await signed(world, { target: '/v1/orders/caf%C3%A9', routeId: 'orders.get' });
    expect((await verifyRequest(toRequest(s), context())).allowed).toBe(true);
  });
  it('HEAD next to another GET route: ambiguous_request_path (frameworks serve HEAD with GET)', async () => {
    const policy = await patchedPolicy(world, (doc) => {
      const routes = (doc.route_groups as { routes: Record<string, unknown>[] }[])[0]!.routes;
      routes.push({
        ...routes.find((r) => r.route_id === 'orders.get')!,
        route_id: 'orders.head',
        method: 'HEAD',
        path_template: '/v1/orders/search',
      });
    });
    const s = await signed(world, { method: 'HEAD', target: '/v1/orders/search', routeId: 'orders.head' });
    expectDeny(await verifyRequest(toRequest(s), context({ policy })), 'ambiguous_request_path', 400);
  });
  it('a fixed routeId pins the route: another method or path is bundle_route_missing', async () => {
    const s = await signed(world, { target: '/v1/orders/o42', routeId: 'orders.get' });
    expectDeny(
      await verifyRequest(toRequest(s), context({ routeId: 'orders.search' })),
      'bundle_route_missing',
      403,
    );
    const ok = await signed(world);
    expect((await verifyRequest(toRequest(ok), context({ routeId: 'orders.search' }))).allowed).toBe(true);
  });
});

describe('attack: headers that change meaning upstream', () => {
  const cases: [string, Record<string, string>][] = [
    ['X-HTTP-Method-Override', { 'x-http-method-override': 'DELETE' }],
    ['X-HTTP-Method', { 'x-http-method': 'DELETE' }],
    ['X-Method-Override', { 'x-method-override': 'DELETE' }],
    ['X-Original-URL', { 'x-original-url': '/v1/admin' }],
    ['X-Rewrite-URL', { 'x-rewrite-url': '/v1/admin' }],
    ['an underscore twin of X-TrustPlane-Subject', { x_trustplane_subject: 'service:admin' }],
    ['any underscore header name (CGI merges - and _)', { x_tenant_id: 't2' }],
    ['Connection naming an end-to-end header', { connection: 'content-type' }],
    ['Connection naming Host', { connection: 'keep-alive, host' }],
  ];
  for (const [name, headers] of cases) {
    it(`attack: ${name}: unsafe_request_header`, async () => {
      const s = await signed(world);
      expectDeny(await verifyRequest(toRequest(s, { headers }), context()), 'unsafe_request_header', 400);
      expect(store.size).toBe(0);
    });
  }
  it('Connection: keep-alive / close are fine', async () => {
    const s = await signed(world);
    expect(
      (await verifyRequest(toRequest(s, { headers: { connection: 'keep-alive' } }), context())).allowed,
    ).toBe(true);
  });
});

describe('attack: one caller fills the replay store', () => {
  it('beyond its share the caller is refused replay_quota_exceeded (429), before any jti is taken', async () => {
    const replayStore = new MemoryReplayStore({ maxEntriesPerScope: 1 });
    const first = await signed(world);
    expect((await verifyRequest(toRequest(first), context({ replayStore }))).allowed).toBe(true);
    const second = await signed(world);
    expectDeny(
      await verifyRequest(toRequest(second), context({ replayStore })),
      'replay_quota_exceeded',
      429,
    );
  });
});

describe('attack: passport forgeries at the verifier', () => {
  it('attack: alg none', async () => {
    const s = await signed(world);
    const [, payload] = s.passport.split('.');
    const none = `${encodeBase64Url(utf8('{"alg":"none","typ":"JWT"}'))}.${payload}.`;
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { authorization: `Bearer ${none}` } }), context()),
      'unsupported_algorithm',
      401,
    );
  });
  it('attack: HS256 with the public key as secret', async () => {
    const s = await signed(world);
    const [, payload] = s.passport.split('.');
    const header = encodeBase64Url(utf8('{"alg":"HS256","kid":"caller-1","typ":"JWT"}'));
    const key = await crypto.subtle.importKey(
      'raw',
      world.caller.publicKey.raw.slice(),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, utf8(`${header}.${payload}`).slice()));
    const forged = `${header}.${payload}.${encodeBase64Url(mac)}`;
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { authorization: `Bearer ${forged}` } }), context()),
      'unsupported_algorithm',
      401,
    );
  });
  it('attack: kid of another issuer', async () => {
    const s = await signed(world, { issuerKey: world.other, kid: 'other-1' });
    expectDeny(await verifyRequest(toRequest(s), context()), 'unknown_key', 401);
  });
  it('unknown issuer', async () => {
    const s = await signed(world, { claims: { iss: 'https://evil.example' } });
    expectDeny(await verifyRequest(toRequest(s), context()), 'unknown_issuer', 401);
  });
  it('signature from the wrong key', async () => {
    const s = await signed(world, { issuerKey: world.other, kid: 'caller-1' });
    expectDeny(await verifyRequest(toRequest(s), context()), 'invalid_passport_signature', 401);
  });
  it('attack: expired but signed', async () => {
    const s = await signed(world, { claims: { iat: NOW - 400 }, ttl: 300 });
    expectDeny(await verifyRequest(toRequest(s), context()), 'passport_expired', 401);
  });
  it('attack: future iat', async () => {
    const s = await signed(world, { claims: { iat: NOW + 120 } });
    expectDeny(await verifyRequest(toRequest(s), context()), 'passport_not_yet_valid', 401);
  });
  it('attack: lifetime too long', async () => {
    const s = await signed(world, { ttl: 601 });
    expectDeny(await verifyRequest(toRequest(s), context()), 'passport_lifetime_exceeded', 401);
  });
  it('attack: audience mismatch', async () => {
    const s = await signed(world, { claims: { aud: 'payments-api' } });
    expectDeny(await verifyRequest(toRequest(s), context()), 'audience_mismatch', 403);
  });
  it("attack: trust domain mismatch (not the issuer's)", async () => {
    const s = await signed(world, { claims: { trust_domain: 'evil.local' } });
    expectDeny(await verifyRequest(toRequest(s), context()), 'trust_domain_mismatch', 403);
  });
  it('invalid cnf', async () => {
    const s = await signed(world);
    const bad = await issuePassport(
      { ...s.claims, cnf: { kid: 'k', key_binding: 'software', public_key_b64url: `${'A'.repeat(42)}B` } },
      world.caller,
      { kid: 'caller-1' },
    );
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { authorization: `Bearer ${bad}` } }), context()),
      'invalid_cnf',
      401,
    );
  });
});

describe('policy', () => {
  it('source issuer not allowed on the route', async () => {
    const s = await signed(world, {
      issuerKey: world.unlisted,
      kid: 'unlisted-1',
      claims: { iss: UNLISTED_ISSUER },
    });
    expectDeny(await verifyRequest(toRequest(s), context()), 'source_issuer_mismatch', 403);
  });
  it('source type differs from the issuer source type', async () => {
    const w = await createWorld({
      policyPatch: (doc) => {
        const groups = doc.route_groups as { routes: { allowed_sources: { source_type: string }[] }[] }[];
        groups[0]!.routes[0]!.allowed_sources[0]!.source_type = 'oidc_jwks';
      },
    });
    const s = await signed(w);
    expectDeny(
      await verifyRequest(toRequest(s), {
        trust: w.trust,
        policy: w.policy,
        replayStore: new MemoryReplayStore(),
        clock: () => NOW,
      }),
      'source_type_mismatch',
      403,
    );
  });
  it('source trust domain mismatch', async () => {
    // other.local issuer signs for orders.search whose source demands other.local; claim example.local is
    // refused earlier by the issuer binding, so use the route source's own domain rule instead.
    const w = await createWorld({
      policyPatch: (doc) => {
        const groups = doc.route_groups as { routes: { allowed_sources: { trust_domain: string }[] }[] }[];
        groups[0]!.routes[0]!.allowed_sources[0]!.trust_domain = 'elsewhere.local';
      },
    });
    const s = await signed(w);
    expectDeny(
      await verifyRequest(toRequest(s), {
        trust: w.trust,
        policy: w.policy,
        replayStore: new MemoryReplayStore(),
        clock: () => NOW,
      }),
      'source_trust_domain_mismatch',
      403,
    );
  });
  it('source subject mismatch', async () => {
    const s = await signed(world, { claims: { sub: 'service:intruder' } });
    expectDeny(await verifyRequest(toRequest(s), context()), 'source_subject_mismatch', 403);
    const o = await signed(world, {
      issuerKey: world.other,
      kid: 'other-1',
      claims: { iss: OTHER_ISSUER, trust_domain: 'other.local', sub: 'user:x' },
    });
    expectDeny(await verifyRequest(toRequest(o), context()), 'source_subject_mismatch', 403);
  });
  it('attack: insufficient key binding (route minimum)', async () => {
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders/o1/approve',
      routeId: 'orders.secure',
    });
    expectDeny(await verifyRequest(toRequest(s), context()), 'insufficient_key_binding', 403);
  });
  it('attack: insufficient key binding (self-issued claim above what the issuer may vouch for)', async () => {
    const s = await signed(world, {
      method: 'POST',
      target: '/v1/orders/o1/approve',
      routeId: 'orders.secure',
      keyBinding: 'hardware_local',
    });
    expectDeny(await verifyRequest(toRequest(s), context()), 'insufficient_key_binding', 403);
  });
  it('context policy', async () => {
    const base = {
      method: 'POST',
      target: '/v1/orders/ord_1/refund',
      routeId: 'orders.refund',
      issuerKey: world.broker,
      requestKey: world.caller,
      kid: 'broker-1',
      keyBinding: 'attested_workload' as const,
    };
    const provenance = {
      profile: 'trustplane-spiffe-spire-k8s-v1',
      posture: 'spiffe_svid_verified',
      spiffe_id: 'spiffe://example.local/ns/orders/sa/worker',
    };
    const claims = { iss: BROKER_ISSUER, sub: 'spiffe://example.local/ns/orders/sa/worker', provenance };
    const over = await signed(world, {
      ...base,
      claims: { ...claims, ctx: { purpose: 'refund', max_txn_value: '500.01' } },
    });
    expectDeny(await verifyRequest(toRequest(over), context()), 'context_policy_mismatch', 403);
    const purpose = await signed(world, {
      ...base,
      claims: { ...claims, ctx: { purpose: 'other', max_txn_value: '1' } },
    });
    expectDeny(await verifyRequest(toRequest(purpose), context()), 'context_policy_mismatch', 403);
    const posture = await signed(world, {
      ...base,
      claims: {
        ...claims,
        ctx: { purpose: 'refund', max_txn_value: '1' },
        provenance: { ...provenance, posture: 'none' },
      },
    });
    expectDeny(await verifyRequest(toRequest(posture), context()), 'provenance_policy_mismatch', 403);
    const td = await signed(world, {
      ...base,
      claims: {
        ...claims,
        ctx: { purpose: 'refund', max_txn_value: '1' },
        provenance: { ...provenance, spiffe_id: 'spiffe://evil.local/ns/orders/sa/worker' },
      },
    });
    expectDeny(await verifyRequest(toRequest(td), context()), 'provenance_policy_mismatch', 403);
  });
  it('revoked jti, subject and key', async () => {
    for (const entry of [
      { kind: 'jti', value: 'jti-revoked' },
      { kind: 'subject', value: 'service:orders-client' },
      { kind: 'key', value: 'caller-1' },
    ]) {
      const w = await createWorld({ policyPatch: (doc) => void (doc.revocations = [entry]) });
      const s = await signed(w, { claims: { jti: 'jti-revoked' } });
      const replayStore = new MemoryReplayStore();
      expectDeny(
        await verifyRequest(toRequest(s), {
          trust: w.trust,
          policy: w.policy,
          replayStore,
          clock: () => NOW,
        }),
        'revoked',
        403,
      );
      expect(replayStore.size).toBe(0);
    }
  });
});

describe('attack: stale bundle per freshness class', () => {
  it('bounded: 300 s allowed, 301 s stale', async () => {
    const w = await createWorld({ issuedAt: NOW - 301 });
    const s = await signed(w);
    const c = { trust: w.trust, policy: w.policy, replayStore: new MemoryReplayStore() };
    expectDeny(
      await verifyRequest(toRequest(s), { ...c, clock: () => NOW }),
      'stale_bundle_fail_closed',
      403,
    );
    expect((await verifyRequest(toRequest(s), { ...c, clock: () => NOW - 1 })).allowed).toBe(true);
  });
  it('realtime: 31 s stale', async () => {
    const w = await createWorld({ issuedAt: NOW - 31 });
    const s = await signed(w, { target: '/v1/orders/live', routeId: 'orders.live' });
    const c = { trust: w.trust, policy: w.policy, replayStore: new MemoryReplayStore() };
    expectDeny(
      await verifyRequest(toRequest(s), { ...c, clock: () => NOW }),
      'stale_bundle_fail_closed',
      403,
    );
  });
  it('offline-ok: a year-old bundle still serves its route, but not a bounded one', async () => {
    const w = await createWorld({ issuedAt: NOW - 365 * 86400 });
    const c = { trust: w.trust, policy: w.policy, replayStore: new MemoryReplayStore(), clock: () => NOW };
    const a = await signed(w, { target: '/v1/orders/archive', routeId: 'orders.archive' });
    expect((await verifyRequest(toRequest(a), c)).allowed).toBe(true);
    expectDeny(await verifyRequest(toRequest(await signed(w)), c), 'stale_bundle_fail_closed', 403);
  });
});

describe('attack: request tampering', () => {
  it('attack: tampered path (signed for one route, sent to another)', async () => {
    const s = await signed(world, { target: '/v1/orders/ord_1', routeId: 'orders.get' });
    expectDeny(
      await verifyRequest(toRequest(s, { url: `${ORIGIN}/v1/orders/ord_2` }), context()),
      'request_binding_mismatch',
      401,
    );
  });
  it('attack: tampered query', async () => {
    const s = await signed(world, { target: '/v1/orders/search?limit=10' });
    expectDeny(
      await verifyRequest(toRequest(s, { url: `${ORIGIN}/v1/orders/search?limit=1000` }), context()),
      'request_binding_mismatch',
      401,
    );
  });
  it('attack: tampered body', async () => {
    const s = await signedJson(world, '{"amount":"1.00"}');
    expectDeny(
      await verifyRequest(toRequest(s, {}, '{"amount":"9.00"}'), context()),
      'request_binding_mismatch',
      401,
    );
    // Without the advisory digest headers the proof itself fails.
    expectDeny(
      await verifyRequest(
        toRequest(
          s,
          { headers: { 'x-trustplane-body-sha256': null, 'x-trustplane-transcript-sha256': null } },
          '{"amount":"9.00"}',
        ),
        context(),
      ),
      'invalid_request_proof',
      401,
    );
  });
  it('attack: tampered covered header', async () => {
    const s = await signedJson(world, '{}');
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { 'content-type': 'text/plain' } }, '{}'), context()),
      'request_binding_mismatch',
      401,
    );
  });
  it('attack: nonce mismatch', async () => {
    const s = await signed(world, { nonce: 'nonce-a' });
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { 'x-trustplane-nonce': 'nonce-b' } }), context()),
      'request_binding_mismatch',
      401,
    );
  });
  it('attack: proof from another key', async () => {
    const s = await signed(world);
    const forged = await signProof(
      (
        await buildTranscript({
          method: 'GET',
          scheme: 'https',
          authority: 'orders.example',
          path: '/v1/orders/search',
          query: '',
          audience: 'orders-api',
          routeId: 'orders.search',
          coveredHeaders: ['x-trustplane-nonce'],
          headers: new Map(Object.entries(s.headers)),
          bodySha256: await bodySha256(''),
          passportJti: s.claims.jti,
          nonce: s.headers['x-trustplane-nonce']!,
          issuedAt: s.claims.iat,
          keyBinding: 'software',
        })
      ).digest,
      world.other,
    );
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { 'x-trustplane-proof': forged } }), context()),
      'invalid_request_proof',
      401,
    );
  });
  it('covered headers must include what the route requires', async () => {
    const s = await signed(world, {
      target: '/v1/tenants/t1/orders',
      routeId: 'orders.tenant',
      headers: { 'x-tenant-id': 't1' },
    });
    expectDeny(await verifyRequest(toRequest(s), context()), 'insufficient_covered_headers', 401);
    const ok = await signed(world, {
      target: '/v1/tenants/t1/orders',
      routeId: 'orders.tenant',
      headers: { 'x-tenant-id': 't1' },
      cover: ['x-tenant-id'],
    });
    expect((await verifyRequest(toRequest(ok), context())).allowed).toBe(true);
    const swapped = await signed(world, {
      target: '/v1/tenants/t1/orders',
      routeId: 'orders.tenant',
      headers: { 'x-tenant-id': 't1' },
      cover: ['x-tenant-id'],
    });
    expectDeny(
      await verifyRequest(toRequest(swapped, { headers: { 'x-tenant-id': 't2' } }), context()),
      'request_binding_mismatch',
      401,
    );
  });
});

describe('trust material expiry at run time', () => {
  it('trust material that expires while loaded stops admitting requests', async () => {
    const s = await signed(world);
    const expiring = { getIssuer: world.trust.getIssuer, expiresAt: NOW };
    expectDeny(
      await verifyRequest(toRequest(s), context({ trust: expiring })),
      'stale_bundle_fail_closed',
      403,
    );
    expect(store.size).toBe(0);
    const valid = { getIssuer: world.trust.getIssuer, expiresAt: NOW + 1 };
    expect((await verifyRequest(toRequest(s), context({ trust: valid }))).allowed).toBe(true);
  });
});

describe('unverified body (forward-auth)', () => {
  it('a request whose body the enforcement point cannot see is denied unless the route allows it', async () => {
    const body = '{"order_id":"ord_1"}';
    const s = await signedJson(world, body);
    // The forward-auth endpoint passes the caller's claimed body digest, marked unverified.
    const req = { ...(await rawRequest(s, '/v1/orders', '', body)), bodyUnverified: true };
    context();
    expectDeny(await verifyRequest(req, ctx), 'unverifiable_body', 403);
    expect(store.size).toBe(0);
    const permissive = await createWorld({
      policyPatch: (doc) => {
        const groups = doc.route_groups as {
          routes: { route_id: string; allow_unverified_body?: boolean }[];
        }[];
        for (const r of groups[0]!.routes) if (r.route_id === 'orders.create') r.allow_unverified_body = true;
      },
    });
    const p = await signedJson(permissive, body);
    const preq = { ...(await rawRequest(p, '/v1/orders', '', body)), bodyUnverified: true };
    const d = await verifyRequest(preq, {
      trust: permissive.trust,
      policy: permissive.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
    });
    expect(d).toMatchObject({ allowed: true, routeId: 'orders.create' });
  });
});

describe('attack: replay', () => {
  it('second use of a jti is denied', async () => {
    const s = await signed(world);
    context();
    expect((await verifyRequest(toRequest(s), ctx)).allowed).toBe(true);
    expectDeny(await verifyRequest(toRequest(s), ctx), 'jti_replay', 401);
  });
  it('a denied request never burns a jti', async () => {
    const s = await signed(world, { target: '/v1/orders/search?limit=10' });
    context();
    expectDeny(
      await verifyRequest(toRequest(s, { url: `${ORIGIN}/v1/orders/search?limit=99` }), ctx),
      'request_binding_mismatch',
      401,
    );
    expectDeny(
      await verifyRequest(toRequest(s, { headers: { 'x-trustplane-proof': 'A'.repeat(86) } }), ctx),
      'invalid_request_proof',
      401,
    );
    expect(store.size).toBe(0);
    expect((await verifyRequest(toRequest(s), ctx)).allowed).toBe(true);
  });
  it('attack: replay race: 50 concurrent identical requests, exactly one allowed', async () => {
    const s = await signed(world);
    context();
    const results = await Promise.all(Array.from({ length: 50 }, () => verifyRequest(toRequest(s), ctx)));
    expect(results.filter((d) => d.allowed)).toHaveLength(1);
    for (const d of results.filter((r) => !r.allowed)) expectDeny(d, 'jti_replay', 401);
  });
  it('a failing replay store fails closed', async () => {
    const failing: ReplayStore = { consume: () => Promise.reject(new Error('ECONNREFUSED')) };
    const s = await signed(world);
    expectDeny(
      await verifyRequest(toRequest(s), context({ replayStore: failing })),
      'replay_store_unavailable',
      503,
    );
  });
  it('a replay store that lost consumed jtis: its own refusal (503 replay_store_amnesia) is the answer', async () => {
    let asked = 0;
    const forgetful: ReplayStore = {
      consume: () => {
        asked++;
        return Promise.reject(new TrustplaneError('replay_store_amnesia', 'replay store lost consumed jtis'));
      },
    };
    const s = await signed(world);
    expectDeny(
      await verifyRequest(toRequest(s), context({ replayStore: forgetful })),
      'replay_store_amnesia',
      503,
    );
    expect(asked).toBe(1);
  });
});

afterAll(() => {
  // Every code the verifier can produce must have been produced above.
  const notFromVerifier = new Set<ReasonCode>([
    // forward-auth's own refusal (test/adapter/forward-auth.test.ts, test/attacks).
    'ambiguous_request_query',
    // the adapter's body budget (test/attacks/memory-exhaustion.test.ts).
    'overloaded',
    'audit_unavailable',
    'policy_unavailable',
    'upstream_unavailable',
    'upstream_timeout',
    // the gRPC ext_authz listener's header budget (test/adapter/ext-authz-grpc.test.ts).
    'request_headers_too_large',
    // the kernel's MCP stage, after verifyRequest allowed (test/mcp).
    'mcp_invalid_jsonrpc',
    'mcp_method_denied',
    'mcp_tool_denied',
    'mcp_argument_denied',
    'mcp_resource_denied',
    'mcp_prompt_denied',
    'mcp_session_mismatch',
  ]);
  const verifierLayers = new Set(['request', 'passport', 'policy', 'proof', 'replay', 'dependency']);
  const expected = REASON_CODE_LIST.filter(
    (c) => verifierLayers.has(REASON_CODES[c].layer) && !notFromVerifier.has(c),
  );
  expect(expected.filter((c) => !seen.has(c))).toEqual([]);
});
