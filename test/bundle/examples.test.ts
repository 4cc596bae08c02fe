import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../pkg/authcore/signing-key.js';
import {
  checkFreshness,
  loadPolicyBundle,
  loadTrustMaterial,
  parsePolicyBundleText,
  parseTrustMaterialText,
} from '../../pkg/bundle/index.js';

const root = process.cwd();
const read = (file: string) => readFileSync(path.join(root, 'bundles', file));

describe('bundles/ examples', () => {
  it('the policy bundle parses and round-trips', () => {
    const text = read('example.policy-bundle.json');
    const doc = parsePolicyBundleText(text);
    expect(JSON.parse(JSON.stringify(doc))).toEqual(JSON.parse(text.toString('utf8')));
    expect(doc.signed_by).toEqual({
      issuer: 'local://trustplane.bundle.build',
      kid: 'unsigned-skeleton',
      alg: 'none',
    });
    expect(doc.signature?.format).toBe('unsigned-skeleton');
  });

  it('the trust material parses and round-trips', () => {
    const text = read('example.trust-material.json');
    const doc = parseTrustMaterialText(text);
    expect(JSON.parse(JSON.stringify(doc))).toEqual(JSON.parse(text.toString('utf8')));
    expect(doc.signature?.format).toBe('unsigned-skeleton');
  });

  it('loads only with the dev flag and resolves the documented routes', async () => {
    const policyJson: unknown = JSON.parse(read('example.policy-bundle.json').toString('utf8'));
    const trustJson: unknown = JSON.parse(read('example.trust-material.json').toString('utf8'));
    await expect(loadPolicyBundle(policyJson, { signers: [] })).rejects.toThrow(TypeError);
    const key = { kid: 'ops-1', key: (await generateSigningKey()).publicKey };
    await expect(loadPolicyBundle(policyJson, { signers: [key] })).rejects.toMatchObject({
      reason: 'unsigned_bundle_rejected',
    });
    await expect(loadTrustMaterial(trustJson, { signers: [key] })).rejects.toMatchObject({
      reason: 'unsigned_bundle_rejected',
    });

    const policy = await loadPolicyBundle(policyJson, { signers: [], allowUnsigned: true });
    expect(policy.routeTable.resolve('GET', '/v1/orders/search')?.route.route_id).toBe('orders.search');
    expect(policy.routeTable.resolve('GET', '/v1/orders/o-1')).toMatchObject({
      route: { route_id: 'orders.get' },
      params: { order_id: 'o-1' },
    });
    const create = policy.routeTable.resolve('POST', '/v1/orders')!;
    expect(create.route.route_id).toBe('orders.create');
    expect(create.route.required_key_binding).toBe('hardware_local');
    // A static example file: offline-ok, so it is usable whatever the clock says.
    expect(checkFreshness(policy, create.route, 4_000_000_000).freshnessClass).toBe('offline-ok');
    expect(
      policy.isRevoked({ iss: 'https://issuer.example/software-jwks', sub: 's', jti: 'example-revoked-jti' }),
    ).toBe(true);

    const trust = await loadTrustMaterial(trustJson, { signers: [], allowUnsigned: true });
    expect(trust.getIssuer('https://issuer.example/software-jwks')?.keys.size).toBe(2);
    expect(trust.getIssuer('https://broker.example.local')?.maxKeyBinding).toBe('attested_workload');
    expect(trust.spiffeBundles.get('example.local')?.keys[0]?.use).toBe('x509-svid');
  });
});

describe('pkg/bundle uses Web APIs only', () => {
  it('has no node:* imports', () => {
    for (const dir of ['pkg/bundle']) {
      for (const file of readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.ts'))) {
        const source = readFileSync(path.join(root, dir, file), 'utf8');
        expect(source, `${dir}/${file}`).not.toMatch(/from ['"](node:|fs|path|crypto|buffer)['"/]/);
        expect(source, `${dir}/${file}`).not.toMatch(/\bBuffer\b|\bprocess\./);
      }
    }
  });
});
