import {
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  Version,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  type Name,
} from '@peculiar/asn1-x509';
import {
  CLOCK_SKEW_SECONDS,
  MAX_COMMON_NAME,
  derToPem,
  extension,
  keyIdentifier,
  makeName,
  parseSpki,
  requireClock,
  requireTtl,
  signCertificate,
  toArrayBuffer,
  uriSan,
} from './dev-certificate.js';
import { parsePemCertificates } from './spiffe/bundle.js';
import { SpiffeIdError, isValidTrustDomain, parseSpiffeId } from './spiffe/spiffe-id.js';
import { SvidError } from './spiffe/svid-error.js';

/** Default lifetime of a development CA: 30 days. */
export const DEFAULT_DEV_CA_TTL_SECONDS = 30 * 24 * 3600;

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

/** A CA decoded for signing: what every leaf copies from it. */
export interface SigningCa {
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

/** The dev CA private key from PEM: an EC P-256 private key, or SvidError `svid_malformed`. */
export function parseCaKey(keyPem: string): KeyObject {
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
export function decodeCa(der: Uint8Array, privateKey: KeyObject): SigningCa {
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
