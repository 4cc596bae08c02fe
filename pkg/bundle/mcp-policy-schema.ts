import { z } from 'zod';
import { keyBindingSchema } from '../authcore/claims.js';

/*
 * The `mcp` option of a policy route (ours): what an MCP (Model Context Protocol) endpoint route
 * admits per JSON-RPC call. The contextPolicy and source schemas are passed in by
 * policy-bundle-schema.ts, which owns them (no import cycle).
 */

/** Longest `pattern` of an argument rule (characters): patterns are compiled once per loaded bundle. */
export const MAX_MCP_PATTERN_LENGTH = 256;
/** Largest `max_length` of a rule with a `pattern`: the longest string a pattern ever runs on. */
export const MAX_MCP_PATTERN_INPUT = 4096;
/** Most rules of one kind (tools, resources, prompts) in one `mcp` option. */
export const MAX_MCP_RULES = 256;
/** Most argument constraints of one rule. */
export const MAX_MCP_ARGUMENT_RULES = 32;

/**
 * A name or URI pattern: exact text, or `*` wildcards (each matches any run of characters, `/`
 * included; `\*` is a literal star). Matched against the whole name.
 */
export const mcpNamePattern = z
  .string()
  .min(1)
  .max(1024)
  // eslint-disable-next-line no-control-regex
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters');

/** A JSON-RPC method name or `prefix/*` pattern. */
const methodPattern = z
  .string()
  .regex(/^[A-Za-z0-9_./-]{1,128}\*?$/, 'must be a JSON-RPC method name, optionally ending in *');

const scalar = z.union([z.string().max(1024), z.number(), z.boolean(), z.null()]);

/** True when `source` compiles as an ECMAScript regular expression with the `u` flag. */
function compiles(source: string): boolean {
  try {
    new RegExp(source, 'u');
    return true;
  } catch {
    return false;
  }
}

/**
 * One argument constraint: the value at `pointer` (RFC 6901 JSON Pointer into the call's
 * `arguments`) must satisfy every check given. A value that is absent passes unless `required`.
 */
export const mcpArgumentRuleSchema = z
  .strictObject({
    /** RFC 6901 JSON Pointer into the arguments object: `/amount`, `/to/account`, `/items/0`. */
    pointer: z
      .string()
      .max(512)
      .regex(/^(?:\/(?:[^~/]|~[01])*)+$/, 'must be an RFC 6901 JSON Pointer such as /amount'),
    /** The value must be present. */
    required: z.boolean().optional(),
    /** The JSON type the value must have. */
    type: z.enum(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']).optional(),
    /** The value must equal one of these (strings, numbers, booleans, null). */
    enum: z.array(scalar).min(1).max(256).optional(),
    /** A number no smaller than this. A non-number fails. */
    min: z.number().optional(),
    /** A number no larger than this. A non-number fails. */
    max: z.number().optional(),
    /**
     * An ECMAScript regular expression (flag `u`) the whole string must match: it is anchored
     * (`^(?:pattern)$`). A non-string fails. At most 256 characters, compiled once per bundle.
     */
    pattern: z
      .string()
      .min(1)
      .max(MAX_MCP_PATTERN_LENGTH)
      .refine(compiles, 'must be a valid ECMAScript regular expression')
      .optional(),
    /** A string of at most this many characters (UTF-16 code units), or an array of at most this many items. */
    max_length: z.number().int().nonnegative().max(1_000_000).optional(),
  })
  .superRefine((rule, ctx) => {
    // A backtracking pattern costs time exponential in the input's length: with `pattern`, the
    // length is bounded (and checked before the pattern runs), so the policy author sees the bound.
    if (
      rule.pattern !== undefined &&
      (rule.max_length === undefined || rule.max_length > MAX_MCP_PATTERN_INPUT)
    ) {
      ctx.addIssue({
        code: 'custom',
        message: `a rule with pattern needs max_length (at most ${MAX_MCP_PATTERN_INPUT})`,
        path: ['max_length'],
      });
    }
  });

/**
 * Build the `mcp` route option's schema from the bundle's source and context-policy schemas.
 * @internal (policy-bundle-schema.ts calls it once)
 */
export function buildMcpPolicySchema<S extends z.ZodType, C extends z.ZodType>(source: S, context: C) {
  const callerRules = {
    /**
     * Narrows the route's `allowed_sources`: the caller must match one of these too (same shape as
     * the route's sources). Default: the route's sources.
     */
    allowed_sources: z.array(source).min(1).max(64).optional(),
    /** Minimum effective key binding for this tool, resource or prompt (on top of the route's). */
    required_key_binding: keyBindingSchema.optional(),
    /** Caller context this call requires (compared with the passport `ctx`, as the route's). */
    context_policy: context.optional(),
  };
  const tool = z.strictObject({
    /** Tool name, exact or with `*` wildcards. The first matching rule applies. */
    name: mcpNamePattern,
    ...callerRules,
    /** Constraints on `params.arguments`. */
    arguments: z.array(mcpArgumentRuleSchema).max(MAX_MCP_ARGUMENT_RULES).optional(),
    /** Sign a `trustplane-receipt-v1` over each admitted call of this tool and its result. */
    receipt: z.boolean().optional(),
  });
  const resource = z.strictObject({
    /** Resource URI, exact or with `*` wildcards (`file:///docs/*`). */
    uri: mcpNamePattern,
    ...callerRules,
  });
  const prompt = z.strictObject({
    /** Prompt name, exact or with `*` wildcards. */
    name: mcpNamePattern,
    ...callerRules,
    /** Constraints on `params.arguments`. */
    arguments: z.array(mcpArgumentRuleSchema).max(MAX_MCP_ARGUMENT_RULES).optional(),
  });
  return z.strictObject({
    /**
     * JSON-RPC methods allowed besides `initialize`, `ping` and `notifications/*` (always
     * allowed): e.g. `tools/list`, `tools/call`, `resources/*`. A name ending in `*` is a prefix.
     */
    methods: z.array(methodPattern).max(64).optional(),
    /** Tools the caller may call (`tools/call`) and see (`tools/list`); any other tool is denied. */
    tools: z.array(tool).max(MAX_MCP_RULES).optional(),
    /** Resources the caller may read (`resources/read`) and see (`resources/list`). */
    resources: z.array(resource).max(MAX_MCP_RULES).optional(),
    /** Prompts the caller may get (`prompts/get`) and see (`prompts/list`). */
    prompts: z.array(prompt).max(MAX_MCP_RULES).optional(),
    /**
     * Write the canonical arguments of each call into its audit event (default false: only their
     * SHA-256 is written). Arguments may carry personal data: opt in per route.
     */
    audit_arguments: z.boolean().optional(),
  });
}
