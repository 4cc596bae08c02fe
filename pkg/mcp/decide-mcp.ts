import { TrustplaneError } from '../authcore/errors.js';
import type { ReasonCode } from '../authcore/reason-codes.js';
import { canonicalizeJson } from '../internal/jcs.js';
import { sha256HexSync } from '../internal/sha256.js';
import type { McpPolicy } from '../bundle/policy-bundle-schema.js';
import {
  compileMcpPolicy,
  type CompiledArgumentRule,
  type CompiledMcpPolicy,
  type CompiledRule,
  type McpCallerRules,
} from './compile-policy.js';
import { parseJsonRpcBody, type JsonRpcId, type McpMessage } from './json-rpc.js';
import { resolvePointer } from './json-pointer.js';
import { isCanonicalResourceUri } from './resource-uri.js';

/**
 * Whether the verified caller meets a rule's own caller rules (sources narrowing the route's,
 * minimum key binding, context): `undefined` when it does, else the reason code that says why not
 * (for the audit event's detail). The verifier supplies it (the one source-policy evaluation).
 */
export type McpCallerCheck = (rules: McpCallerRules) => ReasonCode | undefined;

/** Longest canonical arguments text written to an audit event (`audit_arguments`). */
export const MAX_AUDITED_ARGUMENTS = 4096;

/** One JSON-RPC call as its audit event records it. */
export interface McpAuditCall {
  readonly method: string;
  readonly id?: JsonRpcId;
  /** `tools/call`: the tool; `prompts/get`: the prompt. */
  readonly tool?: string;
  /** `resources/read`: the URI. */
  readonly uri?: string;
  /** Lowercase hex SHA-256 of the RFC 8785 canonical `params.arguments` (when present). */
  readonly argumentsSha256?: string;
  /** The canonical arguments, when the route sets `audit_arguments` (and they fit). */
  readonly arguments?: string;
  /** Position in a batch, and the batch's size (batches only). */
  readonly batchIndex?: number;
  readonly batchSize?: number;
}

/** The MCP stage's verdict on one request body. */
export interface McpVerdict {
  /** One entry per JSON-RPC message, in order. */
  readonly calls: readonly McpAuditCall[];
  /** The request ids of the body (for the JSON-RPC deny answer), in order. */
  readonly ids: readonly JsonRpcId[];
  /** The deny, or undefined when every message is admitted. */
  readonly deny?: TrustplaneError;
  /** A called tool asks for a receipt. */
  readonly receipt: boolean;
  /** What list answers must be filtered to (undefined: the body has no list request). */
  readonly lists?: McpListFilterSpec;
}

/** The list requests of a body and what this caller may see. */
export interface McpListFilterSpec {
  /** Request id → list method (`tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`). */
  readonly requests: ReadonlyMap<JsonRpcId, string>;
  /**
   * Filter every answer whose result holds a `tools`, `resources`, `resourceTemplates` or
   * `prompts` array, whatever its id (a `GET` stream, which may replay answers to earlier
   * requests). Default false: only the answers to `requests`.
   */
  readonly anyAnswer?: boolean;
  /** True when the caller may see (and use) the tool, resource URI or prompt of that name. */
  visible(kind: 'tool' | 'resource' | 'prompt', name: string): boolean;
}

/** Methods that name one resource by `params.uri`, decided by the resource rules. */
const RESOURCE_METHODS = new Set(['resources/read', 'resources/subscribe', 'resources/unsubscribe']);

const LIST_METHODS = new Set(['tools/list', 'resources/list', 'resources/templates/list', 'prompts/list']);

const typeOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? 'number' : typeof v;

/** True when the rule constrains a number (its checks compare doubles). */
const numericRule = (rule: CompiledArgumentRule['rule']): boolean =>
  rule.type === 'number' ||
  rule.type === 'integer' ||
  rule.min !== undefined ||
  rule.max !== undefined ||
  rule.enum !== undefined;

/** The first argument constraint `args` breaks (its pointer), or undefined. */
function argumentProblem(rules: readonly CompiledArgumentRule[], args: unknown): string | undefined {
  for (const { rule, tokens, pattern } of rules) {
    const at = resolvePointer(args, tokens);
    if (!at.found) {
      if (rule.required === true) return rule.pointer;
      continue;
    }
    const v = at.value;
    const t = typeOf(v);
    // JSON.parse rounds a number to a double: beyond 2^53 the text the upstream parses (Python,
    // Go int64, Java long read it exactly) may not be the value compared here (10000000000000001
    // reads as 1e16). A constrained number must be exactly representable: |v| <= 2^53 - 1.
    if (typeof v === 'number' && numericRule(rule) && !(Math.abs(v) <= Number.MAX_SAFE_INTEGER)) {
      return rule.pointer;
    }
    if (rule.type !== undefined) {
      const ok = rule.type === 'integer' ? typeof v === 'number' && Number.isInteger(v) : t === rule.type;
      if (!ok) return rule.pointer;
    }
    if (rule.enum !== undefined && !rule.enum.some((e) => e === v)) return rule.pointer;
    if (rule.min !== undefined && (typeof v !== 'number' || v < rule.min)) return rule.pointer;
    if (rule.max !== undefined && (typeof v !== 'number' || v > rule.max)) return rule.pointer;
    if (rule.max_length !== undefined) {
      const length = typeof v === 'string' ? v.length : Array.isArray(v) ? v.length : undefined;
      if (length === undefined || length > rule.max_length) return rule.pointer;
    }
    // Last: the regular expression only ever runs on a string within max_length (the schema
    // requires max_length with pattern), so its cost is bounded by the policy's own limit.
    if (pattern !== undefined && (typeof v !== 'string' || !pattern.test(v))) return rule.pointer;
  }
  return undefined;
}

/** Per-request caller-check cache over rule objects. */
function callerCache(check: McpCallerCheck) {
  const results = new Map<CompiledRule, ReasonCode | undefined>();
  return (rule: CompiledRule): ReasonCode | undefined => {
    if (results.has(rule)) return results.get(rule);
    const r = check(rule.caller);
    results.set(rule, r);
    return r;
  };
}

const firstMatch = (rules: readonly CompiledRule[], name: string) => rules.find((r) => r.match.test(name));

const stringParam = (m: McpMessage, name: string): string | undefined => {
  const v = m.params?.[name];
  return typeof v === 'string' && v.length <= 4096 ? v : undefined;
};

/**
 * Decide the JSON-RPC calls of an MCP route's verified body: parse it once (bounded), admit each
 * message by the route's `mcp` rules, and describe each call for the audit. A batch is admitted
 * only when every message is: one denied message denies the batch (an agent then retries the
 * calls it needs one by one; a partly forwarded batch would let the server act on part of what
 * the caller signed as one unit).
 *
 * - methods: `initialize`, `ping`, `notifications/*` and JSON-RPC responses always; others only
 *   when `mcp.methods` lists them (`mcp_method_denied`);
 * - `tools/call`: the first rule whose name pattern matches; none, or the caller fails its
 *   sources/key binding/context: `mcp_tool_denied`; an argument constraint broken:
 *   `mcp_argument_denied`;
 * - `resources/read`, `resources/subscribe` and `resources/unsubscribe` by URI, which must be in
 *   canonical form (`mcp_resource_denied`); `prompts/get` by name (`mcp_prompt_denied`, arguments
 *   as for tools); `completion/complete` by its `ref` (a prompt name or a resource template).
 * @param policy the route's `mcp` option
 * @param body the exact verified body bytes
 * @param check the caller check of a rule (the verifier's source policy)
 * @returns the verdict (never throws for untrusted input: a malformed body is a verdict with
 *   `deny` `mcp_invalid_jsonrpc`)
 */
export function decideMcp(policy: McpPolicy, body: Uint8Array, check: McpCallerCheck): McpVerdict {
  const compiled = compileMcpPolicy(policy);
  let parsed;
  try {
    parsed = parseJsonRpcBody(body);
  } catch (e) {
    const deny = e instanceof TrustplaneError ? e : new TrustplaneError('mcp_invalid_jsonrpc', 'unparsable');
    return { calls: [], ids: [], deny, receipt: false };
  }
  const { messages, batch } = parsed;
  const callerFails = callerCache(check);
  const calls: McpAuditCall[] = [];
  const ids: JsonRpcId[] = [];
  const lists = new Map<JsonRpcId, string>();
  let deny: TrustplaneError | undefined;
  let receipt = false;
  const seenIds = new Set<JsonRpcId>();
  messages.forEach((m, i) => {
    const args = m.params?.arguments;
    const call: Record<string, unknown> = { method: m.method === '' ? '(response)' : m.method };
    if (m.id !== undefined) call.id = m.id;
    if (batch) {
      call.batchIndex = i;
      call.batchSize = messages.length;
    }
    if (m.id !== undefined && m.method !== '') {
      if (seenIds.has(m.id)) {
        deny ??= new TrustplaneError('mcp_invalid_jsonrpc', 'a request id is repeated in the batch');
      }
      seenIds.add(m.id);
      ids.push(m.id);
    }
    let refusal: TrustplaneError | undefined;
    if (args !== undefined) {
      try {
        const canonical = canonicalizeJson(args);
        call.argumentsSha256 = sha256HexSync(canonical);
        if (policy.audit_arguments === true && canonical.length <= MAX_AUDITED_ARGUMENTS) {
          call.arguments = canonical;
        }
      } catch {
        refusal = new TrustplaneError('mcp_invalid_jsonrpc', 'arguments are not canonicalizable JSON');
      }
    }
    if (refusal === undefined && m.method !== '' && !compiled.methods.some((re) => re.test(m.method))) {
      refusal = new TrustplaneError('mcp_method_denied', 'method not allowed on this route', {
        method: m.method.slice(0, 128),
      });
    }
    if (refusal === undefined && m.method === 'tools/call') {
      const name = stringParam(m, 'name');
      if (name !== undefined) call.tool = name;
      refusal = decideNamed(compiled.tools, name, args, 'mcp_tool_denied', callerFails);
      if (refusal === undefined && firstMatch(compiled.tools, name!)?.receipt === true) receipt = true;
    } else if (refusal === undefined && m.method === 'prompts/get') {
      const name = stringParam(m, 'name');
      if (name !== undefined) call.tool = name;
      refusal = decideNamed(compiled.prompts, name, args, 'mcp_prompt_denied', callerFails);
    } else if (refusal === undefined && RESOURCE_METHODS.has(m.method)) {
      const uri = stringParam(m, 'uri');
      if (uri !== undefined) call.uri = uri.slice(0, 2048);
      refusal =
        uri !== undefined && !isCanonicalResourceUri(uri)
          ? new TrustplaneError('mcp_resource_denied', 'the resource URI is not in canonical form')
          : decideNamed(compiled.resources, uri, undefined, 'mcp_resource_denied', callerFails);
    } else if (refusal === undefined && m.method === 'completion/complete') {
      refusal = decideCompletion(compiled, m, call, callerFails);
    } else if (refusal === undefined && LIST_METHODS.has(m.method) && m.id !== undefined) {
      lists.set(m.id, m.method);
    }
    deny ??= refusal;
    calls.push(call as unknown as McpAuditCall);
  });
  const visible = visibility(compiled, callerFails);
  return {
    calls,
    ids,
    receipt: receipt && lists.size === 0,
    ...(deny !== undefined ? { deny } : {}),
    ...(lists.size > 0 ? { lists: { requests: lists, visible } } : {}),
  };
}

/** What the caller may see in a list: the first matching rule admits the caller. */
function visibility(
  compiled: CompiledMcpPolicy,
  callerFails: (rule: CompiledRule) => ReasonCode | undefined,
): McpListFilterSpec['visible'] {
  return (kind, name) => {
    const rules =
      kind === 'tool' ? compiled.tools : kind === 'prompt' ? compiled.prompts : compiled.resources;
    const rule = firstMatch(rules, name);
    return rule !== undefined && callerFails(rule) === undefined;
  };
}

/**
 * The verdict on a request without a JSON-RPC body on an MCP route (`GET`: the server's event
 * stream; `DELETE`: the session's end): nothing to decide per call; a `GET` stream is filtered as
 * a list answer wherever a message's result holds a list (`anyAnswer`), since a server with an
 * event store replays answers to earlier list requests on it (`Last-Event-ID`).
 * @param policy the route's `mcp` option
 * @param method the HTTP method
 * @param check the caller check of a rule (the verifier's source policy)
 * @returns the verdict (never a deny)
 */
export function decideMcpStream(policy: McpPolicy, method: string, check: McpCallerCheck): McpVerdict {
  const compiled = compileMcpPolicy(policy);
  const lists: McpListFilterSpec | undefined =
    method === 'GET'
      ? { requests: new Map(), anyAnswer: true, visible: visibility(compiled, callerCache(check)) }
      : undefined;
  return { calls: [], ids: [], receipt: false, ...(lists !== undefined ? { lists } : {}) };
}

function decideNamed(
  rules: readonly CompiledRule[],
  name: string | undefined,
  args: unknown,
  reason: 'mcp_tool_denied' | 'mcp_prompt_denied' | 'mcp_resource_denied',
  callerFails: (rule: CompiledRule) => ReasonCode | undefined,
): TrustplaneError | undefined {
  if (name === undefined)
    return new TrustplaneError('mcp_invalid_jsonrpc', 'the call names no tool, prompt or URI');
  const rule = firstMatch(rules, name);
  if (rule === undefined) return new TrustplaneError(reason, 'no rule admits this name');
  const cause = callerFails(rule);
  if (cause !== undefined) {
    return new TrustplaneError(reason, `the caller does not meet the rule (${cause})`, { cause });
  }
  if (args !== undefined && typeof args !== 'object') {
    return new TrustplaneError('mcp_invalid_jsonrpc', 'arguments must be an object');
  }
  const problem = argumentProblem(rule.arguments, args ?? {});
  if (problem !== undefined) {
    return new TrustplaneError(
      'mcp_argument_denied',
      `an argument breaks its constraint: ${problem.slice(0, 256)}`,
      {
        pointer: problem.slice(0, 256),
      },
    );
  }
  return undefined;
}

/**
 * `completion/complete` asks the server for argument values of a prompt (`ref/prompt`, by name)
 * or of a resource template (`ref/resource`, by its template text): the prompt or resource rules
 * decide it as they decide `prompts/get` and `resources/templates/list` (the template text is
 * matched as it is, as the list filter does; a template is not a URI).
 */
function decideCompletion(
  compiled: CompiledMcpPolicy,
  m: McpMessage,
  call: Record<string, unknown>,
  callerFails: (rule: CompiledRule) => ReasonCode | undefined,
): TrustplaneError | undefined {
  const ref = m.params?.ref;
  if (typeof ref !== 'object' || ref === null || Array.isArray(ref)) {
    return new TrustplaneError('mcp_invalid_jsonrpc', 'the completion names no prompt or resource');
  }
  const { type, name, uri } = ref as Record<string, unknown>;
  if (type === 'ref/prompt' && typeof name === 'string' && name.length <= 4096) {
    call.tool = name;
    return decideNamed(compiled.prompts, name, undefined, 'mcp_prompt_denied', callerFails);
  }
  if (type === 'ref/resource' && typeof uri === 'string' && uri.length <= 4096) {
    call.uri = uri.slice(0, 2048);
    return decideNamed(compiled.resources, uri, undefined, 'mcp_resource_denied', callerFails);
  }
  return new TrustplaneError('mcp_invalid_jsonrpc', 'the completion names no prompt or resource');
}
