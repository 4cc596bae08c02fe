import { BundleManager } from './bundle-manager.js';
import { parseConfiguredKeys } from './configured-keys.js';
import { createLogger, type Logger } from './logger.js';
import type { AdapterMetrics } from './metrics.js';

/** Options for {@link openBundles}. */
export interface OpenBundlesOptions {
  /** Trust material: a file (watched) or a bundle URL (pulled). */
  readonly trustMaterial: string;
  /** Policy bundle: a file (watched) or a bundle URL (pulled). */
  readonly policyBundle: string;
  /** Keys allowed to sign both documents (key text, PEM or JWK). */
  readonly publicKeys: readonly string[];
  /** Bundle URLs: where the last good documents are kept (default `./trustplane-state/bundles`). */
  readonly stateDir?: string;
  /** Bundle URLs: bearer token (secret: never logged). */
  readonly token?: string | undefined;
  /** Bundle URLs over HTTPS: PEM CA certificates, and a client certificate and key for mTLS. */
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  /** Long-poll wait asked of the server, seconds (default 30; 0 = poll). */
  readonly waitSeconds?: number;
  /** Poll interval of files and of sources without long-poll, ms (default 5000). */
  readonly pollIntervalMs?: number;
  readonly log?: Logger;
  readonly metrics?: AdapterMetrics;
  /** Epoch seconds (default system clock). */
  readonly clock?: () => number;
}

/**
 * Open the trust material and policy bundle for a middleware (or any library use) the way the
 * adapter does: from files or bundle URLs, verified with the pinned keys, kept current (files
 * watched; URLs long-polled, rollback refused, persisted), with freshness warnings logged.
 * Pass `material: () => bundles.current` to the Hono or Node middleware; `close()` it on shutdown.
 *
 * @throws TrustplaneError `bundle_source_unavailable` (a URL unreachable and nothing persisted),
 *   `invalid_bundle`, `bundle_signature_invalid`, `unsigned_bundle_rejected`, `invalid_key`
 * @example
 * const bundles = await openBundles({ trustMaterial: 'https://bundles.internal/trust-material.json',
 *   policyBundle: 'https://bundles.internal/policy-bundle.json', publicKeys: [signerPub] })
 * app.use('*', trustplane({ material: () => bundles.current, replayStore }))
 */
export async function openBundles(options: OpenBundlesOptions): Promise<BundleManager> {
  if (options.publicKeys.length === 0)
    throw new TypeError('openBundles: at least one public key is required');
  const keys = await parseConfiguredKeys(options.publicKeys);
  const pollIntervalMs = options.pollIntervalMs ?? 5_000;
  const log = options.log ?? createLogger('warn');
  const manager = await BundleManager.open(
    {
      trustMaterialPath: options.trustMaterial,
      policyBundlePath: options.policyBundle,
      trustMaterialKeys: keys,
      policyBundleKeys: keys,
      devAllowUnsigned: false,
      remote: {
        stateDir: options.stateDir ?? './trustplane-state/bundles',
        waitSeconds: options.waitSeconds ?? 30,
        pollIntervalMs,
        timeoutMs: 10_000,
        ...(options.token !== undefined ? { token: options.token } : {}),
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
        ...(options.cert !== undefined ? { cert: options.cert } : {}),
        ...(options.key !== undefined ? { key: options.key } : {}),
      },
    },
    {
      log,
      ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
      ...(options.clock !== undefined ? { clock: options.clock } : {}),
    },
  );
  manager.watch(pollIntervalMs);
  manager.watchFreshness();
  return manager;
}
