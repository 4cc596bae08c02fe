import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { Logger } from '../runtime/logger.js';
import { TrustplaneError } from '../authcore/errors.js';
import { isComponentReason } from '../authcore/reason-codes.js';
import type { SpiffeBundle } from '../bundle/trust-material-schema.js';
import { spiffeWorkloadIdentity, type IdentitySource, type WorkloadIdentity } from './identity.js';
import {
  SvidError,
  SvidFileSource,
  assertKeyMatchesLeaf,
  bundlesFromTrustMaterial,
  mergePinnedBundles,
  mergeTrustBundles,
  parseSpiffeId,
  verifyX509Svid,
  type SpiffeTrustBundles,
  type VerifiedSvid,
} from './spiffe/index.js';
import type { WorkloadApiError } from './spiffe/workload-api-error.js';
import { WorkloadApiX509Source } from './spiffe/workload-api-source.js';
import type { X509SvidUpdate } from './spiffe/workload-api-update.js';
import type { TlsCredentialSource, TlsCredentials } from './tls-server.js';

/** A SPIFFE identity source: the broker's workload identity and its TLS credentials. */
export type SpiffeIdentitySource = IdentitySource & TlsCredentialSource;

interface Verified {
  readonly svid: VerifiedSvid;
  readonly privateKey: KeyObject;
  /** The roots the SVID was verified against (the pins of that moment, then the unpinned roots). */
  readonly bundles: SpiffeTrustBundles;
  /** The roots of the SVID directory or the Workload API as received, before the pins applied. */
  readonly unpinnedBundles: SpiffeTrustBundles;
}

interface Options {
  readonly log: Logger;
  /**
   * SPIFFE bundles of the signed trust material. They pin: for a trust domain listed here, these
   * roots are the only ones used, and roots from the SVID directory or the Workload API for it are
   * ignored (logged). Read at every SVID load (the broker's own SVID), and at every call of
   * `tlsCredentials()` (the roots peers are authenticated with), so a reloaded trust material
   * applies to peers at once.
   */
  readonly trustBundles: () => ReadonlyMap<string, SpiffeBundle>;
  readonly clock?: (() => number) | undefined;
}

function attestationFailed(error: unknown): TrustplaneError {
  if (error instanceof SvidError) {
    return new TrustplaneError('workload_attestation_failed', `workload SVID refused: ${error.message}`, {
      svid_error: error.reason,
    });
  }
  // Component errors (Workload API, SPIFFE ID, ...) are TrustplaneErrors too, but no broker answer:
  // only the broker's own codes pass through.
  if (error instanceof TrustplaneError && !isComponentReason(error.reason)) return error;
  return new TrustplaneError('workload_identity_unavailable', 'no current workload SVID');
}

/** The X.509 roots of the trust material's bundles, decoded once per loaded trust material. */
function pinnedRoots(get: () => ReadonlyMap<string, SpiffeBundle>): () => SpiffeTrustBundles {
  let decodedFrom: ReadonlyMap<string, SpiffeBundle> | undefined;
  let roots: SpiffeTrustBundles = new Map();
  return () => {
    const bundles = get();
    if (bundles !== decodedFrom) {
      roots = bundlesFromTrustMaterial(bundles.values());
      decodedFrom = bundles;
    }
    return roots;
  };
}

/**
 * Identity, TLS credentials and rotation listeners over a "last verified SVID" getter. The TLS
 * credentials are rebuilt only when the SVID or the pinned roots change, so a caller can tell a
 * change by the object's identity.
 */
function spiffeSource(
  kind: string,
  get: () => Verified,
  pinned: () => SpiffeTrustBundles,
  close: () => void,
): {
  source: SpiffeIdentitySource;
  rotated: () => void;
} {
  const listeners: (() => void)[] = [];
  let cached: { svid: VerifiedSvid; identity: WorkloadIdentity } | undefined;
  let credentials: { verified: Verified; pins: SpiffeTrustBundles; value: TlsCredentials } | undefined;
  const source: SpiffeIdentitySource = {
    keyBinding: 'attested_workload',
    kind,
    current() {
      let verified: Verified;
      try {
        verified = get();
      } catch (error) {
        throw attestationFailed(error);
      }
      if (cached?.svid !== verified.svid) {
        const s = verified.svid;
        cached = { svid: s, identity: spiffeWorkloadIdentity(s.spiffeId, s.trustDomain, s.expiresAt) };
      }
      return cached.identity;
    },
    tlsCredentials() {
      const v = get();
      const pins = pinned();
      if (credentials?.verified === v && credentials.pins === pins) return credentials.value;
      // The verified path ends with the bundle root; a TLS peer gets leaf + intermediates.
      const presented = v.svid.chain.length > 1 ? v.svid.chain.slice(0, -1) : v.svid.chain;
      const value: TlsCredentials = Object.freeze({
        certChainPem: presented.map((c) => c.toString()).join(''),
        keyPem: v.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        // The pins in force now, not those of the SVID's last load: a trust domain removed from
        // the trust material stops vouching for peers as soon as the reload is in force.
        bundles: mergePinnedBundles(pins, v.unpinnedBundles).bundles,
      });
      credentials = { verified: v, pins, value };
      return value;
    },
    onRotate(listener) {
      listeners.push(listener);
    },
    close,
  };
  return { source, rotated: () => listeners.forEach((l) => l()) };
}

/**
 * The broker identity from files written by spiffe-helper (cert chain, key, bundle). Each
 * rotation is verified before it replaces the SVID in force; a bad rotation keeps the last good
 * one (logged). Startup fails if the first SVID does not verify. For a trust domain the trust
 * material lists in `spiffe_bundles`, only those roots count: `svid_bundle.pem` is ignored for it,
 * with one warn line per load when it carries another root.
 */
export async function openSpiffeFilesIdentity(
  config: { certFile: string; keyFile: string; bundleFile: string },
  options: Options,
): Promise<SpiffeIdentitySource> {
  const clock = options.clock ?? (() => Math.floor(Date.now() / 1000));
  let rotated: () => void = () => undefined;
  const pinned = pinnedRoots(options.trustBundles);
  const files = await SvidFileSource.open({
    certFile: config.certFile,
    keyFile: config.keyFile,
    bundleFile: config.bundleFile,
    pinnedBundles: pinned,
    onIgnoredBundleFile: (trustDomain) =>
      options.log.warn(
        'SVID directory bundle ignored: the trust material pins the roots of this trust domain',
        { trust_domain: trustDomain },
      ),
    clock,
    onUpdate: (snapshot) => {
      options.log.info('workload SVID rotated', {
        spiffe_id: snapshot.svid.spiffeId,
        not_after: snapshot.svid.notAfter,
      });
      rotated();
    },
    onError: (error) =>
      options.log.warn('workload SVID reload failed; keeping the last good SVID', {
        error: error.message,
        ...(error instanceof SvidError ? { reason: error.reason } : {}),
      }),
  });
  const built = spiffeSource(
    'spiffe-files',
    () => files.current(),
    pinned,
    () => files.close(),
  );
  rotated = built.rotated;
  const first = files.current().svid;
  options.log.info('workload SVID loaded', { spiffe_id: first.spiffeId, not_after: first.notAfter });
  return built.source;
}

function certificates(ders: readonly Uint8Array[]): X509Certificate[] {
  return ders.map((der) => new X509Certificate(Buffer.from(der)));
}

/** Result of {@link verifyWorkloadUpdate}. */
export interface VerifiedWorkloadUpdate extends Verified {
  /** Pinned trust domains for which the update's own or federated bundle carried other roots (ignored). */
  readonly ignoredTrustDomains: readonly string[];
}

/**
 * Verify the default SVID of a Workload API update. Roots: `pinned` (the trust material's) for the
 * trust domains it lists, and only there; the update's own and federated bundles for the others.
 *
 * @param update - one FetchX509SVID update.
 * @param pinned - roots that replace the agent's for their trust domains (`bundlesFromTrustMaterial`).
 * @param now - epoch seconds.
 * @throws {@link SvidError} any reason of `verifyX509Svid`, `svid_invalid_spiffe_id` when the
 *   certificate does not carry the SPIFFE ID the agent named, `svid_key_mismatch`.
 * @example
 * ```ts
 * const v = verifyWorkloadUpdate(source.current(), bundlesFromTrustMaterial(tm.spiffeBundles.values()), now);
 * ```
 */
export function verifyWorkloadUpdate(
  update: X509SvidUpdate,
  pinned: SpiffeTrustBundles,
  now: number,
): VerifiedWorkloadUpdate {
  const svid = update.svids[0];
  if (svid === undefined) throw new SvidError('svid_malformed', 'the Workload API sent no SVID');
  const own = new Map([[parseSpiffeId(svid.spiffeId).trustDomain, certificates(svid.bundleDer)]]);
  const federated = new Map([...update.federatedBundles].map(([td, ders]) => [td, certificates(ders)]));
  const { bundles, ignoredTrustDomains } = mergePinnedBundles(pinned, own, federated);
  const verified = verifyX509Svid(svid.chainDer, bundles, now);
  if (verified.spiffeId !== svid.spiffeId) {
    throw new SvidError(
      'svid_invalid_spiffe_id',
      'the SVID certificate does not carry the SPIFFE ID the agent named',
    );
  }
  const privateKey = createPrivateKey({ key: Buffer.from(svid.keyPkcs8Der), format: 'der', type: 'pkcs8' });
  assertKeyMatchesLeaf(verified.leaf, privateKey);
  return {
    svid: verified,
    privateKey,
    bundles,
    unpinnedBundles: mergeTrustBundles(own, federated),
    ignoredTrustDomains,
  };
}

/**
 * The broker identity from the SPIFFE Workload API (`SPIFFE_ENDPOINT_SOCKET`): a FetchX509SVID
 * stream with the `workload.spiffe.io: true` header. Every update is verified (chain to its trust
 * domain bundle, SPIFFE X.509-SVID rules, key match) before it is used; a bad update keeps the
 * last good SVID. Startup fails if the first SVID does not verify. As for the files, the trust
 * material's roots replace the agent's bundles for the trust domains it lists (logged per update).
 */
export async function openWorkloadApiIdentity(
  config: { endpoint?: string },
  options: Options,
): Promise<SpiffeIdentitySource> {
  const clock = options.clock ?? (() => Math.floor(Date.now() / 1000));
  let verified: Verified | undefined;
  let rotated: () => void = () => undefined;
  const pinned = pinnedRoots(options.trustBundles);
  const apply = (update: X509SvidUpdate, initial: boolean) => {
    try {
      const result = verifyWorkloadUpdate(update, pinned(), clock());
      for (const trustDomain of result.ignoredTrustDomains) {
        options.log.warn(
          'Workload API bundle ignored: the trust material pins the roots of this trust domain',
          { trust_domain: trustDomain },
        );
      }
      verified = result;
    } catch (error) {
      if (initial) throw error;
      options.log.warn('Workload API SVID refused; keeping the last good SVID', {
        error: (error as Error).message,
        ...(error instanceof SvidError ? { reason: error.reason } : {}),
      });
      return;
    }
    if (!initial) {
      options.log.info('workload SVID rotated', {
        spiffe_id: verified.svid.spiffeId,
        not_after: verified.svid.notAfter,
      });
      rotated();
    }
  };
  let ready = false;
  const api = await WorkloadApiX509Source.connect({
    ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
    onUpdate: (update) => {
      if (ready) apply(update, false);
    },
    onError: (error: WorkloadApiError) =>
      options.log.warn('Workload API stream error; reconnecting', {
        reason: error.reason,
        error: error.message,
      }),
  });
  try {
    apply(api.current(), true);
  } catch (error) {
    api.close();
    throw error;
  }
  ready = true;
  options.log.info('workload SVID loaded', {
    spiffe_id: verified!.svid.spiffeId,
    not_after: verified!.svid.notAfter,
  });
  const built = spiffeSource(
    'workload-api',
    () => {
      const v = verified;
      if (v === undefined) throw new TrustplaneError('workload_identity_unavailable', 'no workload SVID yet');
      if (!(clock() <= v.svid.expiresAt))
        throw new SvidError('svid_expired', 'the workload SVID has expired');
      return v;
    },
    pinned,
    () => api.close(),
  );
  rotated = built.rotated;
  return built.source;
}
