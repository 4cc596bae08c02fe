import { X509Certificate, createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  Certificate,
  Extension,
  Extensions,
  GeneralName,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';

/*
 * A development SPIFFE CA and X.509-SVIDs minted in pure Node (node:crypto for keys and
 * signatures, @peculiar/asn1-x509 for the DER), so `trustplane up` can run its demo stack without
 * SPIRE or openssl. FOR LOCAL DEVELOPMENT ONLY: the CA key lives in a plain PEM file next to the
 * demo, there is no attestation, no rotation schedule, no revocation, no audit. Anything beyond the
 * local demo gets its SVIDs from SPIRE (or another SPIFFE implementation) through spiffe-helper or
 * the Workload API.
 *
 * The certificates follow the SPIFFE X509-SVID standard and RFC 5280 profile so that the project's
 * own verifier (verifyX509Svid), OpenSSL and node:crypto all accept them: v3, positive random
 * serials, UTF8String names, ecdsa-with-SHA256 with absent parameters (RFC 5758 section 3.2).
 */

/** Longest lifetime accepted for a dev CA or SVID (10 years); a dev CA should be short-lived anyway. */
export const MAX_DEV_TTL_SECONDS = 10 * 365 * 24 * 3600;
/** Backdating of notBefore, so a peer whose clock is slightly behind still accepts the certificate. */
export const CLOCK_SKEW_SECONDS = 60;

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_ORGANIZATION = '2.5.4.10';
const OID_COMMON_NAME = '2.5.4.3';
const ORGANIZATION = 'TrustPlane dev';
/** RFC 5280 appendix A: ub-common-name. */
export const MAX_COMMON_NAME = 64;

/** What {@link signCertificate} puts in a certificate. */
export interface CertificateFields {
  readonly subject: Name;
  readonly issuer: Name;
  readonly spki: SubjectPublicKeyInfo;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly extensions: readonly Extension[];
}

/** Build the TBSCertificate, sign it, and return the certificate DER. */
export function signCertificate(
  fields: CertificateFields,
  signingKey: KeyObject,
  issuerKey: KeyObject,
): Uint8Array {
  // RFC 5758 section 3.2: ecdsa-with-SHA256 has NO parameters field (not even NULL).
  const algorithm = new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 });
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: randomSerial(),
    signature: algorithm,
    issuer: fields.issuer,
    validity: new Validity({
      notBefore: new Date(fields.notBefore * 1000),
      notAfter: new Date(fields.notAfter * 1000),
    }),
    subject: fields.subject,
    subjectPublicKeyInfo: fields.spki,
    extensions: new Extensions([...fields.extensions]),
  });
  const tbsDer = new Uint8Array(AsnConvert.serialize(tbs));
  // node:crypto signs EC keys with DER-encoded (r, s), the form X.509 signatures take (RFC 3279).
  const signature = sign('sha256', tbsDer, signingKey);
  const cert = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: algorithm,
    signatureValue: toArrayBuffer(signature),
  });
  const der = new Uint8Array(AsnConvert.serialize(cert));
  // The certificate re-encodes the TBS; check the signature covers what was actually written.
  if (!new X509Certificate(der).verify(issuerKey)) {
    throw new Error('dev-svid: internal error, the minted certificate does not verify');
  }
  return der;
}

/** An X.509 extension holding `value` DER-encoded. */
export function extension(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** A subjectAltName with one URI. */
export function uriSan(uri: string): SubjectAlternativeName {
  return new SubjectAlternativeName([new GeneralName({ uniformResourceIdentifier: uri })]);
}

/** `O=TrustPlane dev, CN=<commonName>`, UTF8String values (RFC 5280 section 4.1.2.6). */
export function makeName(commonName: string): Name {
  const rdn = (type: string, value: string): RelativeDistinguishedName =>
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: value }) }),
    ]);
  return new Name([rdn(OID_ORGANIZATION, ORGANIZATION), rdn(OID_COMMON_NAME, commonName)]);
}

/** Random positive 128-bit serial (RFC 5280 4.1.2.2: positive, at most 20 octets; CA/B: ≥ 64 random bits). */
function randomSerial(): ArrayBuffer {
  const serial = randomBytes(16);
  // Top bit clear keeps the INTEGER positive; a non-zero first octet keeps the DER minimal.
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01;
  return toArrayBuffer(serial);
}

/** The SubjectPublicKeyInfo of a public key. */
export function parseSpki(publicKey: KeyObject): SubjectPublicKeyInfo {
  return AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
}

/**
 * Key identifier per RFC 7093 section 2 method 1: the leftmost 160 bits of the SHA-256 of the
 * subjectPublicKey BIT STRING value (RFC 5280's SHA-1 method would work too; SHA-1 is avoided).
 */
export function keyIdentifier(spki: SubjectPublicKeyInfo): ArrayBuffer {
  return toArrayBuffer(
    createHash('sha256').update(new Uint8Array(spki.subjectPublicKey)).digest().subarray(0, 20),
  );
}

/** A copy of `bytes` in an ArrayBuffer of its own. */
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

/** One PEM `CERTIFICATE` block (64-character lines, trailing newline). */
export function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

/** The injected clock as whole epoch seconds; TypeError when it is not a usable time. */
export function requireClock(nowSeconds: unknown, fn: string): number {
  if (typeof nowSeconds !== 'number' || !Number.isFinite(nowSeconds) || nowSeconds < 0) {
    throw new TypeError(`${fn}: nowSeconds must be a finite, non-negative number of epoch seconds`);
  }
  return Math.floor(nowSeconds);
}

/** A lifetime of 1 s to {@link MAX_DEV_TTL_SECONDS}; RangeError otherwise. */
export function requireTtl(ttlSeconds: unknown, fn: string): number {
  if (
    typeof ttlSeconds !== 'number' ||
    !Number.isInteger(ttlSeconds) ||
    ttlSeconds <= 0 ||
    ttlSeconds > MAX_DEV_TTL_SECONDS
  ) {
    throw new RangeError(`${fn}: ttlSeconds must be a positive integer of at most ${MAX_DEV_TTL_SECONDS}`);
  }
  return ttlSeconds;
}
