export {
  WIRE_HEADERS,
  IDENTITY_HEADERS,
  TRANSCRIPT_VERSION,
  QUERY_NORMALIZATION,
  TIME_BUCKET_SECONDS,
  MAX_NONCE_LENGTH,
  MAX_QUERY_LENGTH,
} from './wire.js';
export { normalizeQuery, queryAmbiguity } from './normalize-query.js';
export {
  normalizeCoveredHeaders,
  parseCoveredHeadersHeader,
  requiredCoveredHeaders,
  DEFAULT_COVERED_HEADERS,
  MAX_COVERED_HEADERS,
} from './covered-headers.js';
export {
  buildTranscript,
  transcriptFromDigests,
  type Transcript,
  type TranscriptInput,
  type TranscriptDigestInput,
} from './transcript.js';
export { bodySha256 } from './body-sha256.js';
export { getHeader, type HeaderSource } from './header-source.js';
export { signProof, verifyProof } from './request-proof.js';
export { pathSafetyProblem, assertSafePath, MAX_PATH_LENGTH } from './path-safety.js';
export { signRequest, type SignRequestOptions, type SignedRequest } from './sign-request.js';
export { parseRequestTarget, type RequestTarget } from './request-target.js';
export { clientPathProblem, assertClientPath, type ClientPathOptions } from './sdk-path-safety.js';
export {
  BROKER_IPC_VERSION,
  BROKER_IPC_MAX_MESSAGE_BYTES,
  BROKER_IPC_TIMEOUT_MS,
  brokerHttpSchema,
  brokerIpcRequestSchema,
  brokerIpcResponseSchema,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
} from './broker-ipc-v1.js';
export { headerNameProblem, headerSafetyProblem, assertSafeHeaders } from './header-safety.js';
