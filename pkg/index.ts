// The package root: the Web-API library surface (passports, proofs, bundles, the verifier and its
// enforcement kernel). It runs on Node, Workers, Deno and Bun. Node-only parts (adapter, broker,
// replay stores, runtime, audit sinks, Node middleware) have their own subpaths.
export * from './authcore/index.js';
export * from './proof/index.js';
export * from './bundle/index.js';
export * from './verifier/index.js';
