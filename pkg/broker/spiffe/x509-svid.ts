import { X509Certificate, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  KeyUsage,
  KeyUsageFlags,
  NameConstraints,
  SubjectAlternativeName,
  Version,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_nameConstraints,
  id_ce_subjectAltName,
  type GeneralName,
} from '@peculiar/asn1-x509';
import type { SpiffeTrustBundles } from './bundle.js';
import { SpiffeIdError, parseSpiffeId } from './spiffe-id.js';
import { SvidError } from './svid-error.js';

/*
 * X.509-SVID verification (SPIFFE X509-SVID standard, sections 3 to 5) on top of RFC 5280 path
 * validation, with go-spiffe's x509svid checks as the reference behaviour:
 *   - leaf: exactly one URI SAN, a SPIFFE ID with a non-root path; basicConstraints cA false (an
 *     absent extension means false); keyUsage present with digitalSignature and without
 *     keyCertSign/cRLSign;
 *   - every intermediate the caller sends: cA true and keyCertSign;
 *   - the path ends at a root of the bundle of the LEAF's trust domain, never another domain's;
 *   - every signature verifies (ECDSA, RSA PKCS#1 v1.5 / PSS with SHA-2, Ed25519; no SHA-1);
 *   - every certificate of the path is inside its validity window at the injected clock;
 *   - pathLenConstraint and URI/DNS name constraints of CA certificates are honoured; any other
 *     name-constraint form, and any unrecognised critical extension, fails closed.
 * Extended key usage is not enforced (go-spiffe verifies with "any" EKU too).
 */

/** Most certificates accepted in a presented chain (leaf + intermediates). */
export const MAX_SVID_CHAIN_LENGTH = 8;
/** Largest DER certificate accepted. */
export const MAX_CERTIFICATE_BYTES = 64 * 1024;

/** A verified X.509-SVID. */
export interface VerifiedSvid {
  /** The leaf's SPIFFE ID. */
  readonly spiffeId: string;
  /** Its trust domain. */
  readonly trustDomain: string;
  /** Its path (never empty for a leaf). */
  readonly path: string;
  /** The leaf certificate. */
  readonly leaf: X509Certificate;
  /** Leaf notBefore, epoch seconds. */
  readonly notBefore: number;
  /** Leaf notAfter, epoch seconds. */
  readonly notAfter: number;
  /** Earliest notAfter over the whole verified path: the SVID is unusable from then on. */
  readonly expiresAt: number;
  /** The verified path: leaf, the intermediates used, then the bundle root. */
  readonly chain: readonly X509Certificate[];
}

/** A certificate decoded once, with the fields path validation needs. */
interface ParsedCert {
  readonly x509: X509Certificate;
  readonly version: number;
  readonly ca: boolean;
  readonly pathLen: number | undefined;
  /** KeyUsageFlags bits, or undefined when the extension is absent. */
  readonly keyUsage: number | undefined;
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly nameConstraints: NameConstraints | undefined;
  /** OIDs of critical extensions this verifier does not process. */
  readonly unhandledCritical: readonly string[];
  readonly signatureAlgorithm: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

// Signature algorithms accepted on every certificate of a path (RFC 5758, RFC 4055, RFC 8410).
const ALLOWED_SIGNATURE_ALGORITHMS = new Set([
  '1.2.840.10045.4.3.2', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3', // ecdsa-with-SHA384
  '1.2.840.10045.4.3.4', // ecdsa-with-SHA512
  '1.2.840.113549.1.1.11', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12', // sha384WithRSAEncryption
  '1.2.840.113549.1.1.13', // sha512WithRSAEncryption
  '1.2.840.113549.1.1.10', // RSASSA-PSS
  '1.3.101.112', // Ed25519
]);

// Critical extensions this verifier processes; any other critical extension fails closed
// (RFC 5280 section 4.2).
const HANDLED_CRITICAL = new Set([
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_extKeyUsage,
  id_ce_subjectAltName,
  id_ce_nameConstraints,
]);

const rootCache = new WeakMap<X509Certificate, ParsedCert>();

function malformed(what: string): SvidError {
  return new SvidError('svid_malformed', `${what} is not a well-formed X.509 certificate`);
}

function decode(der: Uint8Array, what: string, x509?: X509Certificate): ParsedCert {
  if (!(der instanceof Uint8Array) || der.byteLength === 0 || der.byteLength > MAX_CERTIFICATE_BYTES) {
    throw malformed(what);
  }
  let cert: X509Certificate;
  let asn: Certificate;
  try {
    cert = x509 ?? new X509Certificate(der);
    asn = AsnConvert.parse(der, Certificate);
  } catch {
    throw malformed(what);
  }
  // Trailing bytes after the certificate, or a different encoding seen by the two decoders.
  if (cert.raw.byteLength !== der.byteLength) throw malformed(what);

  const tbs = asn.tbsCertificate;
  // RFC 5280 4.1.1.2: the outer and inner signature algorithm identifiers MUST be identical.
  const outerAlg = new Uint8Array(AsnConvert.serialize(asn.signatureAlgorithm));
  const innerAlg = new Uint8Array(AsnConvert.serialize(tbs.signature));
  if (outerAlg.byteLength !== innerAlg.byteLength || !timingSafeEqual(outerAlg, innerAlg)) {
    throw new SvidError('svid_malformed', `${what} has mismatched signature algorithm identifiers`);
  }

  let basic: BasicConstraints | undefined;
  let keyUsage: number | undefined;
  let uris: string[] = [];
  let dnsNames: string[] = [];
  let nameConstraints: NameConstraints | undefined;
  const unhandledCritical: string[] = [];
  const seen = new Set<string>();
  try {
    for (const ext of tbs.extensions ?? []) {
      // RFC 5280 4.2: a certificate MUST NOT include more than one instance of an extension.
      if (seen.has(ext.extnID)) throw new SvidError('svid_malformed', `${what} repeats an extension`);
      seen.add(ext.extnID);
      if (ext.critical && !HANDLED_CRITICAL.has(ext.extnID)) unhandledCritical.push(ext.extnID);
      switch (ext.extnID) {
        case id_ce_basicConstraints:
          basic = AsnConvert.parse(ext.extnValue, BasicConstraints);
          break;
        case id_ce_keyUsage:
          keyUsage = AsnConvert.parse(ext.extnValue, KeyUsage).toNumber();
          break;
        case id_ce_subjectAltName: {
          const names: GeneralName[] = [...AsnConvert.parse(ext.extnValue, SubjectAlternativeName)];
          uris = names.flatMap((n) =>
            n.uniformResourceIdentifier === undefined ? [] : [n.uniformResourceIdentifier],
          );
          dnsNames = names.flatMap((n) => (n.dNSName === undefined ? [] : [n.dNSName]));
          break;
        }
        case id_ce_nameConstraints:
          nameConstraints = AsnConvert.parse(ext.extnValue, NameConstraints);
          break;
        default:
          break;
      }
    }
  } catch (err) {
    if (err instanceof SvidError) throw err;
    throw new SvidError('svid_malformed', `${what} has an undecodable extension`);
  }

  let notBefore: number;
  let notAfter: number;
  try {
    notBefore = tbs.validity.notBefore.getTime().getTime() / 1000;
    notAfter = tbs.validity.notAfter.getTime().getTime() / 1000;
  } catch {
    throw new SvidError('svid_malformed', `${what} has an undecodable validity period`);
  }
  if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter)) {
    throw new SvidError('svid_malformed', `${what} has an undecodable validity period`);
  }

  return {
    x509: cert,
    version: tbs.version,
    ca: basic?.cA === true,
    pathLen: basic?.pathLenConstraint,
    keyUsage,
    uris,
    dnsNames,
    nameConstraints,
    unhandledCritical,
    signatureAlgorithm: asn.signatureAlgorithm.algorithm,
    notBefore,
    notAfter,
  };
}

function decodeRoot(root: X509Certificate, trustDomain: string): ParsedCert {
  let parsed = rootCache.get(root);
  if (parsed === undefined) {
    try {
      parsed = decode(new Uint8Array(root.raw), `a root of trust domain "${trustDomain}"`, root);
    } catch (err) {
      if (err instanceof SvidError) throw new SvidError('svid_bundle_malformed', err.message);
      throw err;
    }
    rootCache.set(root, parsed);
  }
  return parsed;
}

function hasBit(bits: number | undefined, flag: KeyUsageFlags): boolean {
  return bits !== undefined && (bits & flag) !== 0;
}

function checkLeaf(leaf: ParsedCert): { id: string; trustDomain: string; path: string } {
  if (leaf.version !== Version.v3) {
    throw new SvidError('svid_malformed', 'leaf certificate is not an X.509 v3 certificate');
  }
  if (leaf.uris.length === 0) {
    throw new SvidError('svid_no_uri_san', 'leaf certificate contains no URI SAN');
  }
  if (leaf.uris.length > 1) {
    throw new SvidError('svid_multiple_uri_sans', 'leaf certificate contains more than one URI SAN');
  }
  let id: { id: string; trustDomain: string; path: string };
  try {
    id = parseSpiffeId(leaf.uris[0] ?? '');
  } catch (err) {
    if (err instanceof SpiffeIdError) {
      throw new SvidError('svid_invalid_spiffe_id', `leaf URI SAN is not a valid SPIFFE ID: ${err.message}`);
    }
    throw err;
  }
  if (id.path === '') {
    throw new SvidError('svid_invalid_spiffe_id', 'leaf SPIFFE ID must have a non-root path');
  }
  if (leaf.ca) {
    throw new SvidError('svid_leaf_is_ca', 'leaf certificate must not have the CA flag set to true');
  }
  if (!hasBit(leaf.keyUsage, KeyUsageFlags.digitalSignature)) {
    throw new SvidError(
      'svid_bad_key_usage',
      "leaf certificate must have 'digitalSignature' set as key usage",
    );
  }
  if (hasBit(leaf.keyUsage, KeyUsageFlags.keyCertSign)) {
    throw new SvidError(
      'svid_bad_key_usage',
      "leaf certificate must not have 'keyCertSign' set as key usage",
    );
  }
  if (hasBit(leaf.keyUsage, KeyUsageFlags.cRLSign)) {
    throw new SvidError('svid_bad_key_usage', "leaf certificate must not have 'cRLSign' set as key usage");
  }
  if (leaf.unhandledCritical.length > 0) {
    throw new SvidError(
      'svid_unsupported_extension',
      'leaf certificate has an unsupported critical extension',
    );
  }
  return id;
}

function checkIntermediate(cert: ParsedCert, index: number): void {
  const what = `intermediate certificate ${index}`;
  if (cert.version !== Version.v3)
    throw new SvidError('svid_malformed', `${what} is not an X.509 v3 certificate`);
  if (!cert.ca) throw new SvidError('svid_intermediate_not_ca', `${what} must have the CA flag set to true`);
  if (!hasBit(cert.keyUsage, KeyUsageFlags.keyCertSign)) {
    throw new SvidError('svid_intermediate_not_ca', `${what} must have 'keyCertSign' set as key usage`);
  }
  if (cert.unhandledCritical.length > 0) {
    throw new SvidError('svid_unsupported_extension', `${what} has an unsupported critical extension`);
  }
}

function checkValidity(cert: ParsedCert, what: string, now: number): void {
  // RFC 5280 4.1.2.5: the validity period includes both notBefore and notAfter.
  if (now > cert.notAfter) throw new SvidError('svid_expired', `${what} has expired`);
  if (now < cert.notBefore) throw new SvidError('svid_not_yet_valid', `${what} is not yet valid`);
}

/** `child` names `parent` as issuer and carries a valid signature by it with an allowed algorithm. */
function isIssuedBy(child: ParsedCert, parent: ParsedCert): boolean {
  if (!ALLOWED_SIGNATURE_ALGORITHMS.has(child.signatureAlgorithm)) return false;
  try {
    return child.x509.checkIssued(parent.x509) && child.x509.verify(parent.x509.publicKey);
  } catch {
    return false;
  }
}

/** Most path-building steps per verification: bounds work on hostile, cross-signed chains. */
const MAX_PATH_BUILDING_STEPS = 256;

/**
 * Path-building state of one verification: every (child, parent) signature is checked at most
 * once, and the number of steps is bounded, so a chain of mutually cross-signed intermediates
 * costs O(n²) signature checks instead of O(n!).
 */
class PathBuilder {
  readonly #issued = new Map<ParsedCert, Map<ParsedCert, boolean>>();
  #steps = 0;

  constructor(
    readonly intermediates: readonly ParsedCert[],
    readonly roots: readonly ParsedCert[],
  ) {}

  issued(child: ParsedCert, parent: ParsedCert): boolean {
    let byParent = this.#issued.get(child);
    if (byParent === undefined) {
      byParent = new Map();
      this.#issued.set(child, byParent);
    }
    let ok = byParent.get(parent);
    if (ok === undefined) {
      ok = isIssuedBy(child, parent);
      byParent.set(parent, ok);
    }
    return ok;
  }

  /** Every leaf-to-root path through the presented intermediates, depth-first, roots first per level. */
  *paths(path: readonly ParsedCert[]): Generator<readonly ParsedCert[]> {
    const current = path[path.length - 1];
    if (current === undefined || ++this.#steps > MAX_PATH_BUILDING_STEPS) return;
    for (const root of this.roots) {
      if (this.issued(current, root)) yield [...path, root];
    }
    if (path.length >= MAX_SVID_CHAIN_LENGTH) return;
    for (const next of this.intermediates) {
      if (path.includes(next)) continue;
      if (this.issued(current, next)) yield* this.paths([...path, next]);
    }
  }
}

function uriHost(uri: string): string | undefined {
  try {
    const host = new URL(uri).hostname;
    return host.length > 0 ? host.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

function matchesUriConstraint(host: string, constraint: string): boolean {
  const c = constraint.toLowerCase();
  // RFC 5280 4.2.1.10: a leading "." means any subdomain; otherwise the exact host.
  return c.startsWith('.') ? host.endsWith(c) && host.length > c.length : host === c;
}

function matchesDnsConstraint(name: string, constraint: string): boolean {
  const n = name.toLowerCase();
  const c = constraint.toLowerCase();
  if (c === '') return true;
  if (c.startsWith('.')) return n.endsWith(c) && n.length > c.length;
  return n === c || n.endsWith(`.${c}`);
}

/** Returns why `ca`'s name constraints refuse one of `subjects`, or undefined. */
function nameConstraintViolation(ca: ParsedCert, subjects: readonly ParsedCert[]): string | undefined {
  const nc = ca.nameConstraints;
  if (nc === undefined) return undefined;
  const permitted = [...(nc.permittedSubtrees ?? [])].map((s) => s.base);
  const excluded = [...(nc.excludedSubtrees ?? [])].map((s) => s.base);
  for (const base of [...permitted, ...excluded]) {
    if (base.uniformResourceIdentifier === undefined && base.dNSName === undefined) {
      return 'a CA certificate has an unsupported name constraint form';
    }
  }
  const permittedUris = permitted.flatMap((b) =>
    b.uniformResourceIdentifier === undefined ? [] : [b.uniformResourceIdentifier],
  );
  const excludedUris = excluded.flatMap((b) =>
    b.uniformResourceIdentifier === undefined ? [] : [b.uniformResourceIdentifier],
  );
  const permittedDns = permitted.flatMap((b) => (b.dNSName === undefined ? [] : [b.dNSName]));
  const excludedDns = excluded.flatMap((b) => (b.dNSName === undefined ? [] : [b.dNSName]));
  for (const subject of subjects) {
    for (const uri of subject.uris) {
      const host = uriHost(uri);
      if (host === undefined) return 'a URI SAN has no host to check against name constraints';
      if (permittedUris.length > 0 && !permittedUris.some((c) => matchesUriConstraint(host, c))) {
        return 'a URI SAN is outside the permitted name constraints';
      }
      if (excludedUris.some((c) => matchesUriConstraint(host, c))) {
        return 'a URI SAN is inside the excluded name constraints';
      }
    }
    for (const dns of subject.dnsNames) {
      if (permittedDns.length > 0 && !permittedDns.some((c) => matchesDnsConstraint(dns, c))) {
        return 'a DNS SAN is outside the permitted name constraints';
      }
      if (excludedDns.some((c) => matchesDnsConstraint(dns, c))) {
        return 'a DNS SAN is inside the excluded name constraints';
      }
    }
  }
  return undefined;
}

function describe(index: number, last: number): string {
  if (index === 0) return 'leaf certificate';
  return index === last ? 'root certificate' : `intermediate certificate ${index}`;
}

/** Validity, path length and name constraints of one candidate path; throws the first failure. */
function checkPath(path: readonly ParsedCert[], now: number): void {
  const last = path.length - 1;
  path.forEach((cert, i) => checkValidity(cert, describe(i, last), now));
  for (let i = 1; i <= last; i++) {
    const ca = path[i];
    if (ca === undefined) continue;
    // RFC 5280 4.2.1.9: pathLenConstraint bounds the intermediates that may follow this CA.
    if (ca.pathLen !== undefined && i - 1 > ca.pathLen) {
      throw new SvidError('svid_untrusted_chain', `${describe(i, last)} path length constraint exceeded`);
    }
    const violation = nameConstraintViolation(ca, path.slice(0, i));
    if (violation !== undefined) throw new SvidError('svid_untrusted_chain', violation);
  }
}

/**
 * Verify an X.509-SVID chain against the trust bundle of the leaf's trust domain.
 *
 * @param chain - DER certificates, leaf first, then the intermediates (the root is not needed;
 *   extra certificates that are not on the path are still checked as intermediates).
 * @param bundles - X.509 roots per trust domain; only the leaf's trust domain is consulted.
 * @param nowSeconds - the injected clock, epoch seconds.
 * @returns the verified SVID: SPIFFE ID, trust domain, path, leaf, validity, verified path.
 * @throws {@link SvidError} with reason `svid_malformed`, `svid_no_uri_san`, `svid_multiple_uri_sans`,
 *   `svid_invalid_spiffe_id`, `svid_leaf_is_ca`, `svid_bad_key_usage`, `svid_intermediate_not_ca`,
 *   `svid_unsupported_extension`, `svid_expired`, `svid_not_yet_valid`, `svid_unknown_trust_domain`,
 *   `svid_untrusted_chain` or `svid_bundle_malformed`.
 * @example
 * ```ts
 * const bundles = bundlesFromPem('example.org', bundlePem);
 * const svid = verifyX509Svid([leafDer, intermediateDer], bundles, Math.floor(Date.now() / 1000));
 * svid.spiffeId; // 'spiffe://example.org/workload'
 * ```
 */
export function verifyX509Svid(
  chain: readonly Uint8Array[],
  bundles: SpiffeTrustBundles,
  nowSeconds: number,
): VerifiedSvid {
  if (!Array.isArray(chain))
    throw new TypeError('verifyX509Svid: chain must be an array of DER certificates');
  if (typeof (bundles as { get?: unknown } | null)?.get !== 'function') {
    throw new TypeError('verifyX509Svid: bundles must be a SpiffeTrustBundles map');
  }
  if (typeof nowSeconds !== 'number' || !Number.isFinite(nowSeconds)) {
    throw new TypeError('verifyX509Svid: nowSeconds must be a finite number');
  }
  if (chain.length === 0) throw new SvidError('svid_malformed', 'certificate chain is empty');
  if (chain.length > MAX_SVID_CHAIN_LENGTH) {
    throw new SvidError(
      'svid_malformed',
      `certificate chain has more than ${MAX_SVID_CHAIN_LENGTH} certificates`,
    );
  }
  const parsed = chain.map((der, i) =>
    decode(der, i === 0 ? 'leaf certificate' : `intermediate certificate ${i}`),
  );
  const leaf = parsed[0] as ParsedCert;
  const intermediates = parsed.slice(1);

  const id = checkLeaf(leaf);
  intermediates.forEach((cert, i) => checkIntermediate(cert, i + 1));
  checkValidity(leaf, 'leaf certificate', nowSeconds);

  const roots = bundles.get(id.trustDomain);
  if (roots === undefined || roots.length === 0) {
    throw new SvidError('svid_unknown_trust_domain', `no X.509 bundle for trust domain "${id.trustDomain}"`);
  }
  const parsedRoots = roots.map((r) => decodeRoot(r, id.trustDomain));

  let firstFailure: SvidError | undefined;
  for (const path of new PathBuilder(intermediates, parsedRoots).paths([leaf])) {
    try {
      checkPath(path, nowSeconds);
    } catch (err) {
      if (!(err instanceof SvidError)) throw err;
      firstFailure ??= err;
      continue;
    }
    const expiresAt = Math.min(...path.map((c) => c.notAfter));
    return Object.freeze({
      spiffeId: id.id,
      trustDomain: id.trustDomain,
      path: id.path,
      leaf: leaf.x509,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      expiresAt,
      chain: Object.freeze(path.map((c) => c.x509)),
    });
  }
  throw (
    firstFailure ??
    new SvidError(
      'svid_untrusted_chain',
      `certificate chain does not verify to a root of trust domain "${id.trustDomain}"`,
    )
  );
}

/**
 * The SPIFFE ID of a leaf certificate WITHOUT verifying anything but its shape (one URI SAN that is
 * a SPIFFE ID with a path). Only for choosing which trust bundle to verify against; never an
 * identity on its own.
 *
 * @throws {@link SvidError} `svid_malformed`, `svid_no_uri_san`, `svid_multiple_uri_sans`,
 *   `svid_invalid_spiffe_id`, `svid_leaf_is_ca`, `svid_bad_key_usage`, `svid_unsupported_extension`.
 * @example
 * ```ts
 * const { trustDomain } = readLeafSpiffeIdUnverified(chain[0]);
 * ```
 */
export function readLeafSpiffeIdUnverified(leafDer: Uint8Array): {
  id: string;
  trustDomain: string;
  path: string;
} {
  return checkLeaf(decode(leafDer, 'leaf certificate'));
}

/**
 * Check that `privateKey` is the private half of the leaf's public key (SubjectPublicKeyInfo
 * comparison).
 *
 * @throws {@link SvidError} `svid_key_mismatch`.
 * @example
 * ```ts
 * assertKeyMatchesLeaf(svid.leaf, createPrivateKey(keyPem));
 * ```
 */
export function assertKeyMatchesLeaf(leaf: X509Certificate, privateKey: KeyObject): void {
  if (privateKey.type !== 'private') throw new TypeError('assertKeyMatchesLeaf: a private key is required');
  const fromKey = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  const fromLeaf = new Uint8Array(leaf.publicKey.export({ type: 'spki', format: 'der' }));
  if (fromKey.byteLength !== fromLeaf.byteLength || !timingSafeEqual(fromKey, fromLeaf)) {
    throw new SvidError('svid_key_mismatch', 'leaf certificate does not match the private key');
  }
}
