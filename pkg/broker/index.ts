export {
  BROKER_IPC_VERSION,
  BROKER_IPC_MAX_MESSAGE_BYTES,
  BROKER_IPC_TIMEOUT_MS,
  brokerHttpSchema,
  brokerIpcRequestSchema,
  brokerIpcResponseSchema,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
} from '../proof/broker-ipc-v1.js';
export {
  Broker,
  BROKER_PASSPORT_ISSUED,
  PASSPORT_ARTIFACT_FORMAT,
  STAMP_ARTIFACT_FORMAT,
  type BrokerOptions,
  type BrokerMaterial,
  type IssueContext,
} from './broker.js';
export {
  softwareIdentity,
  spiffeWorkloadIdentity,
  SPIFFE_PROVENANCE_PROFILE,
  SPIFFE_POSTURE_VERIFIED,
  type IdentitySource,
  type WorkloadIdentity,
} from './identity.js';
export {
  issuancePolicySchema,
  issuanceGrantSchema,
  DEFAULT_MAX_TTL_SECONDS,
  type IssuancePolicy,
  type IssuanceGrant,
} from './issuance-policy.js';
export { serveBrokerIpc, type BrokerIpcServer, type BrokerIpcServerOptions } from './ipc-server.js';
export {
  BrokerIpcClient,
  BrokerIpcError,
  type BrokerIpcClientOptions,
  type BrokerIpcErrorCode,
} from './ipc-client.js';
export { startBroker, type BrokerConfig, type BrokerIdentityConfig, type RunningBroker } from './run.js';
export { brokerTlsConnector, type BrokerTlsConnectorOptions } from './tls-client.js';
export {
  createDevSpiffeCa,
  loadDevSpiffeCa,
  DEFAULT_DEV_CA_TTL_SECONDS,
  type DevCa,
  type CreateDevSpiffeCaOptions,
  type LoadDevSpiffeCaInput,
} from './dev-spiffe-ca.js';
export {
  mintDevSvid,
  DEFAULT_DEV_SVID_TTL_SECONDS,
  type DevSvid,
  type MintDevSvidOptions,
} from './dev-svid.js';
export { MAX_DEV_TTL_SECONDS } from './dev-certificate.js';
export { writeSpiffeHelperFiles, type SpiffeHelperFiles } from './spiffe-helper-files.js';
export {
  serveBrokerTls,
  DEFAULT_TLS_MAX_CONNECTIONS,
  DEFAULT_TLS_MAX_IN_FLIGHT,
  MAX_TLS_LIMIT,
  type BrokerTlsOptions,
  type BrokerTlsServer,
  type BrokerTlsStats,
  type TlsCredentials,
  type TlsCredentialSource,
} from './tls-server.js';
export { type BrokerTlsLimit, type BrokerTlsOverload } from './listener-limits.js';
export {
  openSpiffeFilesIdentity,
  openWorkloadApiIdentity,
  verifyWorkloadUpdate,
  type SpiffeIdentitySource,
} from './spiffe-identity.js';
export * from './spiffe/index.js';
export { WorkloadApiX509Source, type WorkloadApiX509SourceOptions } from './spiffe/workload-api-source.js';
export { WorkloadApiError, type WorkloadApiErrorCode } from './spiffe/workload-api-error.js';
export { parseWorkloadEndpoint } from './spiffe/workload-api-endpoint.js';
export { type X509SvidUpdate, type X509Svid } from './spiffe/workload-api-update.js';
