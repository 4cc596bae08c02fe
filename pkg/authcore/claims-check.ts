import type { PassportCnf, PassportContext, PassportProvenance } from './claims.js';
import { KEY_BINDINGS, type KeyBinding } from './signer-taxonomy.js';

/*
 * The passport claim schemas of `claims.ts`, checked by hand for the verifier's hot path: zod
 * builds an issue list and a result object per call, which costs as much as the rest of the
 * passport parse. The zod schemas stay the source of truth; `test/authcore/claims-check.test.ts`
 * checks that these functions accept exactly what they accept, with equal output, over generated
 * inputs.
 */

/** The output of `passportClaimsSchema` (aud not yet normalized, cnf not yet checked). */
export interface CheckedPassportClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | [string];
  readonly iat: number;
  readonly exp: number;
  readonly nbf?: number;
  readonly jti: string;
  readonly trust_domain: string;
  readonly cnf?: unknown;
  readonly ctx?: PassportContext;
  readonly provenance?: PassportProvenance;
}

type Bounded = (value: unknown) => value is string;
const bounded =
  (max: number): Bounded =>
  (value: unknown): value is string =>
    typeof value === 'string' && value.length >= 1 && value.length <= max;
const b64 = bounded(64);
const b255 = bounded(255);
const b256 = bounded(256);
const b2048 = bounded(2048);

function isNumericDate(value: unknown): value is number {
  return (
    typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= Number.MAX_SAFE_INTEGER
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const KEY_BINDING_SET: ReadonlySet<unknown> = new Set<KeyBinding>(KEY_BINDINGS);

/**
 * A strict object of optional bounded strings: undefined for a non-object, an unknown member or a
 * member out of bounds; else a copy with the members present.
 */
function strictOptionalStrings(
  value: unknown,
  members: Readonly<Record<string, Bounded>>,
): Record<string, string> | undefined {
  if (!isRecord(value)) return undefined;
  const out: Record<string, string> = {};
  for (const key of Object.keys(value)) {
    const check = Object.hasOwn(members, key) ? members[key] : undefined;
    if (check === undefined) return undefined;
    const member = value[key];
    if (member === undefined) continue;
    if (!check(member)) return undefined;
    out[key] = member;
  }
  return out;
}

const CONTEXT_MEMBERS: Readonly<Record<string, Bounded>> = {
  actor_type: b256,
  purpose: b256,
  tool_name: b256,
  workflow_id: b256,
  max_txn_value: b64,
};
const PROVENANCE_MEMBERS: Readonly<Record<string, Bounded>> = {
  profile: b256,
  posture: b256,
  spiffe_id: b2048,
  signer: b256,
  peer: b2048,
};

/**
 * `passportClaimsSchema.safeParse(payload)`, by hand.
 * @returns the checked claims (only the members the schema knows), or undefined when the schema
 *   refuses them
 * @example
 * const claims = checkPassportClaims(JSON.parse(payload))
 */
export function checkPassportClaims(payload: unknown): CheckedPassportClaims | undefined {
  if (!isRecord(payload)) return undefined;
  const { iss, sub, aud, iat, exp, nbf, jti, trust_domain, cnf, ctx, provenance } = payload;
  if (!b2048(iss) || !b2048(sub)) return undefined;
  let audience: string | [string];
  if (b2048(aud)) audience = aud;
  else if (Array.isArray(aud) && aud.length === 1 && b2048(aud[0])) audience = [aud[0]];
  else return undefined;
  if (!isNumericDate(iat) || !isNumericDate(exp)) return undefined;
  if (nbf !== undefined && !isNumericDate(nbf)) return undefined;
  if (!b256(jti) || !b255(trust_domain)) return undefined;
  let context: PassportContext | undefined;
  if (ctx !== undefined) {
    context = strictOptionalStrings(ctx, CONTEXT_MEMBERS);
    if (context === undefined) return undefined;
  }
  let prov: PassportProvenance | undefined;
  if (provenance !== undefined) {
    prov = strictOptionalStrings(provenance, PROVENANCE_MEMBERS);
    if (prov === undefined) return undefined;
  }
  return {
    iss,
    sub,
    aud: audience,
    iat,
    exp,
    ...(nbf !== undefined ? { nbf } : {}),
    jti,
    trust_domain,
    ...(cnf !== undefined ? { cnf } : {}),
    ...(context !== undefined ? { ctx: context } : {}),
    ...(prov !== undefined ? { provenance: prov } : {}),
  };
}

/**
 * `passportCnfSchema.safeParse(value)`, by hand.
 * @returns a copy of the cnf claim, or undefined when the schema refuses it
 * @example
 * const cnf = checkPassportCnf(claims.cnf)
 */
export function checkPassportCnf(value: unknown): PassportCnf | undefined {
  if (!isRecord(value)) return undefined;
  for (const key of Object.keys(value)) {
    if (key !== 'kid' && key !== 'key_binding' && key !== 'public_key_b64url') return undefined;
  }
  const { kid, key_binding, public_key_b64url } = value;
  if (!b256(kid) || !KEY_BINDING_SET.has(key_binding)) return undefined;
  if (typeof public_key_b64url !== 'string' || public_key_b64url.length !== 43) return undefined;
  return { kid, key_binding: key_binding as KeyBinding, public_key_b64url };
}
