import { TrustplaneError } from '../../authcore/errors.js';

/**
 * Stable codes of {@link SvidError} (registry codes of the `svid` layer):
 * - `svid_malformed`: empty or oversized chain, undecodable DER, inconsistent certificate fields;
 * - `svid_bundle_malformed`: a trust bundle (JSON, JWKS or PEM) could not be used;
 * - `svid_no_uri_san` / `svid_multiple_uri_sans`: the leaf does not carry exactly one URI SAN;
 * - `svid_invalid_spiffe_id`: the URI SAN is not a SPIFFE ID, or has no path;
 * - `svid_leaf_is_ca`: the leaf has basicConstraints cA=true;
 * - `svid_bad_key_usage`: the leaf keyUsage lacks digitalSignature or has keyCertSign/cRLSign;
 * - `svid_intermediate_not_ca`: an intermediate is not a CA or lacks keyCertSign;
 * - `svid_unsupported_extension`: an unrecognised critical extension;
 * - `svid_expired` / `svid_not_yet_valid`: a certificate of the path is outside its validity;
 * - `svid_unknown_trust_domain`: no bundle (or no X.509 root) for the leaf's trust domain;
 * - `svid_untrusted_chain`: no path to a root of that bundle (unknown issuer, bad signature,
 *   weak algorithm, path length or name constraints violated);
 * - `svid_key_mismatch`: the private key does not belong to the leaf;
 * - `svid_source_unreadable`: an SVID source could not read its files.
 */
export type SvidErrorCode =
  | 'svid_malformed'
  | 'svid_bundle_malformed'
  | 'svid_no_uri_san'
  | 'svid_multiple_uri_sans'
  | 'svid_invalid_spiffe_id'
  | 'svid_leaf_is_ca'
  | 'svid_bad_key_usage'
  | 'svid_intermediate_not_ca'
  | 'svid_unsupported_extension'
  | 'svid_expired'
  | 'svid_not_yet_valid'
  | 'svid_unknown_trust_domain'
  | 'svid_untrusted_chain'
  | 'svid_key_mismatch'
  | 'svid_source_unreadable';

/**
 * An X.509-SVID, its key or its trust bundle was refused. `reason` is the registry code (layer
 * `svid`); the message describes the check that failed and never contains certificate bytes or key
 * material. The broker answers it as `workload_attestation_failed` with `details.svid_error`.
 *
 * @example
 * try { verifyX509Svid(chain, bundles, now) } catch (e) {
 *   if (e instanceof SvidError && e.reason === 'svid_expired') scheduleRefresh()
 * }
 */
export class SvidError extends TrustplaneError {
  /** Stable registry code (layer `svid`). */
  declare readonly reason: SvidErrorCode;

  /**
   * @param reason the registry code
   * @param message what failed, without certificate bytes or key material
   */
  constructor(reason: SvidErrorCode, message: string) {
    super(reason, message);
  }
}
