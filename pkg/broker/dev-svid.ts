import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  SubjectKeyIdentifier,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_serverAuth,
} from '@peculiar/asn1-x509';
import {
  CLOCK_SKEW_SECONDS,
  derToPem,
  extension,
  keyIdentifier,
  makeName,
  parseSpki,
  requireClock,
  requireTtl,
  signCertificate,
  uriSan,
} from './dev-certificate.js';
import { decodeCa, parseCaKey, type DevCa } from './dev-spiffe-ca.js';
import { parseSpiffeId } from './spiffe/spiffe-id.js';
import { SvidError } from './spiffe/svid-error.js';

/** Default lifetime of a development X.509-SVID: 24 hours. */
export const DEFAULT_DEV_SVID_TTL_SECONDS = 24 * 3600;

/** Options of {@link mintDevSvid}. */
export interface MintDevSvidOptions {
  /** The workload's SPIFFE ID: a path is required, and the trust domain must be the CA's. */
  readonly spiffeId: string;
  /** The injected clock, epoch seconds (fractions are dropped). */
  readonly nowSeconds: number;
  /** Lifetime from `nowSeconds`, in seconds (default 24 h); cut short at the CA's notAfter. */
  readonly ttlSeconds?: number;
}

/** A development X.509-SVID in spiffe-helper's three-file shape. For local development only. */
export interface DevSvid {
  /** The SPIFFE ID of the leaf. */
  readonly spiffeId: string;
  /** Certificate chain, PEM, leaf first (spiffe-helper `svid.pem`; the root is not included). */
  readonly chainPem: string;
  /** The leaf private key, PKCS#8 PEM (spiffe-helper `svid_key.pem`). */
  readonly keyPem: string;
  /** The CA certificate, PEM (spiffe-helper `svid_bundle.pem`). */
  readonly bundlePem: string;
  /** notAfter of the leaf, epoch seconds. */
  readonly notAfter: number;
}

/**
 * Mint a development X.509-SVID signed by `ca`: a fresh EC P-256 key and a leaf (v3, random
 * serial, notBefore = now - 60 s, basicConstraints critical CA=false, keyUsage critical
 * digitalSignature, extKeyUsage serverAuth+clientAuth, exactly one URI SAN = `spiffeId`,
 * authorityKeyIdentifier = the CA's key identifier, subjectKeyIdentifier). The leaf never outlives
 * the CA: notAfter is `min(now + ttl, ca.notAfter)`.
 *
 * For local development only (the `trustplane up` demo): never a replacement for SPIRE.
 *
 * @param ca - from {@link createDevSpiffeCa} or {@link loadDevSpiffeCa}.
 * @param options - `spiffeId`, the injected clock `nowSeconds`, `ttlSeconds` (default 24 h).
 * @returns chain PEM (leaf), PKCS#8 key PEM, bundle PEM (the CA), notAfter, SPIFFE ID.
 * @throws {@link SpiffeIdError} for a malformed SPIFFE ID (its `reason`: `spiffe_id_bad_scheme`,
 *   `spiffe_id_dot_segment`, …); `RangeError` for an ID without a path or of another trust domain, or a bad
 *   `ttlSeconds`; {@link SvidError} `svid_expired` / `svid_not_yet_valid` when the CA is not
 *   valid at `nowSeconds`, `svid_malformed` / `svid_key_mismatch` for an inconsistent `ca`.
 * @example
 * ```ts
 * const svid = mintDevSvid(ca, { spiffeId: 'spiffe://demo.local/broker', nowSeconds });
 * await writeSpiffeHelperFiles('.trustplane/svid', svid);
 * ```
 */
export function mintDevSvid(ca: DevCa, options: MintDevSvidOptions): DevSvid {
  if (typeof ca !== 'object' || ca === null || !(ca.certDer instanceof Uint8Array)) {
    throw new TypeError('mintDevSvid: ca must be a DevCa');
  }
  if (typeof ca.keyPem !== 'string') throw new TypeError('mintDevSvid: ca.keyPem must be a string');
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('mintDevSvid: options are required');
  }
  if (typeof options.spiffeId !== 'string') throw new TypeError('mintDevSvid: spiffeId must be a string');
  const now = requireClock(options.nowSeconds, 'mintDevSvid');
  const ttl = requireTtl(options.ttlSeconds ?? DEFAULT_DEV_SVID_TTL_SECONDS, 'mintDevSvid');
  // Re-derived from the certificate and key on every call rather than trusted from the object's
  // other fields, so a hand-edited DevCa cannot mint leaves that do not chain to its bundle.
  const signer = decodeCa(ca.certDer, parseCaKey(ca.keyPem));

  const id = parseSpiffeId(options.spiffeId);
  // X509-SVID section 2: a leaf's SPIFFE ID has a path; the root path names the trust domain.
  if (id.path === '') throw new RangeError('mintDevSvid: spiffeId must have a path');
  if (id.trustDomain !== signer.trustDomain) {
    throw new RangeError("mintDevSvid: spiffeId must be in the CA's trust domain");
  }
  if (now > signer.notAfter) throw new SvidError('svid_expired', 'the dev CA has expired');
  if (now < signer.notBefore) throw new SvidError('svid_not_yet_valid', 'the dev CA is not yet valid');

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = parseSpki(publicKey);
  const notAfter = Math.min(now + ttl, signer.notAfter);
  const der = signCertificate(
    {
      subject: makeName('TrustPlane dev workload'),
      issuer: signer.subject,
      spki,
      notBefore: Math.max(now - CLOCK_SKEW_SECONDS, signer.notBefore),
      notAfter,
      extensions: [
        extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
        extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature)),
        extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth, id_kp_clientAuth])),
        extension(id_ce_subjectAltName, false, uriSan(id.id)),
        extension(
          id_ce_authorityKeyIdentifier,
          false,
          new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(signer.keyId) }),
        ),
        extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyIdentifier(spki))),
      ],
    },
    signer.privateKey,
    createPublicKey(signer.privateKey),
  );
  return Object.freeze({
    spiffeId: id.id,
    chainPem: derToPem(der),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    bundlePem: signer.certPem,
    notAfter,
  });
}
