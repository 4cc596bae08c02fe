// The one Node HTTP reading layer (internal: not a package subpath). Used by the Node middleware
// and the adapter's proxy and forward-auth modes.
export { splitTarget, originFormTarget, type RequestTarget } from './request-target.js';
export {
  repeatedCriticalHeader,
  assertNoRepeatedCriticalHeader,
  assertSafeHeaderLines,
} from './critical-headers.js';
export { nodeHeaderSource, headerValue, firstHeaderValue } from './header-source.js';
export { requestScheme } from './request-scheme.js';
export {
  readBody,
  EMPTY_BODY_SHA256,
  type BodyRead,
  type BodyBytes,
  type BodyRefusal,
  type BodyReadMode,
} from './read-body.js';
export {
  readNodeRequest,
  auditRequestInfo,
  NodeBody,
  type ByteBudget,
  type NodeRequestView,
  type ReadNodeRequestOptions,
  type NodeRequestRead,
  type NodeRequestRefusal,
} from './read-request.js';
export { writeDeny, type WriteDenyOptions } from './write-deny.js';
export { canonicalizeNodeRequest } from './canonical-request.js';
export {
  enforceNodeRequest,
  type EnforceNodeRequestOptions,
  type NodeRequestGranted,
} from './enforce-node-request.js';
export {
  filterMcpAnswer,
  type FilterMcpAnswerOptions,
  type McpAnswerFiltering,
} from './filter-mcp-answer.js';
