import { X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, SubjectAlternativeName, id_ce_subjectAltName } from '@peculiar/asn1-x509';
import { z } from 'zod';
import {
  spiffeBundleKeySchema,
  spiffeBundleSchema,
  type SpiffeBundle,
} from '../../bundle/trust-material-schema.js';
import { isValidTrustDomain, parseSpiffeId } from './spiffe-id.js';
import { SvidError } from './svid-error.js';

/*
 * X.509 trust bundles per trust domain, from the three places SPIFFE roots come from:
 *   (a) trust material `spiffe_bundles` (SPIFFE bundle JWKS with a `trust_domain`),
 *   (b) a standard SPIFFE bundle document (JWKS + `spiffe_sequence`/`spiffe_refresh_hint`, the
 *       trust domain known out of band),
 *   (c) PEM CA certificates (spiffe-helper `svid_bundle.pem`).
 * Only `x509-svid` authorities are kept; `jwt-svid` (and any other `use`) are ignored here.
 *
 * (a) is signed; (b) and (c) come over channels anyone who can write a directory or answer on a
 * socket controls. They are therefore never merged for the same trust domain:
 * {@link mergePinnedBundles} lets the signed roots of a trust domain replace every other source.
 */

/** X.509 roots per trust domain. Read-only: lookups are shared by every verification. */
export type SpiffeTrustBundles = ReadonlyMap<string, readonly X509Certificate[]>;

/** Largest bundle document (JSON or PEM) accepted, in bytes. */
export const MAX_BUNDLE_BYTES = 1024 * 1024;
/** Most authorities accepted in one bundle document. */
export const MAX_BUNDLE_KEYS = 256;

/** Read-only Map view: `Object.freeze` does not stop `Map.prototype.set`. */
class FrozenBundles implements ReadonlyMap<string, readonly X509Certificate[]> {
  readonly #map: Map<string, readonly X509Certificate[]>;

  constructor(entries: Iterable<readonly [string, readonly X509Certificate[]]>) {
    this.#map = new Map(entries);
    Object.freeze(this);
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): readonly X509Certificate[] | undefined {
    return this.#map.get(key);
  }

  has(key: string): boolean {
    return this.#map.has(key);
  }

  forEach(
    callback: (
      value: readonly X509Certificate[],
      key: string,
      map: ReadonlyMap<string, readonly X509Certificate[]>,
    ) => void,
  ): void {
    this.#map.forEach((value, key) => callback(value, key, this));
  }

  keys(): MapIterator<string> {
    return this.#map.keys();
  }

  values(): MapIterator<readonly X509Certificate[]> {
    return this.#map.values();
  }

  entries(): MapIterator<[string, readonly X509Certificate[]]> {
    return this.#map.entries();
  }

  [Symbol.iterator](): MapIterator<[string, readonly X509Certificate[]]> {
    return this.#map.entries();
  }
}

function bundleError(message: string): SvidError {
  return new SvidError('svid_bundle_malformed', message);
}

function requireTrustDomain(trustDomain: string, fn: string): void {
  if (!isValidTrustDomain(trustDomain))
    throw new TypeError(`${fn}: trustDomain must be a valid trust domain`);
}

function certificateFromDer(der: Uint8Array, what: string): X509Certificate {
  try {
    const cert = new X509Certificate(der);
    if (cert.raw.byteLength !== der.byteLength) throw new Error('trailing bytes');
    return cert;
  } catch {
    throw bundleError(`${what} is not a well-formed X.509 certificate`);
  }
}

/** Union of roots, without duplicates (same DER). */
function addRoots(
  into: Map<string, X509Certificate[]>,
  trustDomain: string,
  roots: readonly X509Certificate[],
): void {
  const list = into.get(trustDomain) ?? [];
  for (const root of roots) {
    if (!list.some((r) => r.raw.equals(root.raw))) list.push(root);
  }
  into.set(trustDomain, list);
}

function freeze(map: Map<string, X509Certificate[]>): SpiffeTrustBundles {
  return new FrozenBundles([...map].map(([td, roots]) => [td, Object.freeze([...roots])] as const));
}

/** Standard base64 (x5c is base64, not base64url: RFC 7517 section 4.7). */
function decodeBase64Der(value: string): Uint8Array {
  return new Uint8Array(Buffer.from(value, 'base64'));
}

/**
 * X.509 roots of the `spiffe_bundles` of (already verified) trust material. Trust domains without
 * an `x509-svid` authority are left out.
 *
 * @param spiffeBundles - the `spiffe_bundles` entries (e.g. `loaded.spiffeBundles.values()` or
 *   `document.spiffe_bundles ?? []`); each is re-checked against `spiffeBundleSchema`.
 * @returns the roots per trust domain.
 * @throws {@link SvidError} `svid_bundle_malformed` for an entry that does not match the schema, a
 *   certificate that does not decode, or a trust domain listed twice.
 * @example
 * ```ts
 * const bundles = bundlesFromTrustMaterial(loadedTrust.document.spiffe_bundles ?? []);
 * ```
 */
export function bundlesFromTrustMaterial(spiffeBundles: Iterable<SpiffeBundle>): SpiffeTrustBundles {
  const out = new Map<string, X509Certificate[]>();
  let i = 0;
  for (const raw of spiffeBundles) {
    const parsed = spiffeBundleSchema.safeParse(raw);
    if (!parsed.success) throw bundleError(`spiffe_bundles[${i}] is not a valid SPIFFE bundle`);
    const bundle = parsed.data;
    if (out.has(bundle.trust_domain)) throw bundleError(`spiffe_bundles[${i}] repeats a trust domain`);
    const roots: X509Certificate[] = [];
    bundle.keys.forEach((key, k) => {
      const first = key.x5c?.[0];
      if (key.use !== 'x509-svid' || first === undefined) return;
      roots.push(certificateFromDer(decodeBase64Der(first), `spiffe_bundles[${i}].keys[${k}].x5c[0]`));
    });
    if (roots.length > 0) addRoots(out, bundle.trust_domain, roots);
    i++;
  }
  return freeze(out);
}

const spiffeBundleDocumentSchema = z.strictObject({
  keys: z.array(z.looseObject({ use: z.string().max(64).optional() })).max(MAX_BUNDLE_KEYS),
  spiffe_sequence: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  spiffe_refresh_hint: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
});

/**
 * X.509 roots of a standard SPIFFE bundle document (SPIFFE Trust Domain and Bundle, section 4:
 * a JWKS with `spiffe_sequence`/`spiffe_refresh_hint`, no trust domain inside), for `trustDomain`.
 * Each `x509-svid` entry must carry exactly one base64 DER certificate in `x5c` (as go-spiffe);
 * entries with another `use` are ignored.
 *
 * @param trustDomain - the trust domain the document belongs to (known out of band).
 * @param document - the JSON text or the parsed value.
 * @throws {@link SvidError} `svid_bundle_malformed` (not JSON, no `keys`, unknown top-level member,
 *   malformed x509-svid entry, no x509-svid entry at all, over {@link MAX_BUNDLE_BYTES}).
 * @example
 * ```ts
 * const bundles = bundlesFromSpiffeBundle('example.org', await readFile('bundle.json', 'utf8'));
 * ```
 */
export function bundlesFromSpiffeBundle(trustDomain: string, document: unknown): SpiffeTrustBundles {
  requireTrustDomain(trustDomain, 'bundlesFromSpiffeBundle');
  let value = document;
  if (typeof document === 'string') {
    if (document.length > MAX_BUNDLE_BYTES) throw bundleError('SPIFFE bundle document is too large');
    try {
      value = JSON.parse(document) as unknown;
    } catch {
      throw bundleError('SPIFFE bundle document is not valid JSON');
    }
  }
  const parsed = spiffeBundleDocumentSchema.safeParse(value);
  if (!parsed.success) {
    throw bundleError('SPIFFE bundle document is not a JWKS with "keys" (and optional spiffe_* members)');
  }
  const roots: X509Certificate[] = [];
  parsed.data.keys.forEach((raw, k) => {
    if (raw.use !== 'x509-svid') return;
    const key = spiffeBundleKeySchema.safeParse(raw);
    const first = key.success ? key.data.x5c?.[0] : undefined;
    if (first === undefined) throw bundleError(`SPIFFE bundle keys[${k}] is not a valid x509-svid authority`);
    roots.push(certificateFromDer(decodeBase64Der(first), `SPIFFE bundle keys[${k}].x5c[0]`));
  });
  if (roots.length === 0) throw bundleError('SPIFFE bundle has no x509-svid authority');
  const out = new Map<string, X509Certificate[]>();
  addRoots(out, trustDomain, roots);
  return freeze(out);
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]{1,64})-----\r?\n([A-Za-z0-9+/=\r\n\t ]*?)-----END \1-----/g;

/**
 * DER certificates from PEM text. Text outside the blocks is ignored (openssl prints `subject=`
 * lines); a block of another type (e.g. a private key) or a body that is not base64 is refused.
 *
 * @param pem - PEM text with one or more `CERTIFICATE` blocks.
 * @param what - names the input in error messages (e.g. `'bundle file'`).
 * @param maxCertificates - upper bound on the number of blocks.
 * @throws {@link SvidError} `svid_malformed` for anything else.
 * @example
 * ```ts
 * const chain = parsePemCertificates(await readFile('svid.pem', 'utf8'), 'certificate file', 8);
 * ```
 */
export function parsePemCertificates(pem: string, what: string, maxCertificates: number): Uint8Array[] {
  if (pem.length > MAX_BUNDLE_BYTES) throw new SvidError('svid_malformed', `${what} is too large`);
  const out: Uint8Array[] = [];
  let consumed = '';
  for (const match of pem.matchAll(PEM_BLOCK)) {
    consumed += match[0];
    if (match[1] !== 'CERTIFICATE') {
      throw new SvidError('svid_malformed', `${what} contains a PEM block that is not a certificate`);
    }
    const body = (match[2] ?? '').replace(/\s+/g, '');
    if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(body) || body.length === 0) {
      throw new SvidError('svid_malformed', `${what} contains a PEM block that is not base64`);
    }
    out.push(new Uint8Array(Buffer.from(body, 'base64')));
    if (out.length > maxCertificates) {
      throw new SvidError('svid_malformed', `${what} has more than ${maxCertificates} certificates`);
    }
  }
  // A BEGIN line that did not make a complete block means a truncated or corrupt file.
  const begins = pem.match(/-----BEGIN /g)?.length ?? 0;
  if (begins !== out.length || consumed.length === 0) {
    throw new SvidError('svid_malformed', `${what} does not contain well-formed PEM certificates`);
  }
  return out;
}

/**
 * X.509 roots from PEM CA certificates (spiffe-helper `svid_bundle.pem`) for `trustDomain`.
 * A certificate whose URI SAN names a SPIFFE ID of ANOTHER trust domain is left out: spiffe-helper
 * can append federated bundles to the same file, and those roots must not vouch for this trust
 * domain (pass federated roots per trust domain instead).
 *
 * @throws {@link SvidError} `svid_bundle_malformed` (no certificate, undecodable certificate, nothing
 *   left for `trustDomain`).
 * @example
 * ```ts
 * const bundles = bundlesFromPem('example.org', await readFile('svid_bundle.pem', 'utf8'));
 * ```
 */
export function bundlesFromPem(trustDomain: string, pem: string): SpiffeTrustBundles {
  requireTrustDomain(trustDomain, 'bundlesFromPem');
  let ders: Uint8Array[];
  try {
    ders = parsePemCertificates(pem, 'PEM bundle', MAX_BUNDLE_KEYS);
  } catch (err) {
    if (err instanceof SvidError) throw bundleError(err.message);
    throw err;
  }
  const roots = ders
    .map((der, i) => certificateFromDer(der, `PEM bundle certificate ${i}`))
    .filter((cert) => (spiffeTrustDomainOf(cert) ?? trustDomain) === trustDomain);
  if (roots.length === 0)
    throw bundleError(`PEM bundle has no CA certificate for trust domain "${trustDomain}"`);
  const out = new Map<string, X509Certificate[]>();
  addRoots(out, trustDomain, roots);
  return freeze(out);
}

/** Trust domain of a CA certificate's SPIFFE ID URI SAN, if it has exactly one valid one. */
function spiffeTrustDomainOf(cert: X509Certificate): string | undefined {
  let uris: string[];
  try {
    const asn = AsnConvert.parse(cert.raw, Certificate);
    const ext = asn.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_subjectAltName);
    if (ext === undefined) return undefined;
    uris = [...AsnConvert.parse(ext.extnValue, SubjectAlternativeName)].flatMap((n) =>
      n.uniformResourceIdentifier === undefined ? [] : [n.uniformResourceIdentifier],
    );
  } catch {
    throw bundleError('PEM bundle contains a certificate with an undecodable extension');
  }
  const ids = uris.filter((u) => u.startsWith('spiffe://'));
  if (ids.length !== 1) return undefined;
  try {
    return parseSpiffeId(ids[0] ?? '').trustDomain;
  } catch {
    return undefined;
  }
}

/**
 * Union of several bundle sets (roots of the same trust domain are merged, duplicates dropped).
 * Only for sets of equal trust: to combine signed roots with roots from a file or the Workload
 * API, use {@link mergePinnedBundles}, which never lets the latter add a root to a pinned trust
 * domain.
 *
 * @example
 * ```ts
 * const all = mergeTrustBundles(bundlesFromPem('example.org', pem), bundlesFromTrustMaterial(tm));
 * ```
 */
export function mergeTrustBundles(...sets: readonly SpiffeTrustBundles[]): SpiffeTrustBundles {
  const out = new Map<string, X509Certificate[]>();
  for (const set of sets) {
    for (const [td, roots] of set) addRoots(out, td, roots);
  }
  return freeze(out);
}

/** Result of {@link mergePinnedBundles}. */
export interface PinnedBundlesResult {
  /** The pinned roots for pinned trust domains; the union of the other sets for the rest. */
  readonly bundles: SpiffeTrustBundles;
  /**
   * Pinned trust domains for which an unpinned set carried a root that is NOT among the pinned
   * roots (sorted). Those roots were ignored; a caller should log the trust domain (never the
   * certificate): it is either a CA rotation not yet in the pins, or someone adding their own CA.
   */
  readonly ignoredTrustDomains: readonly string[];
}

/**
 * Roots per trust domain when some of them are pinned by a more trusted source (the signed trust
 * material): for a trust domain `pinned` lists, ONLY its roots are used and the roots the other
 * sets give for it are dropped; for every other trust domain the other sets are merged as
 * {@link mergeTrustBundles} does. A pinned trust domain with an empty root list admits nothing.
 *
 * @param pinned - roots that replace every other source for their trust domains (e.g.
 *   {@link bundlesFromTrustMaterial}).
 * @param unpinned - less trusted sets (spiffe-helper's bundle file, the Workload API's bundles).
 * @returns the bundles to verify with, and the pinned trust domains for which roots were ignored.
 * @example
 * ```ts
 * const { bundles, ignoredTrustDomains } = mergePinnedBundles(
 *   bundlesFromTrustMaterial(trust.spiffeBundles.values()),
 *   bundlesFromPem('example.org', svidBundlePem),
 * );
 * for (const td of ignoredTrustDomains) log.warn('bundle ignored for a pinned trust domain', { trust_domain: td });
 * ```
 */
export function mergePinnedBundles(
  pinned: SpiffeTrustBundles,
  ...unpinned: readonly SpiffeTrustBundles[]
): PinnedBundlesResult {
  const out = new Map<string, X509Certificate[]>();
  const ignored = new Set<string>();
  for (const set of unpinned) {
    for (const [td, roots] of set) {
      const pins = pinned.get(td);
      if (pins === undefined) {
        addRoots(out, td, roots);
      } else if (roots.some((root) => !pins.some((pin) => pin.raw.equals(root.raw)))) {
        ignored.add(td);
      }
    }
  }
  for (const [td, roots] of pinned) out.set(td, [...roots]);
  return Object.freeze({
    bundles: freeze(out),
    ignoredTrustDomains: Object.freeze([...ignored].sort()),
  });
}
