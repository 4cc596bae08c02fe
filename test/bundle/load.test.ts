import { describe, expect, it } from 'vitest';
import { issuePassport } from '../../pkg/authcore/issue-passport.js';
import { generateSigningKey } from '../../pkg/authcore/signing-key.js';
import { verifyPassport } from '../../pkg/authcore/verify-passport.js';
import {
  defaultMaxKeyBinding,
  loadPolicyBundle,
  loadTrustMaterial,
  MAX_DOCUMENT_BYTES,
  parsePolicyBundleText,
  parseTrustMaterialText,
  signDocument,
  type DocumentSigner,
} from '../../pkg/bundle/index.js';
import { utf8 } from '../../pkg/internal/bytes.js';
import { NOW, sampleBundle, sampleTrustMaterial, sourceRulesVector } from './fixtures.js';

const DOC_SIGNER = { issuer: 'ops@example.local', kid: 'docs-1' };

async function docKey() {
  const key = await generateSigningKey();
  const signers: DocumentSigner[] = [{ kid: DOC_SIGNER.kid, key: key.publicKey }];
  return { key, signers };
}

describe('loadTrustMaterial', () => {
  it('verifies, imports keys once and serves as an IssuerRegistry for verifyPassport', async () => {
    const { key, signers } = await docKey();
    const { doc, issuerKey } = await sampleTrustMaterial();
    const trust = await loadTrustMaterial(await signDocument(doc, key, DOC_SIGNER), { signers });
    expect(trust.signed).toBe(true);
    expect(trust.signerKid).toBe('docs-1');
    expect(trust.issuedAt).toBe(NOW);
    const issuer = trust.getIssuer('https://issuer.example/software-jwks')!;
    expect(issuer.trustDomain).toBe('example.local');
    expect(issuer.sourceType).toBe('software_jwks');
    expect(issuer.maxKeyBinding).toBe('software');
    expect([...issuer.keys.keys()]).toEqual(['sw-old', 'sw-1']);
    expect(issuer.keys.get('sw-old')).toMatchObject({ kid: 'sw-old', exp: NOW + 100 });
    expect(issuer.keys.get('sw-1')!.key.x).toBe(issuerKey.publicKey.x);
    expect(trust.getIssuer('https://issuer.example/spire')!.maxKeyBinding).toBe('attested_workload');
    expect(trust.getIssuer('https://unknown.example')).toBeUndefined();
    expect(trust.getIssuer('__proto__')).toBeUndefined();

    const caller = await generateSigningKey();
    const token = await issuePassport(
      {
        iss: 'https://issuer.example/software-jwks',
        sub: 'service:orders-client',
        aud: 'orders-api',
        iat: NOW,
        exp: NOW + 300,
        jti: 'jti-1',
        trust_domain: 'example.local',
        cnf: { kid: 'caller', key_binding: 'hardware_local', public_key_b64url: caller.publicKey.x },
      },
      issuerKey,
      { kid: 'sw-1' },
    );
    const verified = await verifyPassport(token, { issuers: trust, audience: 'orders-api', now: NOW + 1 });
    expect(verified.claims.sub).toBe('service:orders-client');
    // A software_jwks issuer without max_key_binding vouches for software at most.
    expect(verified.effectiveKeyBinding).toBe('software');
  });

  it('honours an explicit max_key_binding', async () => {
    const { doc } = await sampleTrustMaterial();
    doc.issuers[1]!.max_key_binding = 'remote_kms';
    const trust = await loadTrustMaterial(doc, { signers: [], allowUnsigned: true });
    expect(trust.getIssuer('https://issuer.example/spire')!.maxKeyBinding).toBe('remote_kms');
    expect(defaultMaxKeyBinding('software_jwks')).toBe('software');
    expect(defaultMaxKeyBinding('spiffe_spire')).toBe('attested_workload');
    // Fail closed: OIDC and unknown source types vouch for software only unless they say more.
    expect(defaultMaxKeyBinding('oidc_jwks')).toBe('software');
    expect(defaultMaxKeyBinding('custom_source')).toBe('software');
  });

  it('freezes the result, its maps and its document', async () => {
    const { doc } = await sampleTrustMaterial();
    const trust = await loadTrustMaterial(doc, { signers: [], allowUnsigned: true });
    expect(trust.signed).toBe(false);
    expect(Object.isFrozen(trust)).toBe(true);
    expect(Object.isFrozen(trust.document.issuers[0]!.keys[0])).toBe(true);
    expect('set' in trust.issuers).toBe(false);
    expect(() =>
      ((trust.issuers as unknown as Map<string, unknown>).set as unknown as () => void)(),
    ).toThrow();
    expect(Object.isFrozen(trust.getIssuer('https://issuer.example/spire'))).toBe(true);
    // The caller's input is neither frozen nor shared.
    expect(Object.isFrozen(doc)).toBe(false);
    expect(trust.document).not.toBe(doc);
  });

  it('imports receipt keys and indexes SPIFFE bundles', async () => {
    const { doc, issuerKey } = await sampleTrustMaterial();
    doc.receipt_keys = [
      { kid: 'r-1', kty: 'OKP', crv: 'Ed25519', x: issuerKey.publicKey.x, adapter: 'edge' },
    ];
    doc.spiffe_bundles = [
      { trust_domain: 'example.local', keys: [{ use: 'x509-svid', kty: 'EC', x5c: ['MIIB'] }] },
    ];
    const trust = await loadTrustMaterial(doc, { signers: [], allowUnsigned: true });
    expect(trust.receiptKeys.get('r-1')).toMatchObject({ kid: 'r-1', adapter: 'edge' });
    expect(trust.receiptKeys.get('r-1')!.key.x).toBe(issuerKey.publicKey.x);
    expect(trust.spiffeBundles.get('example.local')!.keys).toHaveLength(1);
  });

  it('rejects unsigned material without the dev flag', async () => {
    const { signers } = await docKey();
    const { doc } = await sampleTrustMaterial();
    await expect(loadTrustMaterial(doc, { signers })).rejects.toMatchObject({
      reason: 'unsigned_bundle_rejected',
    });
  });

  it('rejects material signed by another key', async () => {
    const { signers } = await docKey();
    const other = await generateSigningKey();
    const { doc } = await sampleTrustMaterial();
    const signed = await signDocument(doc, other, DOC_SIGNER);
    await expect(loadTrustMaterial(signed, { signers })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
    });
  });

  it('attack: an issuer key swapped after signing', async () => {
    const { key, signers } = await docKey();
    const attacker = await generateSigningKey();
    const { doc } = await sampleTrustMaterial();
    const signed = structuredClone(await signDocument(doc, key, DOC_SIGNER));
    signed.issuers[0]!.keys[1]!.x = attacker.publicKey.x;
    await expect(loadTrustMaterial(signed, { signers })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
    });
  });

  it('reports a schema failure by path, without the payload', async () => {
    const { doc } = await sampleTrustMaterial();
    (doc.issuers[1]!.keys[0] as Record<string, unknown>).d = 'SECRET-PRIVATE-MATERIAL';
    const error = await loadTrustMaterial(doc, { signers: [], allowUnsigned: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      reason: 'invalid_bundle',
      name: 'TrustplaneError',
      details: { path: 'issuers[1].keys[0]' },
    });
    expect((error as Error).message).toBe(
      'invalid trust material at issuers[1].keys[0]: Unrecognized key: "d"',
    );
    expect((error as Error).message).not.toContain('SECRET');
  });

  it('refuses expired material when given now', async () => {
    const { doc } = await sampleTrustMaterial();
    doc.expires_at = NOW + 10;
    const options = { signers: [], allowUnsigned: true };
    await expect(loadTrustMaterial(doc, { ...options, now: NOW + 9 })).resolves.toMatchObject({
      expiresAt: NOW + 10,
    });
    await expect(loadTrustMaterial(doc, { ...options, now: NOW + 10 })).rejects.toMatchObject({
      reason: 'stale_bundle_fail_closed',
    });
  });

  it('rejects non-objects', async () => {
    for (const value of [null, 'text', 42, [], undefined]) {
      await expect(loadTrustMaterial(value, { signers: [], allowUnsigned: true })).rejects.toMatchObject({
        reason: 'invalid_bundle',
      });
    }
  });
});

describe('loadPolicyBundle', () => {
  it('loads the conformance vector only with the dev flag', async () => {
    const { signers } = await docKey();
    const vector = sourceRulesVector().policy_bundle;
    await expect(loadPolicyBundle(vector, { signers })).rejects.toMatchObject({
      reason: 'unsigned_bundle_rejected',
    });
    const policy = await loadPolicyBundle(vector, { signers, allowUnsigned: true });
    expect(policy.signed).toBe(false);
    expect(policy.trustDomain).toBe('example.local');
    const match = policy.routeTable.resolve('GET', '/v1/orders/search')!;
    expect(match.route.route_id).toBe('orders.search');
    expect(match.api.audience).toBe('orders-api');
    expect(match.routeGroupId).toBe('orders-read');
    expect(match.route.allowed_sources.map((s) => s.source_type)).toEqual(
      sourceRulesVector().expected_source_types,
    );
  });

  it('builds lookups from a signed bundle', async () => {
    const { key, signers } = await docKey();
    const signed = await signDocument(
      sampleBundle({ policy_version: 'v7', expires_at: NOW + 3600 }),
      key,
      DOC_SIGNER,
    );
    const policy = await loadPolicyBundle(signed, { signers });
    expect(policy).toMatchObject({
      signed: true,
      signerKid: 'docs-1',
      policyVersion: 'v7',
      issuedAt: NOW,
      expiresAt: NOW + 3600,
    });
    expect(policy.apisById.get('orders-api')!.base_url).toBe('https://orders.example');
    expect([...policy.routesById.keys()]).toEqual(['orders.search', 'orders.get', 'orders.create']);
    expect(policy.routesById.get('orders.create')!.route.required_key_binding).toBe('hardware_local');
    expect(policy.routeTable.resolveById('orders.get')).toBe(policy.routesById.get('orders.get'));
    expect(policy.routeTable.resolve('GET', '/v1/orders/A-1')).toMatchObject({
      route: { route_id: 'orders.get' },
      params: { order_id: 'A-1' },
    });
    expect(Object.isFrozen(policy)).toBe(true);
    expect(Object.isFrozen(policy.document.route_groups[0]!.routes[0]!.allowed_sources[0])).toBe(true);
  });

  it('attack: a route widened after signing', async () => {
    const { key, signers } = await docKey();
    const signed = structuredClone(await signDocument(sampleBundle(), key, DOC_SIGNER));
    signed.route_groups[1]!.routes[0]!.required_key_binding = 'software';
    await expect(loadPolicyBundle(signed, { signers })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
    });
  });

  it('refuses an expired bundle when given now', async () => {
    const doc = sampleBundle({ expires_at: NOW + 60 });
    await expect(
      loadPolicyBundle(doc, { signers: [], allowUnsigned: true, now: NOW + 60 }),
    ).rejects.toMatchObject({ reason: 'stale_bundle_fail_closed' });
  });

  describe('isRevoked', () => {
    const passport = {
      iss: 'https://issuer.example/software-jwks',
      sub: 'service:a',
      jti: 'j-1',
      kid: 'sw-1',
      cnfKid: 'c-1',
    };
    const load = (revocations: NonNullable<ReturnType<typeof sampleBundle>['revocations']>) =>
      loadPolicyBundle(sampleBundle({ revocations }), { signers: [], allowUnsigned: true });

    it('is false with no revocations', async () => {
      expect((await load([])).isRevoked(passport)).toBe(false);
    });
    it('matches a jti, a subject and a key (issuer or cnf kid)', async () => {
      expect((await load([{ kind: 'jti', value: 'j-1' }])).isRevoked(passport)).toBe(true);
      expect((await load([{ kind: 'subject', value: 'service:a' }])).isRevoked(passport)).toBe(true);
      expect((await load([{ kind: 'key', value: 'sw-1' }])).isRevoked(passport)).toBe(true);
      expect((await load([{ kind: 'key', value: 'c-1' }])).isRevoked(passport)).toBe(true);
      expect((await load([{ kind: 'key', value: 'c-1' }])).isRevoked({ ...passport, cnfKid: 'c-2' })).toBe(
        false,
      );
    });
    it('scopes an entry with issuer to that issuer', async () => {
      const policy = await load([{ kind: 'subject', issuer: 'https://other.example', value: 'service:a' }]);
      expect(policy.isRevoked(passport)).toBe(false);
      expect(policy.isRevoked({ ...passport, iss: 'https://other.example' })).toBe(true);
    });
    it('does not confuse kinds', async () => {
      const policy = await load([{ kind: 'jti', value: 'service:a' }]);
      expect(policy.isRevoked(passport)).toBe(false);
    });
  });
});

describe('parse*Text size and encoding bounds', () => {
  const text = JSON.stringify(sampleBundle());

  it('parses text and bytes', () => {
    expect(parsePolicyBundleText(text).trust_domain).toBe('example.local');
    expect(parsePolicyBundleText(utf8(text)).trust_domain).toBe('example.local');
  });

  it('rejects a document over 8 MiB (string and bytes)', () => {
    const padding = ' '.repeat(MAX_DOCUMENT_BYTES - text.length + 1);
    const big = text + padding;
    expect(utf8(big).length).toBe(MAX_DOCUMENT_BYTES + 1);
    expect(() => parsePolicyBundleText(big)).toThrow(expect.objectContaining({ reason: 'invalid_bundle' }));
    expect(() => parsePolicyBundleText(utf8(big))).toThrow(
      expect.objectContaining({ reason: 'invalid_bundle', message: 'policy bundle exceeds 8388608 bytes' }),
    );
    // Exactly at the limit is fine.
    expect(parsePolicyBundleText(big.slice(0, -1)).trust_domain).toBe('example.local');
  });

  it('counts UTF-8 bytes, not UTF-16 units', () => {
    // 'é' is one UTF-16 unit and two UTF-8 bytes.
    const big = `${text.slice(0, -1)},"contract_metadata":{"k":"${'é'.repeat(MAX_DOCUMENT_BYTES / 2)}"}}`;
    expect(big.length).toBeLessThan(MAX_DOCUMENT_BYTES);
    expect(() => parsePolicyBundleText(big)).toThrow(expect.objectContaining({ reason: 'invalid_bundle' }));
  });

  it('rejects invalid JSON without echoing it', () => {
    expect(() => parseTrustMaterialText('{"version": SECRET')).toThrow(
      expect.objectContaining({
        reason: 'invalid_bundle',
        message: 'trust material is not valid JSON at line 1, column 13',
      }),
    );
  });

  it('rejects invalid UTF-8', () => {
    expect(() => parseTrustMaterialText(Uint8Array.from([0x7b, 0xff, 0x7d]))).toThrow(
      expect.objectContaining({ reason: 'invalid_bundle', message: 'trust material is not valid UTF-8' }),
    );
  });
});
