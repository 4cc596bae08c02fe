import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleSourcesFromConfig, ConfigError, resolveAdapterConfig } from '../../pkg/adapter/index.js';
import { generateSigningKey } from '../../pkg/authcore/index.js';

// The adapter's bundle-URL options: flags and environment reach the puller (token from @file or
// TRUSTPLANE_BUNDLE_FETCH_TOKEN, CA, client certificate and key read from their files), and a
// token is never echoed in a configuration error.

describe('adapter config: bundle URLs', () => {
  it('maps the bundleFetch* options to the puller', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-bundle-sources-'));
    const signer = await generateSigningKey();
    for (const [f, text] of [
      ['token', 'secret-token-0123456789\n'],
      ['ca.pem', 'CA PEM'],
      ['client.pem', 'CERT PEM'],
      ['client.key', 'KEY PEM'],
    ] as const)
      writeFileSync(path.join(dir, f), text);
    const base = {
      upstream: 'http://127.0.0.1:9',
      trustMaterial: 'https://bundles.internal/trust-material.json',
      policyBundle: 'https://bundles.internal/policy-bundle.json',
      trustMaterialPublicKeys: [signer.publicKey.x],
      policyBundlePublicKeys: [signer.publicKey.x],
    };
    const config = resolveAdapterConfig({
      flags: {
        ...base,
        bundleFetchToken: `@${path.join(dir, 'token')}`,
        bundleFetchCa: path.join(dir, 'ca.pem'),
        bundleFetchCert: path.join(dir, 'client.pem'),
        bundleFetchKey: path.join(dir, 'client.key'),
        bundleStateDir: path.join(dir, 'state'),
        reloadIntervalMs: 750,
      },
    });
    const sources = await bundleSourcesFromConfig(config);
    expect(sources.remote).toEqual({
      stateDir: path.join(dir, 'state'),
      waitSeconds: 30,
      pollIntervalMs: 750,
      timeoutMs: 10_000,
      token: 'secret-token-0123456789',
      ca: 'CA PEM',
      cert: 'CERT PEM',
      key: 'KEY PEM',
    });
    const fromEnv = resolveAdapterConfig({
      flags: base,
      env: {
        TRUSTPLANE_BUNDLE_FETCH_TOKEN: 'env-token-0123456789',
        TRUSTPLANE_BUNDLE_FETCH_WAIT_SECONDS: '0',
      },
    });
    expect(fromEnv).toMatchObject({
      bundleFetchToken: 'env-token-0123456789',
      bundleFetchWaitSeconds: 0,
      bundleStateDir: './trustplane-state/bundles',
    });
    let error: unknown;
    try {
      resolveAdapterConfig({ flags: { ...base, bundleFetchToken: 'x'.repeat(5000) } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.join('\n')).not.toContain('xxxx');
  });
});
