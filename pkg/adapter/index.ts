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
export { handleProxyRequest } from './proxy.js';
export { handleForwardAuthRequest } from './forward-auth.js';
export {
  createEnforcementRuntime,
  type EnforcementRuntime,
  type EnforcementRuntimeDeps,
} from './enforcement-runtime.js';
export { openReplayStore } from './replay.js';
export { loadNativeEd25519, nodeSha256, type NativeEd25519 } from './native-crypto.js';
