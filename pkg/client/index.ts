export { clientPathProblem, assertClientPath, type ClientPathOptions } from '../proof/sdk-path-safety.js';
export { DEFAULT_BODY_CONTENT_TYPE, type OutgoingRequest } from './outgoing-request.js';
export { prepareRequest, type PrepareRequestOptions } from './prepare-request.js';
export { isReservedHeader, type ClientHeaders } from './client-headers.js';
export { type ClientQuery } from './client-query.js';
export { type PassportSource, type RequestCredentials } from './passport-source.js';
export {
  selfIssuedPassports,
  DEFAULT_SELF_ISSUED_TTL_SECONDS,
  MAX_SELF_ISSUED_TTL_SECONDS,
  type SelfIssuedPassportsOptions,
} from './self-issued-passports.js';
export { describeRequestForBroker, type BrokerHttpDescription } from './describe-request-for-broker.js';
export {
  brokerPassports,
  type BrokerTransport,
  type BrokerKeyBindingOptions,
  type BrokerContextField,
  type BrokerPassportsOptions,
} from './broker-passports.js';
export { BrokerDeniedError } from './broker-denied-error.js';
export { BrokerResponseError, type BrokerResponseCheck } from './broker-response-error.js';
export {
  ProtectedClient,
  type ProtectedClientOptions,
  type ProtectedRequestOptions,
  type ProtectedFetchInit,
} from './protected-client.js';
export { createSigningFetch, type SigningFetch, type SigningFetchOptions } from './signing-fetch.js';
