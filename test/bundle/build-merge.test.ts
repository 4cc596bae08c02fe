import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../pkg/authcore/signing-key.js';
import {
  buildPolicyBundle,
  buildTrustMaterial,
  loadPolicyBundle,
  mergeSource,
  removeSource,
  signDocument,
  type PolicyBundle,
  type TrustMaterial,
  type TrustMaterialIssuer,
} from '../../pkg/bundle/index.js';
import { NOW, route, sampleBundle, sampleTrustMaterial, softwareSource, spireSource } from './fixtures.js';

describe('buildPolicyBundle', () => {
  const config = {
    trust_domain: 'example.local',
    apis: [{ api_id: 'orders-api', audience: 'orders-api' }],
    route_groups: [
      { route_group_id: 'g', api_id: 'orders-api', routes: [route('orders.get', 'GET', '/v1/orders/{id}')] },
    ],
  };

  it('sets version, kind, revocations and issued_at', () => {
    expect(buildPolicyBundle(config, NOW)).toEqual({
      version: 'trustplane-bundle-v1',
      kind: 'policy_runtime_bundle',
      trust_domain: 'example.local',
      apis: config.apis,
      route_groups: config.route_groups,
      revocations: [],
      issued_at: NOW,
    });
  });

  it('maps defaults and expiry', () => {
    const doc = buildPolicyBundle(
      {
        ...config,
        defaults: {
          required_key_binding: 'remote_kms',
          freshness_class: 'realtime',
          max_staleness_seconds: 20,
        },
        expires_in_seconds: 3600,
        policy_version: '2027.1',
      },
      NOW,
    );
    expect(doc).toMatchObject({
      default_required_key_binding: 'remote_kms',
      default_freshness_class: 'realtime',
      default_max_staleness_seconds: 20,
      expires_at: NOW + 3600,
      policy_version: '2027.1',
    });
  });

  it('builds a bundle that signs and loads', async () => {
    const key = await generateSigningKey();
    const signed = await signDocument(buildPolicyBundle(config, NOW), key, { issuer: 'ops', kid: 'k1' });
    const policy = await loadPolicyBundle(signed, { signers: [{ kid: 'k1', key: key.publicKey }] });
    expect(policy.routeTable.resolve('GET', '/v1/orders/9')?.params.id).toBe('9');
  });

  it('rejects unknown config keys and invalid content with a path', () => {
    expect(() => buildPolicyBundle({ ...config, defualts: {} } as never, NOW)).toThrow(
      expect.objectContaining({ reason: 'invalid_bundle', message: expect.stringContaining('defualts') }),
    );
    const bad = structuredClone(config);
    bad.route_groups[0]!.api_id = 'missing';
    expect(() => buildPolicyBundle(bad, NOW)).toThrow(
      expect.objectContaining({
        reason: 'invalid_bundle',
        message: expect.stringContaining('route_groups[0].api_id'),
      }),
    );
  });

  it('rejects a bad clock', () => {
    expect(() => buildPolicyBundle(config, 1.5)).toThrow(RangeError);
    expect(() => buildPolicyBundle(config, -1)).toThrow(RangeError);
  });
});

describe('buildTrustMaterial', () => {
  it('sets version, kind and times', async () => {
    const { doc } = await sampleTrustMaterial();
    const built = buildTrustMaterial(
      { trust_domain: 'example.local', issuers: doc.issuers, expires_in_seconds: 60 },
      NOW,
    );
    expect(built).toEqual({
      version: 'trustplane-trust-material-v1',
      kind: 'trust_material',
      trust_domain: 'example.local',
      issued_at: NOW,
      expires_at: NOW + 60,
      issuers: doc.issuers,
    });
  });
  it('rejects an invalid issuer', () => {
    expect(() =>
      buildTrustMaterial(
        { issuers: [{ issuer: 'x', trust_domain: 'example.local', source_type: 'software_jwks', keys: [] }] },
        NOW,
      ),
    ).toThrow(
      expect.objectContaining({
        reason: 'invalid_bundle',
        message: expect.stringContaining('issuers[0].keys'),
      }),
    );
  });
});

async function signedTrust(): Promise<{ doc: TrustMaterial; newKeyX: string }> {
  const { doc } = await sampleTrustMaterial();
  const signer = await generateSigningKey();
  const newKey = await generateSigningKey();
  return { doc: await signDocument(doc, signer, { issuer: 'ops', kid: 'k' }), newKeyX: newKey.publicKey.x };
}

describe('mergeSource: trust material', () => {
  it('adds a new issuer, returns a new unsigned document, leaves the input untouched', async () => {
    const { doc, newKeyX } = await signedTrust();
    const before = structuredClone(doc);
    const issuer: TrustMaterialIssuer = {
      issuer: 'https://broker.example.local',
      trust_domain: 'example.local',
      source_type: 'trustplane_broker',
      keys: [{ kty: 'OKP', crv: 'Ed25519', x: newKeyX, kid: 'b-1' }],
    };
    const next = mergeSource(doc, issuer);
    expect(doc).toEqual(before);
    expect(next).not.toBe(doc);
    expect(next.issuers.map((i) => i.issuer)).toEqual([...doc.issuers.map((i) => i.issuer), issuer.issuer]);
    expect(next.signature).toBeUndefined();
    expect(next.signed_by).toBeUndefined();
    expect(next.issued_at).toBe(doc.issued_at);
  });

  it('adds keys to an existing issuer', async () => {
    const { doc, newKeyX } = await signedTrust();
    const existing = doc.issuers[0]!;
    const next = mergeSource(doc, {
      ...existing,
      keys: [{ kty: 'OKP', crv: 'Ed25519', x: newKeyX, kid: 'sw-2' }],
    });
    expect(next.issuers[0]!.keys.map((k) => k.kid)).toEqual(['sw-old', 'sw-1', 'sw-2']);
    expect(doc.issuers[0]!.keys).toHaveLength(2);
  });

  it('a duplicate issuer + kid is a conflict unless replace', async () => {
    const { doc, newKeyX } = await signedTrust();
    const existing = doc.issuers[0]!;
    const addition = {
      ...existing,
      keys: [{ kty: 'OKP' as const, crv: 'Ed25519' as const, x: newKeyX, kid: 'sw-1' }],
    };
    expect(() => mergeSource(doc, addition)).toThrow(
      expect.objectContaining({ reason: 'bundle_conflict', name: 'TrustplaneError' }),
    );
    const replaced = mergeSource(doc, addition, { replace: true });
    expect(replaced.issuers[0]!.keys.find((k) => k.kid === 'sw-1')!.x).toBe(newKeyX);
    expect(replaced.issuers[0]!.keys).toHaveLength(2);
  });

  it('different issuer attributes are a conflict unless replace', async () => {
    const { doc } = await signedTrust();
    const existing = doc.issuers[0]!;
    const addition = { ...existing, source_type: 'oidc_jwks', keys: [] as never[] };
    addition.keys = existing.keys.slice(0, 1) as never[];
    expect(() => mergeSource(doc, addition)).toThrow(expect.objectContaining({ reason: 'bundle_conflict' }));
    expect(mergeSource(doc, addition, { replace: true }).issuers[0]!.source_type).toBe('oidc_jwks');
  });

  it('rejects an invalid addition', async () => {
    const { doc } = await signedTrust();
    expect(() => mergeSource(doc, { ...doc.issuers[0]!, keys: [] })).toThrow(
      expect.objectContaining({ reason: 'invalid_bundle' }),
    );
  });
});

describe('removeSource: trust material', () => {
  it('removes an issuer', async () => {
    const { doc } = await signedTrust();
    const next = removeSource(doc, { issuer: 'https://issuer.example/spire' });
    expect(next.issuers.map((i) => i.issuer)).toEqual(['https://issuer.example/software-jwks']);
    expect(next.signature).toBeUndefined();
    expect(doc.issuers).toHaveLength(2);
  });
  it('removes one kid', async () => {
    const { doc } = await signedTrust();
    const next = removeSource(doc, { issuer: 'https://issuer.example/software-jwks', kid: 'sw-old' });
    expect(next.issuers[0]!.keys.map((k) => k.kid)).toEqual(['sw-1']);
  });
  it('a missing issuer or kid is bundle_source_not_found', async () => {
    const { doc } = await signedTrust();
    expect(() => removeSource(doc, { issuer: 'https://nope.example' })).toThrow(
      expect.objectContaining({ reason: 'bundle_source_not_found' }),
    );
    expect(() => removeSource(doc, { issuer: 'https://issuer.example/spire', kid: 'nope' })).toThrow(
      expect.objectContaining({ reason: 'bundle_source_not_found' }),
    );
  });
  it("refuses to remove an issuer's last key", async () => {
    const { doc } = await signedTrust();
    expect(() => removeSource(doc, { issuer: 'https://issuer.example/spire', kid: 'spire-1' })).toThrow(
      expect.objectContaining({
        reason: 'bundle_conflict',
        message: expect.stringContaining('remove the issuer instead'),
      }),
    );
  });
});

async function signedBundle(): Promise<PolicyBundle> {
  const signer = await generateSigningKey();
  return signDocument(sampleBundle(), signer, { issuer: 'ops', kid: 'k' });
}

describe('mergeSource: policy bundle', () => {
  const oidc = {
    source_type: 'oidc_jwks',
    issuer: 'https://issuer.example/oidc',
    trust_domain: 'example.local',
    subject_exact: 'system:serviceaccount:automation:orders-runner',
  };

  it('adds an allowed source to a route, unsigned, input untouched', async () => {
    const doc = await signedBundle();
    const before = structuredClone(doc);
    const next = mergeSource(doc, { routeId: 'orders.get', source: oidc });
    expect(doc).toEqual(before);
    expect(next.route_groups[0]!.routes[1]!.allowed_sources).toEqual([softwareSource, oidc]);
    expect(next.signature).toBeUndefined();
    expect(next.signed_by).toBeUndefined();
  });

  it('a duplicate selector is a conflict unless replace', async () => {
    const doc = await signedBundle();
    const stricter = { ...softwareSource, required_key_binding: 'hardware_local' as const };
    expect(() => mergeSource(doc, { routeId: 'orders.get', source: stricter })).toThrow(
      expect.objectContaining({ reason: 'bundle_conflict' }),
    );
    const next = mergeSource(doc, { routeId: 'orders.get', source: stricter }, { replace: true });
    expect(next.route_groups[0]!.routes[1]!.allowed_sources).toEqual([stricter]);
  });

  it('subject_exact and subject_prefix are different selectors', async () => {
    const doc = await signedBundle();
    const { subject_exact: subject, ...rest } = softwareSource;
    const prefix = { ...rest, subject_prefix: subject! };
    expect(
      mergeSource(doc, { routeId: 'orders.get', source: prefix }).route_groups[0]!.routes[1]!.allowed_sources,
    ).toHaveLength(2);
  });

  it('an unknown route is bundle_route_missing', async () => {
    const doc = await signedBundle();
    expect(() => mergeSource(doc, { routeId: 'orders.delete', source: oidc })).toThrow(
      expect.objectContaining({ reason: 'bundle_route_missing', name: 'TrustplaneError' }),
    );
  });

  it('an invalid source is invalid_bundle', async () => {
    const doc = await signedBundle();
    expect(() =>
      mergeSource(doc, { routeId: 'orders.get', source: { ...oidc, subject_prefix: 'x' } }),
    ).toThrow(expect.objectContaining({ reason: 'invalid_bundle' }));
  });
});

describe('removeSource: policy bundle', () => {
  it('removes a source by selector', async () => {
    const doc = await signedBundle();
    const next = removeSource(doc, { routeId: 'orders.create', source: spireSource });
    expect(next.route_groups[1]!.routes[0]!.allowed_sources).toEqual([softwareSource]);
    expect(next.signature).toBeUndefined();
    expect(doc.route_groups[1]!.routes[0]!.allowed_sources).toHaveLength(2);
  });
  it('matches on the selector only, not on the other source fields', async () => {
    const doc = await signedBundle();
    const { required_key_binding: _r, ...selector } = spireSource;
    expect(
      removeSource(doc, { routeId: 'orders.create', source: selector }).route_groups[1]!.routes[0]!
        .allowed_sources,
    ).toHaveLength(1);
  });
  it('a missing source is bundle_source_not_found', async () => {
    const doc = await signedBundle();
    expect(() =>
      removeSource(doc, {
        routeId: 'orders.create',
        source: { ...spireSource, subject_prefix: 'spiffe://example.local/other/' },
      }),
    ).toThrow(expect.objectContaining({ reason: 'bundle_source_not_found' }));
  });
  it('refuses to remove the last allowed source of a route', async () => {
    const doc = await signedBundle();
    expect(() => removeSource(doc, { routeId: 'orders.get', source: softwareSource })).toThrow(
      expect.objectContaining({
        reason: 'bundle_conflict',
        message:
          'refusing to remove the last allowed source of route "orders.get"; a route needs at least one',
      }),
    );
  });
  it('an unknown route is bundle_route_missing', async () => {
    const doc = await signedBundle();
    expect(() => removeSource(doc, { routeId: 'nope', source: softwareSource })).toThrow(
      expect.objectContaining({ reason: 'bundle_route_missing' }),
    );
  });
});
