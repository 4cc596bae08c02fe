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
