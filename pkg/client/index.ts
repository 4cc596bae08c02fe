export { clientPathProblem, assertClientPath, type ClientPathOptions } from '../proof/sdk-path-safety.js';
export {
  prepareRequest,
  isReservedHeader,
  DEFAULT_BODY_CONTENT_TYPE,
  type OutgoingRequest,
  type PrepareRequestOptions,
  type ClientHeaders,
  type ClientQuery,
} from './outgoing-request.js';
export {
  selfIssuedPassports,
  DEFAULT_SELF_ISSUED_TTL_SECONDS,
  MAX_SELF_ISSUED_TTL_SECONDS,
  type PassportSource,
  type RequestCredentials,
  type SelfIssuedPassportsOptions,
} from './passport-source.js';
export {
  describeRequestForBroker,
  brokerPassports,
  BrokerDeniedError,
  BrokerResponseError,
  type BrokerHttpDescription,
  type BrokerResponseCheck,
  type BrokerTransport,
  type BrokerKeyBindingOptions,
  type BrokerContextField,
  type BrokerPassportsOptions,
} from './broker-request.js';
export {
  ProtectedClient,
  type ProtectedClientOptions,
  type ProtectedRequestOptions,
  type ProtectedFetchInit,
} from './protected-client.js';
