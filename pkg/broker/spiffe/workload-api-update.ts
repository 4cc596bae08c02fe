import { splitConcatenatedDer } from './concatenated-der.js';
import { WorkloadApiError, printable, type WorkloadApiErrorDetails } from './workload-api-error.js';
import {
  WORKLOAD_API_MAX_BUNDLE_CERTS,
  WORKLOAD_API_MAX_CHAIN_CERTS,
  WORKLOAD_API_MAX_FEDERATED_BUNDLES,
  WORKLOAD_API_MAX_SVIDS,
} from './workload-api-limits.js';

const MAX_SPIFFE_ID_CHARS = 2048;
const MAX_TRUST_DOMAIN_CHARS = 255;
const MAX_HINT_CHARS = 1024;

/**
 * One X.509-SVID as the agent sent it: parsed and bounded, NOT verified.
 *
 * `keyPkcs8Der` is a non-enumerable property, so logging, spreading or `JSON.stringify` of an
 * SVID or an update never shows the private key; read it explicitly.
 */
export interface X509Svid {
  /** The SPIFFE ID the agent says this SVID carries (checked for SPIFFE ID syntax only). */
  readonly spiffeId: string;
  /** DER certificates, leaf first, then intermediates. */
  readonly chainDer: readonly Uint8Array[];
  /** DER PKCS#8 private key of the leaf (non-enumerable; a copy owned by this update). */
  readonly keyPkcs8Der: Uint8Array;
  /** DER CA certificates of the SVID's own trust domain. */
  readonly bundleDer: readonly Uint8Array[];
  /** Operator hint (`''` when none). */
  readonly hint: string;
}

/** One Workload API update. Frozen; the byte arrays are copies nobody else holds. */
export interface X509SvidUpdate {
  /** At least one SVID; the first is the default one (Workload API specification). */
  readonly svids: readonly X509Svid[];
  /** Federated trust domain name (e.g. `partner.example`, without `spiffe://`) → DER CA certificates. Read-only. */
  readonly federatedBundles: ReadonlyMap<string, readonly Uint8Array[]>;
  /** When the update arrived, epoch seconds (from the injected clock). */
  readonly receivedAt: number;
}

/** A Map whose mutators throw, so a shared update cannot be edited by one of its readers. */
class ReadonlyMapImpl<K, V> extends Map<K, V> {
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    for (const [k, v] of entries) super.set(k, v);
    Object.freeze(this);
  }
  override set(): this {
    throw new TypeError('X509SvidUpdate.federatedBundles is read-only');
  }
  override delete(): boolean {
    throw new TypeError('X509SvidUpdate.federatedBundles is read-only');
  }
  override clear(): void {
    throw new TypeError('X509SvidUpdate.federatedBundles is read-only');
  }
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SPIFFE_ID = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)*)$/;

function isSpiffeIdSyntax(value: string): boolean {
  if (value.length > MAX_SPIFFE_ID_CHARS) return false;
  const m = SPIFFE_ID.exec(value);
  if (m === null) return false;
  const [, td = '', path = ''] = m;
  if (td.length > MAX_TRUST_DOMAIN_CHARS) return false;
  return path.split('/').every((seg, i) => i === 0 || (seg !== '.' && seg !== '..'));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Turn one decoded `X509SVIDResponse` into an immutable {@link X509SvidUpdate}: at least one SVID,
 * every SPIFFE ID syntactically valid, chains and bundles split with {@link splitConcatenatedDer},
 * the key exactly one DER SEQUENCE, federated bundles keyed by trust domain. The CRL field is not
 * used. Nothing is verified cryptographically.
 *
 * @param message - The decoded message (untrusted).
 * @param receivedAt - Arrival time, epoch seconds.
 * @returns The update.
 * @throws {WorkloadApiError} `workload_api_bad_response`.
 * @example
 * const update = parseX509SvidResponse(decoded, Math.floor(Date.now() / 1000));
 */
export function parseX509SvidResponse(message: unknown, receivedAt: number): X509SvidUpdate {
  const bad = (why: string, details: WorkloadApiErrorDetails = {}): WorkloadApiError =>
    new WorkloadApiError('workload_api_bad_response', `Workload API response: ${why}`, details);
  if (!isRecord(message)) throw bad('not a message');
  const svidsIn = message['svids'];
  if (!Array.isArray(svidsIn)) throw bad('svids is not a list');
  if (svidsIn.length === 0) throw bad('no X.509-SVID in the response');
  if (svidsIn.length > WORKLOAD_API_MAX_SVIDS) throw bad(`more than ${WORKLOAD_API_MAX_SVIDS} SVIDs`);
  const svids = svidsIn.map((raw: unknown, index) => parseSvid(raw, index, bad));

  const federatedIn = message['federated_bundles'] ?? {};
  if (!isRecord(federatedIn)) throw bad('federated_bundles is not a map');
  const keys = Object.keys(federatedIn);
  if (keys.length > WORKLOAD_API_MAX_FEDERATED_BUNDLES)
    throw bad(`more than ${WORKLOAD_API_MAX_FEDERATED_BUNDLES} federated bundles`);
  const federated = new Map<string, readonly Uint8Array[]>();
  for (const key of keys) {
    const td = key.startsWith('spiffe://') ? key.slice('spiffe://'.length) : key;
    if (td.length === 0 || td.length > MAX_TRUST_DOMAIN_CHARS || !TRUST_DOMAIN.test(td)) {
      throw bad('federated bundle key is not a trust domain', { key: printable(key, 64) });
    }
    if (federated.has(td)) throw bad('federated trust domain listed twice', { trustDomain: td });
    const value = federatedIn[key];
    if (!(value instanceof Uint8Array)) throw bad('federated bundle is not bytes', { trustDomain: td });
    federated.set(
      td,
      Object.freeze(
        splitConcatenatedDer(value, { maxItems: WORKLOAD_API_MAX_BUNDLE_CERTS, field: 'federated_bundles' }),
      ),
    );
  }
  return Object.freeze({
    svids: Object.freeze(svids),
    federatedBundles: new ReadonlyMapImpl(federated),
    receivedAt,
  });
}

function parseSvid(
  raw: unknown,
  index: number,
  bad: (why: string, details?: WorkloadApiErrorDetails) => WorkloadApiError,
): X509Svid {
  if (!isRecord(raw)) throw bad('SVID entry is not a message', { index });
  const spiffeId = raw['spiffe_id'];
  if (typeof spiffeId !== 'string' || !isSpiffeIdSyntax(spiffeId))
    throw bad('SVID has no valid SPIFFE ID', { index });
  const chain = raw['x509_svid'];
  const key = raw['x509_svid_key'];
  const bundle = raw['bundle'];
  const hint = raw['hint'] ?? '';
  if (!(chain instanceof Uint8Array) || !(key instanceof Uint8Array) || !(bundle instanceof Uint8Array)) {
    throw bad('SVID fields are not bytes', { index, spiffeId });
  }
  if (typeof hint !== 'string' || hint.length > MAX_HINT_CHARS)
    throw bad('SVID hint is not a bounded string', { index, spiffeId });
  const chainDer = splitConcatenatedDer(chain, {
    maxItems: WORKLOAD_API_MAX_CHAIN_CERTS,
    field: 'x509_svid',
  });
  const bundleDer = splitConcatenatedDer(bundle, {
    maxItems: WORKLOAD_API_MAX_BUNDLE_CERTS,
    field: 'bundle',
  });
  const [keyDer] = splitConcatenatedDer(key, { maxItems: 1, field: 'x509_svid_key' });
  const svid = { spiffeId, chainDer: Object.freeze(chainDer), bundleDer: Object.freeze(bundleDer), hint };
  Object.defineProperty(svid, 'keyPkcs8Der', {
    value: keyDer,
    enumerable: false,
    writable: false,
    configurable: false,
  });
  return Object.freeze(svid) as X509Svid;
}
