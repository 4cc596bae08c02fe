import { readFileSync } from 'node:fs';
import type { BundleSources } from '../runtime/bundle-manager.js';
import { parseConfiguredKeys } from '../runtime/configured-keys.js';
import type { AdapterConfig } from './config.js';

/** Default poll interval of a bundle URL that does not long-poll, when `reloadIntervalMs` is 0 (ms). */
const DEFAULT_POLL_MS = 5_000;
/** Time for one bundle fetch beyond its long-poll wait (ms). */
const FETCH_TIMEOUT_MS = 10_000;

/**
 * The bundle manager's sources from the adapter configuration: files, or URLs pulled with the
 * `bundleFetch*` options (CA, client certificate and key read from their files here).
 * @throws TrustplaneError `invalid_key`; a file error for an unreadable CA, certificate or key
 */
export async function bundleSourcesFromConfig(
  config: Pick<
    AdapterConfig,
    | 'trustMaterial'
    | 'policyBundle'
    | 'trustMaterialPublicKeys'
    | 'policyBundlePublicKeys'
    | 'devAllowUnsigned'
    | 'bundleStateDir'
    | 'bundleFetchToken'
    | 'bundleFetchCa'
    | 'bundleFetchCert'
    | 'bundleFetchKey'
    | 'bundleFetchWaitSeconds'
    | 'reloadIntervalMs'
  >,
): Promise<BundleSources> {
  const pem = (file: string | undefined) => (file === undefined ? undefined : readFileSync(file, 'utf8'));
  const ca = pem(config.bundleFetchCa);
  const cert = pem(config.bundleFetchCert);
  const key = pem(config.bundleFetchKey);
  return {
    trustMaterialPath: config.trustMaterial,
    policyBundlePath: config.policyBundle,
    trustMaterialKeys: await parseConfiguredKeys(config.trustMaterialPublicKeys),
    policyBundleKeys: await parseConfiguredKeys(config.policyBundlePublicKeys),
    devAllowUnsigned: config.devAllowUnsigned,
    remote: {
      stateDir: config.bundleStateDir,
      waitSeconds: config.bundleFetchWaitSeconds,
      pollIntervalMs: config.reloadIntervalMs > 0 ? config.reloadIntervalMs : DEFAULT_POLL_MS,
      timeoutMs: FETCH_TIMEOUT_MS,
      ...(config.bundleFetchToken !== undefined ? { token: config.bundleFetchToken } : {}),
      ...(ca !== undefined ? { ca } : {}),
      ...(cert !== undefined ? { cert } : {}),
      ...(key !== undefined ? { key } : {}),
    },
  };
}
