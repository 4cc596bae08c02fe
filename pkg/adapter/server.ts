import {
  Agent as HttpAgent,
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ReplayStore } from '../authcore/replay-store.js';
import type { AuditSink } from '../audit/audit-sink.js';
import { signReceipt } from '../audit/sign-receipt.js';
import { parsePrivateKey } from '../authcore/signing-key.js';
import { BundleManager, type BundleName, type ReloadOutcome } from '../runtime/bundle-manager.js';
import { bundleSourcesFromConfig } from './bundle-sources.js';
import type { AdapterConfig } from './config.js';
import type { ReceiptSigner } from '../verifier/index.js';
import { createEnforcementRuntime, reportAuditFailure, requestIdOf } from './enforcement-runtime.js';
import { handleForwardAuthRequest } from './forward-auth.js';
import { handleProxyRequest, OVERLOADED_RETRY_AFTER_SECONDS } from './proxy.js';
import { writeDeny } from '../internal/node-http/index.js';
import { freshnessJson } from '../bundle/index.js';
import { denyAnswer } from '../verifier/index.js';
import { createAdminServer } from './admin-server.js';
import { readiness, replayHealth, type Readiness } from './readiness.js';
import { openLedgerSink } from './ledger.js';
import { createLogger, type Logger } from '../runtime/logger.js';
import { createAdapterMetrics, type AdapterMetrics } from '../runtime/metrics.js';
import { openReplayStore } from './replay.js';
import { useEd25519Primitive } from '../authcore/verify-ed25519.js';
import { loadNativeEd25519, nodeSha256 } from './native-crypto.js';
import { useSha256Primitive } from '../internal/sha256.js';
import {
  DEFAULT_EXT_AUTHZ_GRPC_LISTEN,
  startExtAuthzGrpcServer,
  type ExtAuthzGrpcServer,
} from './ext-authz-grpc.js';

/** Options for {@link startAdapter} (injection points for tests and embedding). */
export interface StartAdapterOptions {
  /** Epoch seconds (default system clock). */
  readonly clock?: () => number;
  readonly log?: Logger;
  /** Audit sink (default from `config.audit`). */
  readonly audit?: AuditSink;
  /** Replay store (default from `config.replayStore`). */
  readonly replayStore?: ReplayStore;
  readonly metrics?: AdapterMetrics;
  /** Run the admin listener (default true; cluster workers leave it to the primary). */
  readonly admin?: boolean;
}

/** A running adapter. */
export interface Adapter {
  /** The enforcement listener's bound address (mode `ext-authz-grpc`: the gRPC listener's). */
  readonly address: AddressInfo;
  /** The ext_authz gRPC listener's bound address (undefined when there is none). */
  readonly extAuthzGrpcAddress: AddressInfo | undefined;
  /** The admin listener's bound address (undefined when disabled). */
  readonly adminAddress: AddressInfo | undefined;
  readonly metrics: AdapterMetrics;
  readonly bundles: BundleManager;
  /** True when bundles are loaded, the replay store answers and the adapter is not draining. */
  ready(): Promise<Readiness>;
  /** Re-read the bundle files now (what SIGHUP does). */
  reload(): Promise<Record<BundleName, ReloadOutcome>>;
  /** Graceful shutdown: stop accepting, drain in-flight requests (bounded), release resources. */
  close(): Promise<void>;
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

function listen(server: Server, address: string): Promise<AddressInfo> {
  const { host, port } = splitListen(address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Answer 503 `overloaded` with `Retry-After` (an unread body: `Connection: close`, discarded). */
function refuseOverloaded(req: IncomingMessage, res: ServerResponse, metrics: AdapterMetrics): void {
  metrics.overloadRefusals.inc({ kind: 'in_flight' });
  const length = req.headers['content-length'];
  const body = req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  res.setHeader('retry-after', String(OVERLOADED_RETRY_AFTER_SECONDS));
  writeDeny(res, denyAnswer({ reason: 'overloaded' }), {
    close: body,
    requestId: requestIdOf(req),
  });
  if (body) req.resume();
}

/**
 * Start the adapter: load and verify bundles, open the replay store and audit sink, listen for
 * requests (reverse proxy or forward-auth) and on the admin port. Startup fails (rejects) on any
 * configuration, bundle or dependency error: nothing listens until everything is in place.
 * @example
 * const adapter = await startAdapter(resolveAdapterConfig({ flags, env: process.env }))
 */
export async function startAdapter(
  config: AdapterConfig,
  options: StartAdapterOptions = {},
): Promise<Adapter> {
  const log = options.log ?? createLogger(config.logLevel, process.stderr, { instance: config.instance });
  const clock = options.clock ?? (() => Math.floor(Date.now() / 1000));
  let bundles: BundleManager | undefined;
  const metrics =
    options.metrics ??
    createAdapterMetrics({
      bundleAges: () => (bundles ? bundles.ages(clock()) : {}),
      bundleContactAges: () => (bundles ? bundles.contactAges(clock()) : {}),
    });
  // Two Ed25519 verifies per request dominate the cost: use libsodium (or node:crypto) instead of
  // WebCrypto, and native SHA-256 for the transcript; both pass known-answer tests first.
  const ed25519 = loadNativeEd25519();
  useEd25519Primitive(ed25519.verify);
  useSha256Primitive(nodeSha256());
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    bundles = await BundleManager.open(await bundleSourcesFromConfig(config), { log, metrics, clock });
    const bm = bundles;
    cleanups.push(() => bm.close());
    bm.watch(config.reloadIntervalMs);
    bm.watchFreshness();

    const replayStore =
      options.replayStore ??
      (await openReplayStore(config, {
        log,
        onError: () => metrics.replayStoreErrors.inc(),
        clock,
        metrics,
      }));
    if (!options.replayStore) cleanups.push(() => replayStore.close?.());

    const onAuditError = (e: Error) => reportAuditFailure({ log, metrics }, e);
    const audit = options.audit ?? (await openLedgerSink(config, { log, metrics, onError: onAuditError }));
    if (!options.audit) cleanups.push(() => audit.close?.());

    const upstream = config.upstream !== undefined ? new URL(config.upstream) : undefined;
    const agentOptions = { keepAlive: true, maxSockets: config.upstreamMaxSockets, maxFreeSockets: 64 };
    const agent = upstream
      ? upstream.protocol === 'https:'
        ? new HttpsAgent(agentOptions)
        : new HttpAgent(agentOptions)
      : undefined;
    if (agent) cleanups.push(() => agent.destroy());

    let receipts: ReceiptSigner | undefined;
    if (config.receiptPrivateKey !== undefined && config.receiptKid !== undefined) {
      const receiptKey = await parsePrivateKey(config.receiptPrivateKey);
      const kid = config.receiptKid;
      const listed = bm.current.trust.receiptKeys.get(kid);
      if (listed === undefined || listed.key.x !== receiptKey.publicKey.x) {
        log.warn('the trust material does not list this receipt key: receipts will not verify', { kid });
      }
      receipts = { sign: (payload) => signReceipt(payload, receiptKey, kid) };
    }

    const rt = createEnforcementRuntime(config, {
      bundles: bm,
      replayStore,
      audit,
      log,
      metrics,
      clock,
      ...(upstream ? { upstream } : {}),
      ...(agent ? { agent } : {}),
      ...(receipts ? { receipts } : {}),
    });

    let draining = false;
    let inFlight = 0;
    let drained: (() => void) | undefined;
    const handle = config.mode === 'forward-auth' ? handleForwardAuthRequest : handleProxyRequest;
    const httpListener = config.mode !== 'ext-authz-grpc';
    // Node checks the header and request deadlines every connectionsCheckingInterval (30 s by
    // default): once a second keeps slow-header and slow-body sockets within a second of them.
    const server = createServer(
      { connectionsCheckingInterval: 1_000 },
      (req: IncomingMessage, res: ServerResponse) => {
        // Load shedding at the door: beyond maxInFlight a request is answered at once, before it is
        // read or decided (no jti is consumed, nothing is recorded: like a refused connection).
        if (inFlight >= config.maxInFlight) {
          refuseOverloaded(req, res, metrics);
          return;
        }
        inFlight += 1;
        metrics.inFlight.inc();
        res.once('close', () => {
          inFlight -= 1;
          metrics.inFlight.dec();
          if (inFlight === 0) drained?.();
        });
        if (draining) res.setHeader('connection', 'close');
        handle(rt, req, res).catch((e: unknown) => {
          log.error('request handler failed', { error: e instanceof Error ? e.message : String(e) });
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'application/json', 'cache-control': 'no-store' });
            res.end('{"allowed":false,"reason":"internal_error"}');
          } else res.destroy();
        });
      },
    );
    server.headersTimeout = config.headersTimeoutMs;
    server.requestTimeout = Math.max(config.requestTimeoutMs, config.headersTimeoutMs);
    server.maxConnections = config.maxConnections;
    server.on('drop', () => metrics.overloadRefusals.inc({ kind: 'connections' }));
    // WebSocket and other upgrades are not proxied: refuse rather than pass an unverified tunnel.
    server.on('upgrade', (_req, socket) => {
      socket.end('HTTP/1.1 501 Not Implemented\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
    const httpAddress = httpListener ? await listen(server, config.listen) : undefined;
    if (httpListener) {
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
          }),
      );
    }

    const ready = async (): Promise<Readiness> => {
      const r = await readiness({
        draining,
        bundles: () => bm.health(clock()),
        replayStore: () => replayHealth(replayStore),
        audit: audit.health ? () => audit.health!() : undefined,
      });
      const f = bm.freshness(clock());
      return {
        ...r,
        bundles: { trust_material: freshnessJson(f.trust_material), policy: freshnessJson(f.policy) },
      };
    };

    // Envoy/Istio ext_authz over gRPC: the listener of mode ext-authz-grpc, or beside forward-auth.
    let grpcServer: ExtAuthzGrpcServer | undefined;
    if (config.mode === 'ext-authz-grpc' || config.extAuthzGrpcListen !== undefined) {
      grpcServer = await startExtAuthzGrpcServer(rt, {
        listen: config.extAuthzGrpcListen ?? DEFAULT_EXT_AUTHZ_GRPC_LISTEN,
        ready,
      });
      const started = grpcServer;
      cleanups.push(() => started.close(0));
    }
    const address = httpAddress ?? grpcServer!.address;

    let adminServer: Server | undefined;
    let adminAddress: AddressInfo | undefined;
    if (options.admin !== false) {
      adminServer = createAdminServer({ metrics, ready });
      adminAddress = await listen(adminServer, config.adminListen);
      const admin = adminServer;
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            admin.close(() => resolve());
            admin.closeAllConnections();
          }),
      );
    }
    log.info('adapter listening', {
      mode: config.mode,
      address: `${address.address}:${address.port}`,
      ext_authz_grpc: grpcServer ? `${grpcServer.address.address}:${grpcServer.address.port}` : undefined,
      admin: adminAddress ? `${adminAddress.address}:${adminAddress.port}` : 'off',
      upstream: upstream ? upstream.origin : undefined,
      replay_store: config.replayStore,
      ed25519: ed25519.name,
      policy_version: bm.current.policy.policyVersion,
    });

    let closing: Promise<void> | undefined;
    return {
      address,
      extAuthzGrpcAddress: grpcServer?.address,
      adminAddress,
      metrics,
      bundles: bm,
      ready,
      reload: () => bm.reload('signal'),
      close() {
        closing ??= (async () => {
          draining = true;
          log.info('draining', { in_flight: inFlight });
          server.close();
          server.closeIdleConnections();
          // gRPC: no new calls; those in flight finish within the same bound.
          const grpcDrained = grpcServer?.close(config.shutdownTimeoutMs);
          if (inFlight > 0) {
            await new Promise<void>((resolve) => {
              drained = resolve;
              setTimeout(resolve, config.shutdownTimeoutMs).unref();
            });
          }
          await grpcDrained;
          server.closeAllConnections();
          // Everything decided is written before the sink (closed by cleanup) goes away.
          await audit
            .flush?.()
            .catch((e: unknown) => onAuditError(e instanceof Error ? e : new Error(String(e))));
          await cleanup();
          log.info('stopped', {});
        })();
        return closing;
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
