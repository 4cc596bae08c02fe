/* Bounds on what a Workload API agent may send (each refused beyond its bound). */

/** Largest Workload API message accepted, bytes (gRPC's usual default, made explicit). */
export const WORKLOAD_API_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Most X.509-SVIDs accepted in one response. */
export const WORKLOAD_API_MAX_SVIDS = 128;
/** Most certificates accepted in one SVID chain (leaf + intermediates). */
export const WORKLOAD_API_MAX_CHAIN_CERTS = 16;
/** Most CA certificates accepted in one trust bundle. */
export const WORKLOAD_API_MAX_BUNDLE_CERTS = 1024;
/** Most federated trust domains accepted in one response. */
export const WORKLOAD_API_MAX_FEDERATED_BUNDLES = 1024;
