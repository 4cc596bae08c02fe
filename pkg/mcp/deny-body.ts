import type { ReasonCode } from '../authcore/reason-codes.js';
import type { JsonRpcId } from './json-rpc.js';

/** JSON-RPC error code of a policy denial (implementation-defined server error range). */
export const MCP_DENIED_CODE = -32001;
/** JSON-RPC 2.0 `Invalid Request`. */
export const JSONRPC_INVALID_REQUEST = -32600;
/** JSON-RPC 2.0 `Parse error`. */
export const JSONRPC_PARSE_ERROR = -32700;

/** The JSON-RPC deny of an MCP call: what an agent's MCP client reads. */
export interface McpDenyBody {
  /** HTTP status: 200 for a request (the SDK surfaces the JSON-RPC error), else the reason's. */
  readonly status: number;
  /** The JSON text. */
  readonly body: string;
}

/**
 * The JSON-RPC answer to an MCP body denied after authentication: one error object per request
 * id (the batch's order), each `{"code":-32001,"message":"denied by policy","data":{"reason":…}}`.
 * - The body had requests: HTTP 200, so MCP clients (the official SDK's Streamable HTTP
 *   transport throws on any non-2xx before it reads JSON-RPC) hand the agent a structured error
 *   carrying the request id and the reason.
 * - Only notifications or responses (no id to answer), or an invalid body: the reason's HTTP
 *   status with one error whose `id` is `null` (the MCP transport spec: an HTTP error status, the
 *   body MAY be a JSON-RPC error without id).
 * @param reason the reason code (`mcp_*`)
 * @param status the reason's registry status
 * @param ids the request ids of the body
 * @param jsonrpcCode the JSON-RPC code (default {@link MCP_DENIED_CODE}; invalid bodies use -32600/-32700)
 */
export function mcpDenyBody(
  reason: ReasonCode,
  status: number,
  ids: readonly JsonRpcId[],
  jsonrpcCode = MCP_DENIED_CODE,
): McpDenyBody {
  const message = jsonrpcCode === MCP_DENIED_CODE ? 'denied by policy' : 'invalid request';
  const error = (id: JsonRpcId | null) => ({
    jsonrpc: '2.0',
    id,
    error: { code: jsonrpcCode, message, data: { reason } },
  });
  if (ids.length === 0 || jsonrpcCode !== MCP_DENIED_CODE) {
    return { status, body: JSON.stringify(error(null)) };
  }
  const errors = ids.map(error);
  return { status: 200, body: JSON.stringify(errors.length === 1 ? errors[0] : errors) };
}
