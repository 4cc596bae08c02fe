export { startAdapter, type Adapter, type StartAdapterOptions } from './server.js';
export { createAdminServer } from './admin-server.js';
export { runAdapter } from './run.js';
export { adapterConfigSchema, type AdapterConfig, type AdapterConfigInput } from './config.js';
export { resolveAdapterConfig, ADAPTER_ENV, type ConfigSources } from './resolve-adapter-config.js';
export { ConfigError } from './config-error.js';
export { handleProxyRequest } from './proxy.js';
export { handleForwardAuthRequest } from './forward-auth.js';
export {
  createEnforcementRuntime,
  type EnforcementRuntime,
  type EnforcementRuntimeDeps,
} from './enforcement-runtime.js';
export { openReplayStore } from './replay.js';
export { loadNativeEd25519, nodeSha256, type NativeEd25519 } from './native-crypto.js';
export { bundleSourcesFromConfig } from './bundle-sources.js';
