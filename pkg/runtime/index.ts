export {
  BundleManager,
  type BundleSnapshot,
  type BundleSources,
  type BundleName,
  type ReloadOutcome,
  type BundleManagerOptions,
} from './bundle-manager.js';
export { parseConfiguredKeys, type ConfiguredKey } from './configured-keys.js';
export { MAX_BUNDLE_BYTES } from './bundle-file.js';
export { createAdapterMetrics, type AdapterMetrics, type AdapterMetricsOptions } from './metrics.js';
export { createLogger, LOG_LEVELS, type Logger, type LogLevel, type LogFields } from './logger.js';
export {
  startBundleServer,
  keyBundleSigner,
  configFileBuilder,
  BUNDLE_DOCUMENTS,
  type BundleServer,
  type BundleServerOptions,
  type BundleSigner,
  type BundleDocumentName,
  type PublishedDocument,
  type UnsignedDocuments,
} from './bundle-server.js';
export { isBundleUrl, type RemoteBundleOptions } from './bundle-fetch.js';
export { openBundles, type OpenBundlesOptions } from './open-bundles.js';
export { jsonErrorPosition } from '../internal/json-position.js';
