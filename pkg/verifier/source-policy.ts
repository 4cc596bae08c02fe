import { TrustplaneError } from '../authcore/errors.js';
import type { VerifiedPassport } from '../authcore/verify-passport.js';
import { maxKeyBinding, meetsKeyBinding } from '../authcore/signer-taxonomy.js';
import type { ReasonCode } from '../authcore/reason-codes.js';
import type {
  ContextPolicy,
  PolicyBundle,
  PolicyRoute,
  PolicySource,
  ProvenancePolicy,
} from '../bundle/policy-bundle-schema.js';

/** Bundle-level defaults and rules that apply to every route. */
export type BundleRules = Pick<
  PolicyBundle,
  'default_required_key_binding' | 'context_policy' | 'provenance_policy'
>;

/**
 * What the source policy reads of a passport: its claims, its issuer's trust-material entry and its
 * effective key binding. A verified passport is one; the broker passes the claims it is about to mint.
 */
export type SourcePolicySubject = Pick<VerifiedPassport, 'claims' | 'issuer' | 'effectiveKeyBinding'>;

/** The fields of a route the policy step reads. */
export type RouteRules = Pick<PolicyRoute, 'route_id' | 'required_key_binding' | 'allowed_sources'>;

const DECIMAL = /^(\d{1,30})(?:\.(\d{1,18}))?$/;

/** Compare two non-negative decimal strings exactly; undefined when either is malformed. */
export function compareDecimal(a: string, b: string): number | undefined {
  const ma = DECIMAL.exec(a);
  const mb = DECIMAL.exec(b);
  if (!ma || !mb) return undefined;
  const scale = (m: RegExpExecArray) => BigInt(m[1]! + (m[2] ?? '').padEnd(18, '0'));
  const x = scale(ma);
  const y = scale(mb);
  return x < y ? -1 : x > y ? 1 : 0;
}

function contextProblem(
  policy: ContextPolicy | undefined,
  passport: SourcePolicySubject,
): string | undefined {
  if (!policy) return undefined;
  const ctx = passport.claims.ctx ?? {};
  const pairs: [string | undefined, string | undefined, string][] = [
    [policy.required_actor_type, ctx.actor_type, 'actor_type'],
    [policy.required_purpose, ctx.purpose, 'purpose'],
    [policy.required_tool_name, ctx.tool_name, 'tool_name'],
    [policy.required_workflow_id, ctx.workflow_id, 'workflow_id'],
  ];
  for (const [required, actual, name] of pairs) {
    if (required !== undefined && actual !== required) return name;
  }
  if (policy.max_txn_value !== undefined) {
    const actual = ctx.max_txn_value;
    const cmp = actual === undefined ? undefined : compareDecimal(actual, policy.max_txn_value);
    if (cmp === undefined || cmp > 0) return 'max_txn_value';
  }
  return undefined;
}

function provenanceProblem(
  policy: ProvenancePolicy | undefined,
  passport: SourcePolicySubject,
): string | undefined {
  if (!policy) return undefined;
  const p = passport.claims.provenance ?? {};
  if (policy.profile !== undefined && p.profile !== policy.profile) return 'profile';
  if (policy.required_posture !== undefined && p.posture !== policy.required_posture) return 'posture';
  if (policy.required_signer !== undefined && p.signer !== policy.required_signer) return 'signer';
  if (policy.required_spiffe_trust_domain !== undefined) {
    const prefix = `spiffe://${policy.required_spiffe_trust_domain}/`;
    if (
      p.spiffe_id === undefined ||
      !p.spiffe_id.startsWith(prefix) ||
      p.spiffe_id.length === prefix.length
    ) {
      return 'spiffe_id';
    }
  }
  return undefined;
}

function subjectMatches(source: PolicySource, subject: string): boolean {
  if (source.subject_exact !== undefined) return subject === source.subject_exact;
  if (source.subject_prefix !== undefined) {
    return subject.startsWith(source.subject_prefix) && subject.length > source.subject_prefix.length;
  }
  return false;
}

/**
 * Match a verified passport against a route's allowed sources, then apply key-binding, context
 * and provenance rules. Narrowing is reported at the first step that leaves no candidate, so the
 * reason says which selector failed: issuer, source type, trust domain, then subject.
 * @returns the source that admitted the request
 * @throws TrustplaneError `source_issuer_mismatch`, `source_type_mismatch`,
 *   `source_trust_domain_mismatch`, `source_subject_mismatch`, `insufficient_key_binding`,
 *   `context_policy_mismatch`, `provenance_policy_mismatch`
 */
export function evaluateSourcePolicy(
  route: RouteRules,
  bundle: BundleRules,
  passport: SourcePolicySubject,
): PolicySource {
  const { claims, issuer } = passport;
  let candidates = route.allowed_sources.filter((s) => s.issuer === claims.iss);
  if (candidates.length === 0)
    throw new TrustplaneError('source_issuer_mismatch', 'no allowed source for issuer');
  candidates = candidates.filter((s) => s.source_type === issuer.sourceType);
  if (candidates.length === 0)
    throw new TrustplaneError('source_type_mismatch', 'issuer source type not allowed');
  candidates = candidates.filter((s) => s.trust_domain === claims.trust_domain);
  if (candidates.length === 0) {
    throw new TrustplaneError('source_trust_domain_mismatch', 'trust domain not allowed for source');
  }
  candidates = candidates.filter((s) => subjectMatches(s, claims.sub));
  if (candidates.length === 0)
    throw new TrustplaneError('source_subject_mismatch', 'subject not allowed for source');

  let first: TrustplaneError | undefined;
  for (const source of candidates) {
    const required = maxKeyBinding(
      maxKeyBinding(
        route.required_key_binding ?? bundle.default_required_key_binding ?? 'software',
        'software',
      ),
      source.required_key_binding ?? 'software',
    );
    let failure: [ReasonCode, string, Record<string, string>] | undefined;
    if (!meetsKeyBinding(passport.effectiveKeyBinding, required)) {
      failure = [
        'insufficient_key_binding',
        'key binding below route minimum',
        { required_key_binding: required, effective_key_binding: passport.effectiveKeyBinding },
      ];
    } else {
      const ctx =
        contextProblem(bundle.context_policy, passport) ?? contextProblem(source.context_policy, passport);
      if (ctx !== undefined) {
        failure = ['context_policy_mismatch', 'context policy not satisfied', { field: ctx }];
      } else {
        const prov =
          provenanceProblem(bundle.provenance_policy, passport) ??
          provenanceProblem(source.provenance_policy, passport);
        if (prov !== undefined)
          failure = ['provenance_policy_mismatch', 'provenance policy not satisfied', { field: prov }];
      }
    }
    if (failure === undefined) return source;
    first ??= new TrustplaneError(failure[0], failure[1], failure[2]);
  }
  throw first!;
}
