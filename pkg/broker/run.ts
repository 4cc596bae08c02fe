import { BundleManager } from '../runtime/bundle-manager.js';
import type { RemoteBundleOptions } from '../runtime/bundle-fetch.js';
import { parseConfiguredKeys } from '../runtime/configured-keys.js';
import { createLogger, type Logger, type LogLevel } from '../runtime/logger.js';
import { parsePrivateKey } from '../authcore/signing-key.js';
import type { AuditSink } from '../audit/audit-sink.js';
import { openLedger } from '../audit/open-ledger.js';
import { Broker } from './broker.js';
import { softwareIdentity, type IdentitySource } from './identity.js';
import { serveBrokerIpc, type BrokerIpcServer } from './ipc-server.js';
import type { IssuancePolicy } from './issuance-policy.js';
import {
  openSpiffeFilesIdentity,
  openWorkloadApiIdentity,
  type SpiffeIdentitySource,
} from './spiffe-identity.js';
import {
  DEFAULT_TLS_MAX_CONNECTIONS,
  DEFAULT_TLS_MAX_IN_FLIGHT,
  serveBrokerTls,
  type BrokerTlsServer,
} from './tls-server.js';

/** How the broker learns the workload identity it mints for. */
export type BrokerIdentityConfig =
  | { readonly kind: 'software'; readonly subject: string; readonly trustDomain: string }
  | {
      readonly kind: 'spiffe-files';
      /** PEM chain, leaf first (spiffe-helper `svid.pem`). */
      readonly certFile: string;
      /** PEM private key (spiffe-helper `svid_key.pem`). */
      readonly keyFile: string;
      /** PEM CA certificates of the trust domain (spiffe-helper `svid_bundle.pem`). */
      readonly bundleFile: string;
    }
  | {
      readonly kind: 'workload-api';
      /** `unix:///path` (default `SPIFFE_ENDPOINT_SOCKET`). */
      readonly endpoint?: string;
    };

/** A resolved broker configuration (the CLI builds it from flags and environment). */
export interface BrokerConfig {
  /** Unix socket for broker-ipc-v1 (mode 0600). */
  readonly socketPath: string;
  /** Passport `iss`. */
  readonly issuer: string;
  /** Header `kid` of the issuer key. */
  readonly issuerKid: string;
  /** The issuer private key text (Ed25519; any format `parsePrivateKey` accepts). Secret. */
  readonly issuerKeyText: string;
  readonly identity: BrokerIdentityConfig;
  readonly trustMaterial: string;
  readonly policyBundle: string;
  readonly trustMaterialPublicKeys: readonly string[];
  readonly policyBundlePublicKeys: readonly string[];
  readonly devAllowUnsigned?: boolean;
  readonly issuance?: IssuancePolicy;
  /** `stdout` or a file path. */
  readonly audit: string;
  /** Network mode: `host:port` for TLS with SPIFFE client-certificate authentication. */
  readonly tlsListen?: string;
  /** Network mode: most connections served at once (default 512); the excess is answered `overloaded`. */
  readonly tlsMaxConnections?: number;
  /** Network mode: most requests in flight over all connections (default 128); the excess is answered `overloaded`. */
  readonly tlsMaxInFlight?: number;
  readonly instance?: string;
  readonly logLevel?: LogLevel;
  /** Bundle poll interval, ms (0 = watch + SIGHUP only). */
  readonly reloadIntervalMs?: number;
  /** How to pull `trustMaterial`/`policyBundle` when they are bundle URLs (state dir, token, long-poll). */
  readonly bundleRemote?: RemoteBundleOptions;
}

/** A running broker. */
export interface RunningBroker {
  readonly broker: Broker;
  readonly ipc: BrokerIpcServer;
  readonly tls?: BrokerTlsServer;
  readonly bundles: BundleManager;
  reload(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Start a broker: load and verify bundles (watched), open the identity source, check the trust
 * material lists the broker's issuer key, and serve broker-ipc-v1 on the Unix socket (and on TLS
 * in network mode).
 * @throws on any startup problem (bad key, bundles, identity); nothing is left running
 */
export async function startBroker(
  config: BrokerConfig,
  options: { log?: Logger; audit?: AuditSink; clock?: () => number } = {},
): Promise<RunningBroker> {
  const log = options.log ?? createLogger(config.logLevel ?? 'info');
  const cleanups: (() => unknown)[] = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await fn();
  };
  try {
    const issuerKey = await parsePrivateKey(config.issuerKeyText.trim());
    const bundles = await BundleManager.open(
      {
        trustMaterialPath: config.trustMaterial,
        policyBundlePath: config.policyBundle,
        trustMaterialKeys: await parseConfiguredKeys(config.trustMaterialPublicKeys),
        policyBundleKeys: await parseConfiguredKeys(config.policyBundlePublicKeys),
        devAllowUnsigned: config.devAllowUnsigned ?? false,
        ...(config.bundleRemote !== undefined ? { remote: config.bundleRemote } : {}),
      },
      { log, ...(options.clock ? { clock: options.clock } : {}) },
    );
    cleanups.push(() => bundles.close());
    bundles.watch(config.reloadIntervalMs ?? 5000);
    bundles.watchFreshness();
    const listed = bundles.current.trust.getIssuer(config.issuer)?.keys.get(config.issuerKid);
    if (listed === undefined || listed.key.x !== issuerKey.publicKey.x) {
      throw new Error(
        `the trust material does not list the broker key ${config.issuerKid} under issuer ${config.issuer}`,
      );
    }

    let identity: IdentitySource;
    // Read at every SVID load: the roots the trust material lists for a trust domain are the only
    // roots of that trust domain (the SVID directory's and the Workload API's bundles are ignored for it).
    const trustBundles = () => bundles.current.trust.spiffeBundles;
    switch (config.identity.kind) {
      case 'software':
        identity = softwareIdentity(config.identity);
        break;
      case 'spiffe-files':
        identity = await openSpiffeFilesIdentity(config.identity, {
          log,
          trustBundles,
          clock: options.clock,
        });
        break;
      case 'workload-api':
        identity = await openWorkloadApiIdentity(config.identity, {
          log,
          trustBundles,
          clock: options.clock,
        });
        break;
    }
    cleanups.push(() => identity.close?.());

    const audit =
      options.audit ??
      (await openLedger({
        audit: config.audit,
        chainId: config.instance ?? 'broker',
        spillPath: `${config.audit === 'stdout' ? 'trustplane-state/broker' : config.socketPath}.audit-spill.jsonl`,
        onError: (e) => log.error('audit write failed', { error: e.message }),
      }));
    if (!options.audit) cleanups.push(() => audit.close?.());

    const broker = new Broker({
      issuer: config.issuer,
      issuerKey,
      issuerKid: config.issuerKid,
      identity,
      material: () => bundles.current,
      audit,
      ...(config.issuance ? { issuance: config.issuance } : {}),
      ...(config.instance ? { instance: config.instance } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
    });
    const ipc = await serveBrokerIpc(broker, {
      socketPath: config.socketPath,
      onError: (message) => log.warn(message),
    });
    cleanups.push(() => ipc.close());
    log.info('broker listening', {
      socket: config.socketPath,
      identity: identity.kind,
      key_binding: identity.keyBinding,
    });

    let tls: BrokerTlsServer | undefined;
    if (config.tlsListen !== undefined) {
      if (!('tlsCredentials' in identity)) {
        throw new Error('network mode (--tls-listen) needs a SPIFFE identity (spiffe-files or workload-api)');
      }
      tls = await serveBrokerTls(broker, {
        listen: config.tlsListen,
        credentials: identity as SpiffeIdentitySource,
        onError: (message, fields) => log.warn(message, fields),
        // Counted log lines (the broker has no metrics listener): at most one per limit per second.
        onOverload: (report) =>
          log.warn('broker TLS listener overloaded', {
            limit: report.limit,
            max: report.max,
            refused: report.refused,
            refused_total: report.refusedTotal,
          }),
        ...(config.tlsMaxConnections !== undefined ? { maxConnections: config.tlsMaxConnections } : {}),
        ...(config.tlsMaxInFlight !== undefined ? { maxInFlight: config.tlsMaxInFlight } : {}),
        ...(options.clock ? { clock: options.clock } : {}),
      });
      cleanups.push(() => tls!.close());
      log.info('broker TLS listening', {
        address: `${tls.address.address}:${tls.address.port}`,
        max_connections: config.tlsMaxConnections ?? DEFAULT_TLS_MAX_CONNECTIONS,
        max_in_flight: config.tlsMaxInFlight ?? DEFAULT_TLS_MAX_IN_FLIGHT,
      });
    }

    return {
      broker,
      ipc,
      ...(tls ? { tls } : {}),
      bundles,
      async reload() {
        await bundles.reload('signal');
      },
      close: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
