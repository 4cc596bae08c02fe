import { z } from 'zod';
import type { PassportContext } from '../authcore/claims.js';
import { compareDecimal } from '../verifier/source-policy.js';

/** The default and largest passport lifetime a broker mints, seconds. */
export const DEFAULT_MAX_TTL_SECONDS = 300;

const text = (max: number) => z.string().min(1).max(max);
const allowedValues = z.array(text(256)).min(1).max(256);

/**
 * Which `ctx` values a grant lets its subjects ask for. The workload writes `ctx` itself; without
 * this the broker copies it as asked. A field named here must be in the request, with one of the
 * listed values (`max_txn_value`: at most this decimal); a field not named here is not restricted.
 */
export const issuanceContextSchema = z.strictObject({
  actor_type: allowedValues.optional(),
  purpose: allowedValues.optional(),
  tool_name: allowedValues.optional(),
  workflow_id: allowedValues.optional(),
  /** Highest `ctx.max_txn_value` the subject may claim, as a decimal string. */
  max_txn_value: z
    .string()
    .regex(/^(?:0|[1-9][0-9]{0,29})(?:\.[0-9]{1,18})?$/, 'must be a decimal string')
    .optional(),
});

/** One grant: which subjects may get passports for which audiences and routes. */
export const issuanceGrantSchema = z
  .strictObject({
    /** Exact subject (a SPIFFE ID for SPIFFE identities). */
    subject_exact: text(2048).optional(),
    /** Subject prefix; must end with `/` so `spiffe://td/ns/a/` never matches `spiffe://td/ns/ab`. */
    subject_prefix: text(2048).endsWith('/', 'subject_prefix must end with /').optional(),
    /** Audiences this grant covers (`*` = any audience of the policy bundle). */
    audiences: z.array(text(2048)).min(1).max(64),
    /** Route ids this grant covers (`*` = every route of those audiences). */
    routes: z.array(text(256)).min(1).max(1024),
    /** Cap on the lifetime for this grant, seconds. */
    max_ttl_seconds: z.number().int().min(1).max(DEFAULT_MAX_TTL_SECONDS).optional(),
    /** Restricts the `ctx` values this grant covers (see {@link issuanceContextSchema}). */
    ctx: issuanceContextSchema.optional(),
  })
  .superRefine((grant, ctx) => {
    if ((grant.subject_exact === undefined) === (grant.subject_prefix === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'exactly one of subject_exact and subject_prefix is required',
        path: ['subject_exact'],
      });
    }
  });

/**
 * `trustplane-broker-issuance-v1`: the broker's own narrowing of the policy bundle. Without a
 * file, every route whose `allowed_sources` name the broker's issuer and the workload's subject
 * may be minted for, up to the default TTL.
 */
export const issuancePolicySchema = z.strictObject({
  version: z.literal('trustplane-broker-issuance-v1'),
  /** Lifetime of minted passports, seconds (default and maximum 300). */
  ttl_seconds: z.number().int().min(1).max(DEFAULT_MAX_TTL_SECONDS).optional(),
  /** When present, a subject needs a matching grant for the audience and route. */
  grants: z.array(issuanceGrantSchema).max(1024).optional(),
});

/** A broker issuance policy document. */
export type IssuancePolicy = z.infer<typeof issuancePolicySchema>;
/** One grant of an issuance policy. */
export type IssuanceGrant = z.infer<typeof issuanceGrantSchema>;
/** The `ctx` restriction of a grant. */
export type IssuanceContext = z.infer<typeof issuanceContextSchema>;

const CONTEXT_VALUE_FIELDS = ['actor_type', 'purpose', 'tool_name', 'workflow_id'] as const;

/** True when the `ctx` a workload asks for is within a grant's `ctx` restriction (absent: any). */
export function contextAllowed(rule: IssuanceContext | undefined, ctx: PassportContext | undefined): boolean {
  if (rule === undefined) return true;
  for (const field of CONTEXT_VALUE_FIELDS) {
    const allowed = rule[field];
    if (allowed === undefined) continue;
    const value = ctx?.[field];
    if (value === undefined || !allowed.includes(value)) return false;
  }
  if (rule.max_txn_value !== undefined) {
    const value = ctx?.max_txn_value;
    // A missing or malformed amount is refused: absence must not read as "no limit".
    const cmp = value === undefined ? undefined : compareDecimal(value, rule.max_txn_value);
    if (cmp === undefined || cmp > 0) return false;
  }
  return true;
}

/** True when a subject rule (`subject_exact` or a `/`-terminated `subject_prefix`) matches. */
export function subjectMatches(
  rule: { readonly subject_exact?: string | undefined; readonly subject_prefix?: string | undefined },
  subject: string,
): boolean {
  if (rule.subject_exact !== undefined) return rule.subject_exact === subject;
  return rule.subject_prefix !== undefined && subject.startsWith(rule.subject_prefix);
}

/**
 * The grant that lets `subject` get a passport for `audience` and `routeId` with the `ctx` it
 * asks for, or undefined. With no `grants` list, returns a permissive pseudo-grant (the policy
 * bundle alone decides).
 */
export function findGrant(
  policy: IssuancePolicy | undefined,
  subject: string,
  audience: string,
  routeId: string,
  ctx?: PassportContext,
): IssuanceGrant | undefined {
  if (policy?.grants === undefined) {
    return { subject_prefix: '', audiences: ['*'], routes: ['*'] };
  }
  return policy.grants.find(
    (g) =>
      subjectMatches(g, subject) &&
      (g.audiences.includes('*') || g.audiences.includes(audience)) &&
      (g.routes.includes('*') || g.routes.includes(routeId)) &&
      contextAllowed(g.ctx, ctx),
  );
}
