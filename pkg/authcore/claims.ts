import { z } from 'zod';
import { KEY_BINDINGS, type KeyBinding } from './signer-taxonomy.js';

export const keyBindingSchema = z.enum(
  KEY_BINDINGS as readonly KeyBinding[] as [KeyBinding, ...KeyBinding[]],
);
const keyBinding = keyBindingSchema;
const bounded = (max: number) => z.string().min(1).max(max);
const numericDate = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/**
 * `ctx`: caller context (all values strings). The workload's own claim, carried signed so that
 * verifiers can apply context policy to it: a broker copies it (issuance grants may restrict it),
 * it does not vouch for it.
 */
export const passportContextSchema = z.strictObject({
  actor_type: bounded(256).optional(),
  purpose: bounded(256).optional(),
  tool_name: bounded(256).optional(),
  workflow_id: bounded(256).optional(),
  max_txn_value: bounded(64).optional(),
});

/** `provenance`: how the signer was attested. */
export const passportProvenanceSchema = z.strictObject({
  profile: bounded(256).optional(),
  posture: bounded(256).optional(),
  spiffe_id: bounded(2048).optional(),
  signer: bounded(256).optional(),
  peer: bounded(2048).optional(),
});

/** `cnf`: the proof-of-possession key every request proof must be signed with. */
export const passportCnfSchema = z.strictObject({
  kid: bounded(256),
  key_binding: keyBinding,
  public_key_b64url: z.string().length(43),
});

/**
 * passport-v1 claims. Unknown top-level claims are ignored (RFC 7519 section 4: claims that are
 * not understood must be ignored); every claim we use is typed strictly.
 */
export const passportClaimsSchema = z.object({
  iss: bounded(2048),
  sub: bounded(2048),
  aud: z.union([bounded(2048), z.tuple([bounded(2048)])]),
  iat: numericDate,
  exp: numericDate,
  nbf: numericDate.optional(),
  jti: bounded(256),
  trust_domain: bounded(255),
  // Optional here so that a missing cnf is reported as `invalid_cnf` (checked after the signature).
  cnf: z.unknown().optional(),
  ctx: passportContextSchema.optional(),
  provenance: passportProvenanceSchema.optional(),
});

/** Context claim values. */
export type PassportContext = z.infer<typeof passportContextSchema>;
/** Provenance claim values. */
export type PassportProvenance = z.infer<typeof passportProvenanceSchema>;
/** Confirmation (proof key) claim. */
export type PassportCnf = z.infer<typeof passportCnfSchema>;

/** Validated passport claims (aud normalized to a string). */
export interface PassportClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string;
  readonly iat: number;
  readonly exp: number;
  readonly nbf?: number;
  readonly jti: string;
  readonly trust_domain: string;
  readonly cnf: PassportCnf;
  readonly ctx?: PassportContext;
  readonly provenance?: PassportProvenance;
}

/** The claim names passport-v1 requires (dotted for nested claims). */
export const REQUIRED_PASSPORT_CLAIMS = Object.freeze([
  'iss',
  'sub',
  'aud',
  'iat',
  'exp',
  'jti',
  'trust_domain',
  'cnf.kid',
  'cnf.key_binding',
  'cnf.public_key_b64url',
] as const);
