import { describe, expect, it } from 'vitest';
import {
  parsePolicyBundle,
  parseTrustMaterial,
  policyBundleSchema,
  type PolicyBundle,
  type TrustMaterial,
} from '../../pkg/bundle/index.js';
import { route, sampleBundle, sampleTrustMaterial, softwareSource, sourceRulesVector } from './fixtures.js';

function issueOf(value: unknown): { path: string; message: string } {
  const r = policyBundleSchema.safeParse(value);
  if (r.success) throw new Error('expected a failure');
  const issue = r.error.issues[0]!;
  return { path: issue.path.join('.'), message: issue.message };
}

function expectInvalidBundle(value: unknown, pathPart: string): void {
  expect(() => parsePolicyBundle(value)).toThrow(expect.objectContaining({ reason: 'invalid_bundle' }));
  try {
    parsePolicyBundle(value);
  } catch (e) {
    expect((e as Error).message).toContain(pathPart);
  }
}

describe('conformance: bundle-v1.source-rules', () => {
  const vector = sourceRulesVector();

  it('parses the policy_bundle exactly', () => {
    const doc = parsePolicyBundle(vector.policy_bundle);
    expect(doc.version).toBe('trustplane-bundle-v1');
    expect(doc.kind).toBe('policy_runtime_bundle');
    expect(doc.trust_domain).toBe('example.local');
    expect(doc.route_groups[0]!.routes[0]!.route_id).toBe('orders.search');
  });

  it('round-trips: the parsed document deep-equals the input', () => {
    const doc = parsePolicyBundle(vector.policy_bundle);
    expect(JSON.parse(JSON.stringify(doc))).toEqual(vector.policy_bundle);
    expect(JSON.stringify(doc)).toBe(JSON.stringify(vector.policy_bundle));
  });

  it('yields expected_source_types in order', () => {
    const doc = parsePolicyBundle(vector.policy_bundle);
    const types = doc.route_groups.flatMap((g) =>
      g.routes.flatMap((r) => r.allowed_sources.map((s) => s.source_type)),
    );
    expect(types).toEqual(vector.expected_source_types);
    expect(types).toEqual(['software_jwks', 'oidc_jwks', 'spiffe_spire']);
  });

  it('keeps source-level context and provenance policies', () => {
    const sources = parsePolicyBundle(vector.policy_bundle).route_groups[0]!.routes[0]!.allowed_sources;
    expect(sources[1]!.context_policy).toEqual({
      required_tool_name: 'orders-runner',
      required_workflow_id: 'orders-search',
    });
    expect(sources[2]!.subject_prefix).toBe('spiffe://example.local/ns/orders/sa/');
    expect(sources[2]!.provenance_policy?.required_posture).toBe('spiffe_svid_verified');
  });
});

describe('policy bundle schema rejects', () => {
  const mutate = (fn: (b: PolicyBundle & Record<string, unknown>) => void): unknown => {
    const b = sampleBundle() as PolicyBundle & Record<string, unknown>;
    fn(b);
    return b;
  };
  const firstRoute = (b: PolicyBundle) => b.route_groups[0]!.routes[0]! as Record<string, unknown>;

  it('accepts the sample', () => {
    expect(parsePolicyBundle(sampleBundle()).route_groups).toHaveLength(2);
  });

  const cases: [string, unknown, string][] = [
    ['an unknown top-level key', mutate((b) => (b.extra = 1)), 'extra'],
    ['an unknown route key', mutate((b) => (firstRoute(b).priority = 1)), 'priority'],
    [
      'an unknown source key',
      mutate((b) => Object.assign(firstRoute(b).allowed_sources as object[], [{ ...softwareSource, x: 1 }])),
      'allowed_sources',
    ],
    [
      'a wrong version',
      mutate((b) => ((b as Record<string, unknown>).version = 'trustplane-bundle-v2')),
      'version',
    ],
    ['a wrong kind', mutate((b) => ((b as Record<string, unknown>).kind = 'bundle')), 'kind'],
    ['a lowercase method', mutate((b) => (firstRoute(b).method = 'get')), 'method'],
    [
      'a template without leading slash',
      mutate((b) => (firstRoute(b).path_template = 'v1/orders')),
      'path_template',
    ],
    ['a trailing slash', mutate((b) => (firstRoute(b).path_template = '/v1/orders/')), 'path_template'],
    ['an empty segment', mutate((b) => (firstRoute(b).path_template = '/v1//orders')), 'path_template'],
    [
      'a partial-segment param',
      mutate((b) => (firstRoute(b).path_template = '/v1/orders-{id}')),
      'path_template',
    ],
    ['a dot segment', mutate((b) => (firstRoute(b).path_template = '/v1/../orders')), 'path_template'],
    ['an encoded slash', mutate((b) => (firstRoute(b).path_template = '/v1/a%2Fb')), 'path_template'],
    [
      'a repeated param name',
      mutate((b) => (firstRoute(b).path_template = '/v1/{id}/{id}')),
      'path_template',
    ],
    [
      'a query in the template',
      mutate((b) => (firstRoute(b).path_template = '/v1/orders?x=1')),
      'path_template',
    ],
    ['no allowed sources', mutate((b) => (firstRoute(b).allowed_sources = [])), 'allowed_sources'],
    [
      'both subject_exact and subject_prefix',
      mutate((b) => (firstRoute(b).allowed_sources = [{ ...softwareSource, subject_prefix: 'service:' }])),
      'subject_exact',
    ],
    [
      'neither subject_exact nor subject_prefix',
      mutate((b) => {
        const { subject_exact: _s, ...rest } = softwareSource;
        firstRoute(b).allowed_sources = [rest];
      }),
      'subject_exact',
    ],
    [
      'an empty subject_prefix',
      mutate(
        (b) =>
          (firstRoute(b).allowed_sources = [
            { ...softwareSource, subject_exact: undefined, subject_prefix: '' },
          ]),
      ),
      'subject_prefix',
    ],
    [
      'a bad source_type',
      mutate((b) => (firstRoute(b).allowed_sources = [{ ...softwareSource, source_type: 'Software-JWKS' }])),
      'source_type',
    ],
    [
      'an unknown key binding',
      mutate((b) => (firstRoute(b).required_key_binding = 'tpm')),
      'required_key_binding',
    ],
    [
      'an unknown freshness class',
      mutate((b) => (firstRoute(b).freshness_class = 'eventually')),
      'freshness_class',
    ],
    [
      'a zero max_staleness_seconds',
      mutate((b) => (firstRoute(b).max_staleness_seconds = 0)),
      'max_staleness_seconds',
    ],
    [
      'an uppercase covered header',
      mutate((b) => (firstRoute(b).covered_headers = ['Content-Type'])),
      'covered_headers',
    ],
    [
      'duplicate covered headers',
      mutate((b) => (firstRoute(b).covered_headers = ['a', 'a'])),
      'covered_headers',
    ],
    [
      'a non-boolean allow_unverified_body',
      mutate((b) => (firstRoute(b).allow_unverified_body = 'yes')),
      'allow_unverified_body',
    ],
    [
      'a non-http base_url',
      mutate((b) => ((b.apis[0] as Record<string, unknown>).base_url = 'ftp://orders.example')),
      'base_url',
    ],
    [
      'a non-decimal max_txn_value',
      mutate(
        (b) =>
          (firstRoute(b).allowed_sources = [{ ...softwareSource, context_policy: { max_txn_value: '1e9' } }]),
      ),
      'max_txn_value',
    ],
    [
      'an unknown context policy key',
      mutate(
        (b) =>
          (firstRoute(b).allowed_sources = [{ ...softwareSource, context_policy: { required_role: 'x' } }]),
      ),
      'context_policy',
    ],
    [
      'an unknown revocation kind',
      mutate((b) => (b.revocations = [{ kind: 'ip', value: '1.2.3.4' } as never])),
      'revocations',
    ],
    ['a fractional issued_at', mutate((b) => (b.issued_at = 1.5)), 'issued_at'],
    ['expires_at not after issued_at', mutate((b) => (b.expires_at = b.issued_at)), 'expires_at'],
    ['an uppercase trust domain', mutate((b) => (b.trust_domain = 'Example.Local')), 'trust_domain'],
    [
      'a bad signature format',
      mutate((b) => ((b as Record<string, unknown>).signature = { format: 'rsa', value: 'x' })),
      'signature',
    ],
    [
      'a short ed25519 signature value',
      mutate((b) => (b.signature = { format: 'ed25519-jcs-v1', value: 'AAAA' })),
      'signature',
    ],
    [
      'signed_by alg RS256',
      mutate((b) => ((b as Record<string, unknown>).signed_by = { issuer: 'x', kid: 'k', alg: 'RS256' })),
      'signed_by',
    ],
  ];
  for (const [name, value, pathPart] of cases) {
    it(name, () => expectInvalidBundle(value, pathPart));
  }
});

describe('policy bundle cross-references', () => {
  it('duplicate route ids across groups', () => {
    const b = sampleBundle();
    b.route_groups[1]!.routes[0]!.route_id = 'orders.search';
    expect(issueOf(b)).toEqual({
      path: 'route_groups.1.routes.0.route_id',
      message: 'duplicate route_id (route ids are unique across the bundle)',
    });
  });
  it('a route group naming an unknown api', () => {
    const b = sampleBundle();
    b.route_groups[1]!.api_id = 'billing-api';
    expect(issueOf(b)).toEqual({
      path: 'route_groups.1.api_id',
      message: 'api_id does not name an entry of apis',
    });
  });
  it('the same method and path twice', () => {
    const b = sampleBundle();
    b.route_groups[1]!.routes.push(route('orders.search2', 'GET', '/v1/orders/search'));
    expect(issueOf(b)).toEqual({
      path: 'route_groups.1.routes.1.path_template',
      message: 'method and path_template collide with route "orders.search"',
    });
  });
  it('templates differing only in parameter names', () => {
    const b = sampleBundle();
    b.route_groups[1]!.routes.push(route('orders.get2', 'GET', '/v1/orders/{id}'));
    expect(issueOf(b).message).toBe('method and path_template collide with route "orders.get"');
  });
  it('allows the same path with another method', () => {
    const b = sampleBundle();
    b.route_groups[1]!.routes.push(route('orders.delete', 'DELETE', '/v1/orders/{order_id}'));
    expect(parsePolicyBundle(b).route_groups[1]!.routes).toHaveLength(2);
  });
  it('duplicate api ids and group ids', () => {
    const b = sampleBundle();
    b.apis.push({ api_id: 'orders-api', audience: 'other' });
    expect(issueOf(b)).toEqual({ path: 'apis.1.api_id', message: 'duplicate api_id' });
    const c = sampleBundle();
    c.route_groups[1]!.route_group_id = 'orders-read';
    expect(issueOf(c)).toEqual({
      path: 'route_groups.1.route_group_id',
      message: 'duplicate route_group_id',
    });
  });
  it('a scope naming an unknown route group', () => {
    const b = sampleBundle({ scopes: [{ scope: 'orders:admin', route_group_id: 'orders-admin' }] });
    expect(issueOf(b)).toEqual({
      path: 'scopes.0.route_group_id',
      message: 'route_group_id does not name an entry of route_groups',
    });
  });
});

describe('trust material schema', () => {
  const mutate = async (fn: (d: TrustMaterial & Record<string, unknown>) => void): Promise<unknown> => {
    const { doc } = await sampleTrustMaterial();
    fn(doc as TrustMaterial & Record<string, unknown>);
    return doc;
  };
  const expectInvalid = (value: unknown, pathPart: string) => {
    let error: unknown;
    try {
      parseTrustMaterial(value);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ reason: 'invalid_bundle' });
    expect((error as Error).message).toContain(pathPart);
  };

  it('accepts and round-trips the sample', async () => {
    const { doc } = await sampleTrustMaterial();
    expect(parseTrustMaterial(doc)).toEqual(doc);
  });

  it('accepts SPIFFE bundles and receipt keys', async () => {
    const doc = await mutate((d) => {
      d.spiffe_bundles = [
        {
          trust_domain: 'example.local',
          keys: [
            { use: 'x509-svid', kty: 'EC', crv: 'P-256', x5c: ['MIIBAA=='] },
            { use: 'jwt-svid', kty: 'OKP', crv: 'Ed25519', kid: 'jwt-1', x: d.issuers[0]!.keys[0]!.x },
          ],
          spiffe_sequence: 3,
          spiffe_refresh_hint: 60,
        },
      ];
      d.receipt_keys = [
        { kid: 'r-1', kty: 'OKP', crv: 'Ed25519', x: d.issuers[0]!.keys[0]!.x, adapter: 'edge' },
      ];
    });
    expect(parseTrustMaterial(doc).spiffe_bundles?.[0]?.keys).toHaveLength(2);
  });

  const x = 'A'.repeat(43);
  const cases: [string, (d: TrustMaterial & Record<string, unknown>) => void, string][] = [
    ['an unknown key', (d) => (d.extra = true), 'extra'],
    ['a non-canonical x (low bits set)', (d) => (d.issuers[0]!.keys[0]!.x = `${'A'.repeat(42)}B`), 'x'],
    ['a short x', (d) => (d.issuers[0]!.keys[0]!.x = 'AAAA'), 'x'],
    ['padded x', (d) => (d.issuers[0]!.keys[0]!.x = `${x.slice(0, 42)}=`), 'x'],
    ['a non-Ed25519 key', (d) => ((d.issuers[0]!.keys[0] as Record<string, unknown>).crv = 'X25519'), 'crv'],
    ['a private key member', (d) => ((d.issuers[0]!.keys[0] as Record<string, unknown>).d = x), 'd'],
    ['an RS256 alg', (d) => ((d.issuers[0]!.keys[0] as Record<string, unknown>).alg = 'RS256'), 'alg'],
    ['exp not after nbf', (d) => Object.assign(d.issuers[0]!.keys[0]!, { nbf: 10, exp: 10 }), 'exp'],
    ['no keys', (d) => (d.issuers[0]!.keys = []), 'keys'],
    ['a duplicate kid', (d) => (d.issuers[0]!.keys[1]!.kid = 'sw-old'), 'kid'],
    ['a duplicate issuer', (d) => (d.issuers[1]!.issuer = d.issuers[0]!.issuer), 'issuer'],
    [
      'an unknown max_key_binding',
      (d) => ((d.issuers[0] as Record<string, unknown>).max_key_binding = 'root'),
      'max_key_binding',
    ],
    [
      'two x5c certificates for x509-svid',
      (d) =>
        (d.spiffe_bundles = [
          {
            trust_domain: 'example.local',
            keys: [{ use: 'x509-svid', kty: 'EC', x5c: ['MIIBAA==', 'MIIBAA=='] }],
          },
        ]),
      'x5c',
    ],
    [
      'x509-svid without x5c',
      (d) =>
        (d.spiffe_bundles = [{ trust_domain: 'example.local', keys: [{ use: 'x509-svid', kty: 'EC' }] }]),
      'x5c',
    ],
    [
      'jwt-svid without kid',
      (d) => (d.spiffe_bundles = [{ trust_domain: 'example.local', keys: [{ use: 'jwt-svid', kty: 'EC' }] }]),
      'kid',
    ],
    [
      'a SPIFFE bundle without keys',
      (d) => (d.spiffe_bundles = [{ trust_domain: 'example.local', keys: [] }]),
      'keys',
    ],
    [
      'a non-base64 x5c',
      (d) =>
        (d.spiffe_bundles = [
          { trust_domain: 'example.local', keys: [{ use: 'x509-svid', kty: 'EC', x5c: ['not base64!'] }] },
        ]),
      'x5c',
    ],
    [
      'an unknown SPIFFE use',
      (d) =>
        (d.spiffe_bundles = [
          { trust_domain: 'example.local', keys: [{ use: 'wit-svid' as never, kty: 'EC', kid: 'k' }] },
        ]),
      'use',
    ],
    [
      'duplicate receipt kids',
      (d) =>
        (d.receipt_keys = [1, 2].map(() => ({ kid: 'r', kty: 'OKP' as const, crv: 'Ed25519' as const, x }))),
      'receipt_keys',
    ],
  ];
  for (const [name, fn, pathPart] of cases) {
    it(`rejects ${name}`, async () => expectInvalid(await mutate(fn), pathPart));
  }
});
