export {
  BROKER_IPC_VERSION,
  BROKER_IPC_MAX_MESSAGE_BYTES,
  BROKER_IPC_TIMEOUT_MS,
  brokerHttpSchema,
  brokerIpcRequestSchema,
  brokerIpcResponseSchema,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
} from './ipc-v1.js';
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
export { BrokerIpcClient, BrokerIpcError, type BrokerIpcClientOptions } from './ipc-client.js';
