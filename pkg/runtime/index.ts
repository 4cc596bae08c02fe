export {
  BundleManager,
  parseConfiguredKeys,
  MAX_BUNDLE_BYTES,
  type BundleSnapshot,
  type BundleSources,
  type BundleName,
  type ReloadOutcome,
  type ConfiguredKey,
  type BundleManagerOptions,
} from './bundle-manager.js';
export { createAdapterMetrics, type AdapterMetrics, type AdapterMetricsOptions } from './metrics.js';
export { createLogger, LOG_LEVELS, type Logger, type LogLevel, type LogFields } from './logger.js';
