import type {
  ContextPolicy,
  McpArgumentRule,
  McpPolicy,
  PolicySource,
} from '../bundle/policy-bundle-schema.js';
import type { KeyBinding } from '../authcore/signer-taxonomy.js';
import { compileGlob } from './glob.js';
import { pointerTokens } from './json-pointer.js';

/** What a tool, resource or prompt rule asks of the caller, besides the route's rules. */
export interface McpCallerRules {
  readonly allowed_sources?: readonly PolicySource[] | undefined;
  readonly required_key_binding?: KeyBinding | undefined;
  readonly context_policy?: ContextPolicy | undefined;
}

/** An argument constraint, compiled. */
export interface CompiledArgumentRule {
  readonly rule: McpArgumentRule;
  readonly tokens: readonly string[];
  readonly pattern: RegExp | undefined;
}

/** A tool, resource or prompt rule, compiled. */
export interface CompiledRule {
  readonly index: number;
  readonly match: RegExp;
  readonly caller: McpCallerRules;
  readonly arguments: readonly CompiledArgumentRule[];
  readonly receipt: boolean;
}

/** A route's `mcp` option, compiled once per loaded bundle. */
export interface CompiledMcpPolicy {
  readonly policy: McpPolicy;
  readonly methods: readonly RegExp[];
  readonly tools: readonly CompiledRule[];
  readonly resources: readonly CompiledRule[];
  readonly prompts: readonly CompiledRule[];
}

/** Methods every MCP route admits: the lifecycle and liveness, and notifications. */
export const DEFAULT_MCP_METHODS: readonly string[] = Object.freeze([
  'initialize',
  'ping',
  'notifications/*',
]);

const compiledPolicies = new WeakMap<McpPolicy, CompiledMcpPolicy>();

function compileArguments(rules: readonly McpArgumentRule[] | undefined): CompiledArgumentRule[] {
  return (rules ?? []).map((rule) => ({
    rule,
    tokens: pointerTokens(rule.pointer),
    // ECMAScript regex, anchored to the whole string; `u` flag (the schema checked it compiles).
    pattern: rule.pattern !== undefined ? new RegExp(`^(?:${rule.pattern})$`, 'u') : undefined,
  }));
}

function compileRules(
  rules: readonly (McpCallerRules & {
    readonly name?: string;
    readonly uri?: string;
    readonly arguments?: readonly McpArgumentRule[] | undefined;
    readonly receipt?: boolean | undefined;
  })[],
): CompiledRule[] {
  return rules.map((r, index) => ({
    index,
    match: compileGlob(r.name ?? r.uri ?? ''),
    caller: r,
    arguments: compileArguments(r.arguments),
    receipt: r.receipt === true,
  }));
}

/**
 * Compile a route's `mcp` option: method, name and URI patterns and argument patterns become
 * regular expressions once; the result is cached for the life of the (frozen) policy object, so a
 * loaded bundle compiles each route once and a reload compiles the new one.
 * @param policy the route's `mcp` option (validated by the bundle schema)
 * @returns the compiled policy
 */
export function compileMcpPolicy(policy: McpPolicy): CompiledMcpPolicy {
  const hit = compiledPolicies.get(policy);
  if (hit !== undefined) return hit;
  const compiled: CompiledMcpPolicy = {
    policy,
    methods: [...DEFAULT_MCP_METHODS, ...(policy.methods ?? [])].map(compileGlob),
    tools: compileRules(policy.tools ?? []),
    resources: compileRules(policy.resources ?? []),
    prompts: compileRules(policy.prompts ?? []),
  };
  compiledPolicies.set(policy, compiled);
  return compiled;
}
