/**
 * Development keys and signed bundles for the Hono and Express examples.
 *
 *   node --import tsx examples/dev-bundles.ts <dir> [origin]
 *
 * Writes into <dir> (created, mode 0700):
 *   caller.key          the caller's Ed25519 key (mode 0600), kid caller-1 of the software issuer
 *   bundle-signer.pub   the bundle signer's public key (the signer's private key is not kept)
 *   trust.json          signed trust material listing the caller key
 *   policy.json         signed policy bundle: orders.get (GET /v1/orders/{order_id}) and
 *                       orders.create (POST /v1/orders) for subject service:orders-client
 * and prints the `export TRUSTPLANE_...` lines the example servers read.
 *
 * `origin` (default http://127.0.0.1:3000) becomes the API's `base_url`: the authority callers sign.
 * The bundle is `bounded` with a one-day staleness limit; run the script again after that.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateSigningKey } from 'trustplane/authcore';
import { buildPolicyBundle, buildTrustMaterial, signDocument } from 'trustplane/bundle';

export const DEV_ISSUER = 'https://issuer.example/software-jwks';
export const DEV_SUBJECT = 'service:orders-client';
export const DEV_TRUST_DOMAIN = 'example.local';
export const DEV_AUDIENCE = 'orders-api';

/** Paths written by {@link writeDevBundles}. */
export interface DevBundles {
  readonly callerKey: string;
  readonly bundleSignerPub: string;
  readonly trustMaterial: string;
  readonly policyBundle: string;
}

/**
 * Generate a caller key and a throwaway bundle signer, build and sign the trust material and the
 * policy bundle for the orders examples, and write them into `dir`.
 * @param dir output directory (created)
 * @param origin the API's public origin, e.g. http://127.0.0.1:3000
 * @returns the written paths
 */
export async function writeDevBundles(dir: string, origin: string): Promise<DevBundles> {
  const [caller, signer] = await Promise.all([generateSigningKey(), generateSigningKey()]);
  const now = Math.floor(Date.now() / 1000);
  const source = {
    source_type: 'software_jwks' as const,
    issuer: DEV_ISSUER,
    trust_domain: DEV_TRUST_DOMAIN,
    subject_exact: DEV_SUBJECT,
  };
  const trust = buildTrustMaterial(
    {
      trust_domain: DEV_TRUST_DOMAIN,
      issuers: [
        {
          issuer: DEV_ISSUER,
          trust_domain: DEV_TRUST_DOMAIN,
          source_type: 'software_jwks',
          keys: [{ kty: 'OKP', crv: 'Ed25519', x: caller.publicKey.x, kid: 'caller-1' }],
        },
      ],
    },
    now,
  );
  const policy = buildPolicyBundle(
    {
      trust_domain: DEV_TRUST_DOMAIN,
      apis: [{ api_id: 'orders-api', audience: DEV_AUDIENCE, base_url: origin }],
      route_groups: [
        {
          route_group_id: 'orders',
          api_id: 'orders-api',
          routes: [
            {
              route_id: 'orders.get',
              method: 'GET',
              path_template: '/v1/orders/{order_id}',
              allowed_sources: [source],
            },
            {
              route_id: 'orders.create',
              method: 'POST',
              path_template: '/v1/orders',
              allowed_sources: [source],
            },
          ],
        },
      ],
      defaults: {
        required_key_binding: 'software',
        freshness_class: 'bounded',
        max_staleness_seconds: 86_400,
      },
      policy_version: 'dev',
    },
    now,
  );
  const signedBy = { issuer: 'https://bundles.example', kid: 'dev-bundle-signer' };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const out: DevBundles = {
    callerKey: path.join(dir, 'caller.key'),
    bundleSignerPub: path.join(dir, 'bundle-signer.pub'),
    trustMaterial: path.join(dir, 'trust.json'),
    policyBundle: path.join(dir, 'policy.json'),
  };
  writeFileSync(out.callerKey, `${caller.exportKeyText()}\n`, { mode: 0o600 });
  chmodSync(out.callerKey, 0o600);
  writeFileSync(out.bundleSignerPub, `${signer.publicKey.x}\n`);
  const json = (doc: unknown) => `${JSON.stringify(doc, null, 2)}\n`;
  writeFileSync(out.trustMaterial, json(await signDocument(trust, signer, signedBy)));
  writeFileSync(out.policyBundle, json(await signDocument(policy, signer, signedBy)));
  return out;
}

const invokedDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === import.meta.filename;

if (invokedDirectly) {
  const [dir, origin = 'http://127.0.0.1:3000'] = process.argv.slice(2);
  if (dir === undefined) {
    console.error('usage: node --import tsx examples/dev-bundles.ts <dir> [origin]');
    process.exit(2);
  }
  const out = await writeDevBundles(path.resolve(dir), origin);
  console.log(`export TRUSTPLANE_TRUST_MATERIAL=${out.trustMaterial}`);
  console.log(`export TRUSTPLANE_POLICY_BUNDLE=${out.policyBundle}`);
  console.log(`export TRUSTPLANE_BUNDLE_PUBLIC_KEY=@${out.bundleSignerPub}`);
}
