export { startAdapter, createAdminServer, type Adapter, type StartAdapterOptions } from './server.js';
export { runAdapter } from './run.js';
export {
  adapterConfigSchema,
  resolveAdapterConfig,
  ConfigError,
  ADAPTER_ENV,
  type AdapterConfig,
  type AdapterConfigInput,
  type ConfigSources,
} from './config.js';
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
} from './bundles.js';
export { createAdapterMetrics, type AdapterMetrics, type AdapterMetricsOptions } from './metrics.js';
export { createLogger, LOG_LEVELS, type Logger, type LogLevel, type LogFields } from './logger.js';
export { handleProxyRequest, handleForwardAuthRequest, type EnforcementRuntime } from './enforce.js';
export { openReplayStore } from './replay.js';
export {
  JournalReplayStore,
  type JournalReplayStoreOptions,
  type JournalFsyncMode,
} from './replay-journal.js';
export { RedisReplayStore, type RedisReplayStoreOptions } from './replay-redis.js';
export { loadNativeEd25519, nodeSha256, type NativeEd25519 } from './native-crypto.js';
