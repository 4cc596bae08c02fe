import { TrustplaneError } from '../authcore/errors.js';

/** Most messages in one JSON-RPC batch. */
export const MAX_MCP_BATCH = 64;
/** Deepest nesting of a JSON-RPC body (arrays and objects). */
export const MAX_MCP_DEPTH = 64;
/** Most values (objects, arrays, scalars) in one JSON-RPC body. */
export const MAX_MCP_VALUES = 100_000;

/** A JSON-RPC id: a string or a number (`null` only in error answers). */
export type JsonRpcId = string | number;

/** One JSON-RPC 2.0 message of a request body: a request (with `id`) or a notification. */
export interface McpMessage {
  readonly method: string;
  /** Absent for a notification. */
  readonly id?: JsonRpcId;
  /** `params`, when an object. */
  readonly params?: Readonly<Record<string, unknown>>;
}

/** A parsed JSON-RPC body. */
export interface McpBody {
  readonly messages: readonly McpMessage[];
  /** The body was a JSON array (a batch; MCP 2025-06-18 removed batching). */
  readonly batch: boolean;
}

const invalid = (message: string) => new TrustplaneError('mcp_invalid_jsonrpc', message);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Count values and depth of a parsed JSON value, iteratively; throw past the caps. */
function checkShape(root: unknown): void {
  const stack: [unknown, number][] = [[root, 1]];
  let values = 0;
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    values += 1;
    if (values > MAX_MCP_VALUES) throw invalid('the JSON-RPC body has too many values');
    if (typeof value !== 'object' || value === null) continue;
    if (depth > MAX_MCP_DEPTH) throw invalid('the JSON-RPC body is nested too deeply');
    const children = Array.isArray(value) ? value : Object.values(value);
    for (const child of children) stack.push([child, depth + 1]);
  }
}

function message(value: unknown): McpMessage | undefined {
  if (!isObject(value) || value.jsonrpc !== '2.0') return undefined;
  // A response (the client answering a server request) carries no method: not a call to decide,
  // but a legal message; it is admitted like a notification.
  if (!Object.hasOwn(value, 'method')) {
    if (Object.hasOwn(value, 'result') || Object.hasOwn(value, 'error')) return { method: '' };
    return undefined;
  }
  const { method, id, params } = value;
  if (typeof method !== 'string' || method === '' || method.length > 256) return undefined;
  if (id !== undefined && typeof id !== 'string' && (typeof id !== 'number' || !Number.isFinite(id))) {
    return undefined;
  }
  if (params !== undefined && !isObject(params) && !Array.isArray(params)) return undefined;
  return {
    method,
    ...(id !== undefined ? { id } : {}),
    ...(isObject(params) ? { params } : {}),
  };
}

/**
 * Parse a request body as JSON-RPC 2.0, once, within bounds: UTF-8, JSON, at most
 * {@link MAX_MCP_DEPTH} levels and {@link MAX_MCP_VALUES} values, a message or a batch of at most
 * {@link MAX_MCP_BATCH} messages, each with `jsonrpc: "2.0"` and a string `method` (or a response).
 * @param bytes the exact body bytes (the ones the request proof covers)
 * @returns the messages
 * @throws TrustplaneError `mcp_invalid_jsonrpc`
 * @example
 * parseJsonRpcBody(new TextEncoder().encode('{"jsonrpc":"2.0","id":1,"method":"ping"}'))
 */
export function parseJsonRpcBody(bytes: Uint8Array): McpBody {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw invalid('the body is not UTF-8');
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch {
    throw new TrustplaneError('mcp_invalid_jsonrpc', 'the body is not JSON', { jsonrpc_code: -32700 });
  }
  checkShape(root);
  const batch = Array.isArray(root);
  const items = batch ? (root as unknown[]) : [root];
  if (items.length === 0 || items.length > MAX_MCP_BATCH) {
    throw invalid(`a JSON-RPC batch holds 1 to ${MAX_MCP_BATCH} messages`);
  }
  const messages: McpMessage[] = [];
  for (const item of items) {
    const m = message(item);
    if (m === undefined) throw invalid('not a JSON-RPC 2.0 message');
    messages.push(m);
  }
  return { messages, batch };
}
