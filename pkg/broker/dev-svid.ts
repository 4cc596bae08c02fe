import {
  X509Certificate,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_serverAuth,
} from '@peculiar/asn1-x509';
import { parsePemCertificates } from './spiffe/bundle.js';
import { SpiffeIdError, isValidTrustDomain, parseSpiffeId } from './spiffe/spiffe-id.js';
import { SvidError } from './spiffe/x509-svid.js';

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

/** Default lifetime of a development CA: 30 days. */
export const DEFAULT_DEV_CA_TTL_SECONDS = 30 * 24 * 3600;
/** Default lifetime of a development X.509-SVID: 24 hours. */
export const DEFAULT_DEV_SVID_TTL_SECONDS = 24 * 3600;
/** Longest lifetime accepted for either (10 years); a dev CA should be short-lived anyway. */
export const MAX_DEV_TTL_SECONDS = 10 * 365 * 24 * 3600;
/** Backdating of notBefore, so a peer whose clock is slightly behind still accepts the certificate. */
const CLOCK_SKEW_SECONDS = 60;

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_ORGANIZATION = '2.5.4.10';
const OID_COMMON_NAME = '2.5.4.3';
const ORGANIZATION = 'TrustPlane dev';
/** RFC 5280 appendix A: ub-common-name. */
const MAX_COMMON_NAME = 64;

/** A development SPIFFE CA: a self-signed root and its private key. For local development only. */
export interface DevCa {
  /** The root certificate, PEM (one block, trailing newline); also the trust bundle. */
  readonly certPem: string;
  /** The root certificate, DER. */
  readonly certDer: Uint8Array;
  /** The CA private key, PKCS#8 PEM. Secret: store it with mode 0600. */
  readonly keyPem: string;
  /** The trust domain the CA vouches for (its URI SAN is `spiffe://<trustDomain>`). */
  readonly trustDomain: string;
  /** notAfter of the root, epoch seconds. */
  readonly notAfter: number;
}

/** Options of {@link createDevSpiffeCa}. */
export interface CreateDevSpiffeCaOptions {
  /** Trust domain, e.g. `example.org` (lowercase letters, digits, `.`, `-`, `_`). */
  readonly trustDomain: string;
  /** The injected clock, epoch seconds (fractions are dropped). */
  readonly nowSeconds: number;
  /** Lifetime from `nowSeconds`, in seconds (default 30 days, at most 10 years). */
  readonly ttlSeconds?: number;
}

/** PEM input of {@link loadDevSpiffeCa}. */
export interface LoadDevSpiffeCaInput {
  /** The root certificate, PEM (exactly one `CERTIFICATE` block). */
  readonly certPem: string;
  /** Its private key, PEM (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`). */
  readonly keyPem: string;
}

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

/** Paths written by {@link writeSpiffeHelperFiles}, in the shape `SvidFileSource.open` takes. */
export interface SpiffeHelperFiles {
  /** `<dir>/svid.pem`. */
  readonly certFile: string;
  /** `<dir>/svid_key.pem` (mode 0600). */
  readonly keyFile: string;
  /** `<dir>/svid_bundle.pem`. */
  readonly bundleFile: string;
}

/** A CA decoded for signing: what every leaf copies from it. */
interface SigningCa {
  readonly subject: Name;
  readonly keyId: ArrayBuffer;
  readonly privateKey: KeyObject;
  readonly trustDomain: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly certPem: string;
}

/**
 * Create a development SPIFFE CA: a fresh EC P-256 key and a self-signed root (v3, random
 * positive 128-bit serial, subject `O=TrustPlane dev, CN=<trustDomain> dev root`, basicConstraints
 * critical CA=true, keyUsage critical keyCertSign+cRLSign, URI SAN `spiffe://<trustDomain>`,
 * subjectKeyIdentifier). notBefore is backdated 60 s for clock skew.
 *
 * For local development only (the `trustplane up` demo): never a replacement for SPIRE.
 *
 * @param options - `trustDomain`, the injected clock `nowSeconds`, `ttlSeconds` (default 30 days).
 * @returns the CA: certificate (PEM and DER), PKCS#8 key PEM, trust domain, notAfter.
 * @throws `TypeError` for an invalid trust domain or clock, `RangeError` for a bad `ttlSeconds`.
 * @example
 * ```ts
 * const ca = createDevSpiffeCa({ trustDomain: 'demo.local', nowSeconds: Math.floor(Date.now() / 1000) });
 * await writeFile('dev-ca.pem', ca.certPem);
 * await writeFile('dev-ca-key.pem', ca.keyPem, { mode: 0o600 });
 * ```
 */
export function createDevSpiffeCa(options: CreateDevSpiffeCaOptions): DevCa {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createDevSpiffeCa: options are required');
  }
  const { trustDomain } = options;
  if (typeof trustDomain !== 'string' || !isValidTrustDomain(trustDomain)) {
    throw new TypeError('createDevSpiffeCa: trustDomain must be a valid SPIFFE trust domain');
  }
  const now = requireClock(options.nowSeconds, 'createDevSpiffeCa');
  const ttl = requireTtl(options.ttlSeconds ?? DEFAULT_DEV_CA_TTL_SECONDS, 'createDevSpiffeCa');

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = parseSpki(publicKey);
  const keyId = keyIdentifier(spki);
  const commonName = `${trustDomain} dev root`;
  // The CN is display only (the URI SAN carries the identity); a long trust domain would exceed
  // RFC 5280's 64-character bound, so it gets a generic name instead.
  const subject = makeName(commonName.length <= MAX_COMMON_NAME ? commonName : 'TrustPlane dev root');
  const notAfter = now + ttl;
  const der = signCertificate(
    {
      subject,
      issuer: subject,
      spki,
      notBefore: now - CLOCK_SKEW_SECONDS,
      notAfter,
      extensions: [
        extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: true })),
        extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)),
        extension(id_ce_subjectAltName, false, uriSan(`spiffe://${trustDomain}`)),
        extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyId)),
      ],
    },
    privateKey,
    publicKey,
  );
  return Object.freeze({
    certPem: derToPem(der),
    certDer: der,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    trustDomain,
    notAfter,
  });
}

/**
 * Reuse a development CA from disk (e.g. the files a previous `trustplane up` wrote), after
 * checking that it is one: a single self-signed v3 CA certificate with keyCertSign, exactly one
 * SPIFFE ID URI SAN without a path, and an EC P-256 private key that matches it. Validity is not
 * checked here: {@link mintDevSvid} refuses an expired CA at its own clock.
 *
 * For local development only (the `trustplane up` demo): never a replacement for SPIRE.
 *
 * @param input - `certPem` and `keyPem`, as read from disk.
 * @returns the CA, with `keyPem` re-encoded as PKCS#8 and `certPem` normalized to one block.
 * @throws {@link SvidError} `svid_malformed` (not a single PEM certificate, unusable key, not a
 *   self-signed SPIFFE CA) or `svid_key_mismatch` (the key does not belong to the certificate);
 *   `TypeError` when an input is not a string.
 * @example
 * ```ts
 * const ca = loadDevSpiffeCa({
 *   certPem: await readFile('dev-ca.pem', 'utf8'),
 *   keyPem: await readFile('dev-ca-key.pem', 'utf8'),
 * });
 * ```
 */
export function loadDevSpiffeCa(input: LoadDevSpiffeCaInput): DevCa {
  if (typeof input !== 'object' || input === null) {
    throw new TypeError('loadDevSpiffeCa: input is required');
  }
  if (typeof input.certPem !== 'string' || typeof input.keyPem !== 'string') {
    throw new TypeError('loadDevSpiffeCa: certPem and keyPem must be strings');
  }
  const ders = parsePemCertificates(input.certPem, 'dev CA certificate', 1);
  const der = ders[0];
  if (der === undefined || ders.length !== 1) {
    throw new SvidError('svid_malformed', 'dev CA certificate must contain exactly one certificate');
  }
  const privateKey = parseCaKey(input.keyPem);
  const ca = decodeCa(der, privateKey);
  return Object.freeze({
    certPem: ca.certPem,
    certDer: der,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    trustDomain: ca.trustDomain,
    notAfter: ca.notAfter,
  });
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
 * @throws {@link SpiffeIdError} for a malformed SPIFFE ID (its `code`: `bad_scheme`,
 *   `dot_segment`, …); `RangeError` for an ID without a path or of another trust domain, or a bad
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

/**
 * Write an SVID as spiffe-helper does: `svid.pem` (chain), `svid_key.pem` (key, mode 0600) and
 * `svid_bundle.pem` (bundle), each atomically (a temporary file in the same directory, flushed,
 * then renamed over the target), so a reader such as `SvidFileSource` never sees a partial file.
 * `dir` is created with mode 0700 when missing; an existing directory keeps its mode.
 *
 * For local development only (the `trustplane up` demo): never a replacement for SPIRE.
 *
 * @param dir - target directory.
 * @param svid - `chainPem`, `keyPem`, `bundlePem` (e.g. from {@link mintDevSvid}).
 * @returns the three paths, ready for `SvidFileSource.open({ ...files, clock })`.
 * @throws `TypeError` for a missing PEM; the file system's error when a write or rename fails (the
 *   temporary file is removed).
 * @example
 * ```ts
 * const files = await writeSpiffeHelperFiles('.trustplane/svid', mintDevSvid(ca, { spiffeId, nowSeconds }));
 * const source = await SvidFileSource.open({ ...files, clock: () => Math.floor(Date.now() / 1000) });
 * ```
 */
export async function writeSpiffeHelperFiles(
  dir: string,
  svid: Pick<DevSvid, 'chainPem' | 'keyPem' | 'bundlePem'>,
): Promise<SpiffeHelperFiles> {
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new TypeError('writeSpiffeHelperFiles: dir must be a non-empty path');
  }
  if (typeof svid !== 'object' || svid === null) {
    throw new TypeError('writeSpiffeHelperFiles: svid is required');
  }
  for (const name of ['chainPem', 'keyPem', 'bundlePem'] as const) {
    if (typeof svid[name] !== 'string' || svid[name].length === 0) {
      throw new TypeError(`writeSpiffeHelperFiles: svid.${name} must be a non-empty string`);
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files: SpiffeHelperFiles = Object.freeze({
    certFile: path.join(dir, 'svid.pem'),
    keyFile: path.join(dir, 'svid_key.pem'),
    bundleFile: path.join(dir, 'svid_bundle.pem'),
  });
  // spiffe-helper's order; SvidFileSource verifies all three together, so a reader between two
  // renames keeps its last good SVID.
  await writeAtomic(files.certFile, svid.chainPem, 0o644);
  await writeAtomic(files.keyFile, svid.keyPem, 0o600);
  await writeAtomic(files.bundleFile, svid.bundlePem, 0o644);
  return files;
}

// ---------------------------------------------------------------------------------------------

interface CertificateFields {
  readonly subject: Name;
  readonly issuer: Name;
  readonly spki: SubjectPublicKeyInfo;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly extensions: readonly Extension[];
}

/** Build the TBSCertificate, sign it, and return the certificate DER. */
function signCertificate(fields: CertificateFields, signingKey: KeyObject, issuerKey: KeyObject): Uint8Array {
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

function extension(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

function uriSan(uri: string): SubjectAlternativeName {
  return new SubjectAlternativeName([new GeneralName({ uniformResourceIdentifier: uri })]);
}

/** `O=TrustPlane dev, CN=<commonName>`, UTF8String values (RFC 5280 section 4.1.2.6). */
function makeName(commonName: string): Name {
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

function parseSpki(publicKey: KeyObject): SubjectPublicKeyInfo {
  return AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
}

/**
 * Key identifier per RFC 7093 section 2 method 1: the leftmost 160 bits of the SHA-256 of the
 * subjectPublicKey BIT STRING value (RFC 5280's SHA-1 method would work too; SHA-1 is avoided).
 */
function keyIdentifier(spki: SubjectPublicKeyInfo): ArrayBuffer {
  return toArrayBuffer(
    createHash('sha256').update(new Uint8Array(spki.subjectPublicKey)).digest().subarray(0, 20),
  );
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

function requireClock(nowSeconds: unknown, fn: string): number {
  if (typeof nowSeconds !== 'number' || !Number.isFinite(nowSeconds) || nowSeconds < 0) {
    throw new TypeError(`${fn}: nowSeconds must be a finite, non-negative number of epoch seconds`);
  }
  return Math.floor(nowSeconds);
}

function requireTtl(ttlSeconds: unknown, fn: string): number {
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

function parseCaKey(keyPem: string): KeyObject {
  // Only private-key PEM blocks: createPrivateKey would also accept other inputs, and an encrypted
  // key has no passphrase here.
  if (!/-----BEGIN (?:EC )?PRIVATE KEY-----/.test(keyPem)) {
    throw new SvidError('svid_malformed', 'the dev CA key is not a PEM private key');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch {
    // node's message is not forwarded: it could quote parts of the key.
    throw new SvidError('svid_malformed', 'the dev CA key is not a usable private key');
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new SvidError('svid_malformed', 'the dev CA key must be an EC P-256 key');
  }
  return key;
}

/** Check that `der` + `privateKey` form a self-signed SPIFFE CA, and extract what signing needs. */
function decodeCa(der: Uint8Array, privateKey: KeyObject): SigningCa {
  const notCa = (why: string): SvidError => new SvidError('svid_malformed', `the dev CA certificate ${why}`);
  let x509: X509Certificate;
  let asn: Certificate;
  try {
    x509 = new X509Certificate(der);
    asn = AsnConvert.parse(der, Certificate);
  } catch {
    throw notCa('is not a well-formed X.509 certificate');
  }
  if (x509.raw.byteLength !== der.byteLength) throw notCa('is not a well-formed X.509 certificate');
  const publicKey = createPublicKey(privateKey);
  const fromKey = publicKey.export({ type: 'spki', format: 'der' });
  const fromCert = x509.publicKey.export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(fromCert)) {
    throw new SvidError('svid_key_mismatch', 'the dev CA key does not match its certificate');
  }
  const tbs = asn.tbsCertificate;
  if (tbs.version !== Version.v3) throw notCa('is not an X.509 v3 certificate');
  if (!x509.checkIssued(x509) || !x509.verify(publicKey)) throw notCa('is not self-signed');

  let ca = false;
  let keyUsage: number | undefined;
  let uris: string[] = [];
  let keyId: ArrayBuffer | undefined;
  try {
    for (const ext of tbs.extensions ?? []) {
      switch (ext.extnID) {
        case id_ce_basicConstraints:
          ca = AsnConvert.parse(ext.extnValue, BasicConstraints).cA;
          break;
        case id_ce_keyUsage:
          keyUsage = AsnConvert.parse(ext.extnValue, KeyUsage).toNumber();
          break;
        case id_ce_subjectAltName:
          uris = [...AsnConvert.parse(ext.extnValue, SubjectAlternativeName)].flatMap((n) =>
            n.uniformResourceIdentifier === undefined ? [] : [n.uniformResourceIdentifier],
          );
          break;
        case id_ce_subjectKeyIdentifier:
          keyId = toArrayBuffer(new Uint8Array(AsnConvert.parse(ext.extnValue, SubjectKeyIdentifier).buffer));
          break;
        default:
          break;
      }
    }
  } catch {
    throw notCa('has an undecodable extension');
  }
  if (!ca) throw notCa('is not a CA (basicConstraints cA is not true)');
  if (keyUsage === undefined || (keyUsage & KeyUsageFlags.keyCertSign) === 0) {
    throw notCa("lacks the 'keyCertSign' key usage");
  }
  const trustDomain = uris.length === 1 ? trustDomainOfCaUri(uris[0] ?? '') : undefined;
  if (trustDomain === undefined) {
    throw notCa('must carry exactly one URI SAN, the SPIFFE ID of its trust domain');
  }
  let notBefore: number;
  let notAfter: number;
  try {
    notBefore = Math.floor(tbs.validity.notBefore.getTime().getTime() / 1000);
    notAfter = Math.floor(tbs.validity.notAfter.getTime().getTime() / 1000);
  } catch {
    throw notCa('has an undecodable validity period');
  }
  return {
    subject: tbs.subject,
    // A CA without subjectKeyIdentifier still gets a consistent AKI on its leaves.
    keyId: keyId ?? keyIdentifier(tbs.subjectPublicKeyInfo),
    privateKey,
    trustDomain,
    notBefore,
    notAfter,
    certPem: derToPem(der),
  };
}

/** `spiffe://<td>` (no path) → `<td>`; anything else → undefined. */
function trustDomainOfCaUri(uri: string): string | undefined {
  try {
    const id = parseSpiffeId(uri);
    return id.path === '' ? id.trustDomain : undefined;
  } catch (err) {
    if (err instanceof SpiffeIdError) return undefined;
    throw err;
  }
}

async function writeAtomic(file: string, contents: string, mode: number): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
  // 'wx' (O_EXCL): never follow or reuse a file someone else put at the temporary name. The mode
  // is set at creation, so the key is never readable by others, not even before the rename; the
  // umask can only narrow it.
  const handle = await open(temp, 'wx', mode);
  try {
    try {
      await handle.writeFile(contents, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}
