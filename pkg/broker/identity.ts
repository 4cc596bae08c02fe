import type { PassportProvenance } from '../authcore/claims.js';
import type { KeyBinding } from '../authcore/signer-taxonomy.js';

/** The provenance profile of SPIFFE-attested passports. */
export const SPIFFE_PROVENANCE_PROFILE = 'trustplane-spiffe-spire-k8s-v1';
/** The posture of a passport whose workload presented an X.509-SVID the broker verified. */
export const SPIFFE_POSTURE_VERIFIED = 'spiffe_svid_verified';

/** Who a broker mints passports for, right now. */
export interface WorkloadIdentity {
  /** Passport `sub` (the SPIFFE ID for SPIFFE identities). */
  readonly subject: string;
  /** Passport `trust_domain`. */
  readonly trustDomain: string;
  /** The signer class the broker vouches for (`cnf.key_binding`). */
  readonly keyBinding: KeyBinding;
  /** Passport `provenance`. */
  readonly provenance?: PassportProvenance;
  /** Epoch seconds after which this identity must not be used (an SVID's notAfter). */
  readonly notAfter?: number;
}

/**
 * Where a broker's workload identity comes from. `current()` returns the identity in force or
 * throws a `TrustplaneError` (`workload_attestation_failed`, `workload_identity_unavailable`);
 * it never returns an expired identity.
 */
export interface IdentitySource {
  /** The signer class this source yields. */
  readonly keyBinding: KeyBinding;
  /** A description for logs (`software`, `spiffe-files`, `workload-api`). */
  readonly kind: string;
  current(): WorkloadIdentity;
  close?(): void | Promise<void>;
}

/**
 * A software identity: a configured subject, class `software`.
 * @example
 * const identity = softwareIdentity({ subject: 'orders-worker', trustDomain: 'example.org' })
 */
export function softwareIdentity(options: { subject: string; trustDomain: string }): IdentitySource {
  const identity: WorkloadIdentity = Object.freeze({
    subject: options.subject,
    trustDomain: options.trustDomain,
    keyBinding: 'software',
    provenance: Object.freeze({ signer: 'software' }),
  });
  return { keyBinding: 'software', kind: 'software', current: () => identity };
}

/** The passport identity of a verified SPIFFE ID. */
export function spiffeWorkloadIdentity(
  spiffeId: string,
  trustDomain: string,
  notAfter: number,
  peer?: string,
): WorkloadIdentity {
  const provenance: PassportProvenance = {
    profile: SPIFFE_PROVENANCE_PROFILE,
    posture: SPIFFE_POSTURE_VERIFIED,
    spiffe_id: spiffeId,
    signer: 'x509-svid',
    ...(peer !== undefined ? { peer } : {}),
  };
  return Object.freeze({
    subject: spiffeId,
    trustDomain,
    keyBinding: 'attested_workload',
    provenance: Object.freeze(provenance),
    notAfter,
  });
}
