export {
  parseJsonRpcBody,
  MAX_MCP_BATCH,
  MAX_MCP_DEPTH,
  MAX_MCP_VALUES,
  type JsonRpcId,
  type McpMessage,
  type McpBody,
} from './json-rpc.js';
export { compileGlob } from './glob.js';
export { isCanonicalResourceUri } from './resource-uri.js';
export { mcpRequestEncodingProblem } from './request-encoding.js';
export { McpSessionBindings, MAX_MCP_SESSIONS, MAX_MCP_SESSION_ID_LENGTH } from './session-bindings.js';
export { resolvePointer, pointerTokens, type PointerResult } from './json-pointer.js';
export {
  compileMcpPolicy,
  DEFAULT_MCP_METHODS,
  type CompiledMcpPolicy,
  type CompiledRule,
  type CompiledArgumentRule,
  type McpCallerRules,
} from './compile-policy.js';
export {
  decideMcp,
  decideMcpStream,
  MAX_AUDITED_ARGUMENTS,
  type McpCallerCheck,
  type McpAuditCall,
  type McpVerdict,
  type McpListFilterSpec,
} from './decide-mcp.js';
export {
  filterJsonRpcAnswer,
  filterJsonAnswerBytes,
  McpSseFilter,
  MAX_MCP_FILTERED_MESSAGE_BYTES,
} from './filter-response.js';
export { filterMcpResponse, mcpSseTransform } from './filter-web-response.js';
export { McpAnswerFilter, mediaTypeOf, type McpAnswerMode, type McpAnswerHead } from './answer-filter.js';
export {
  mcpDenyBody,
  MCP_DENIED_CODE,
  JSONRPC_INVALID_REQUEST,
  JSONRPC_PARSE_ERROR,
  type McpDenyBody,
} from './deny-body.js';
