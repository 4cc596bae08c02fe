import type { AddressInfo, Socket } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';
import { peerChainDer } from './tls-client.js';
import type { Broker } from './broker.js';
import { spiffeWorkloadIdentity, type WorkloadIdentity } from './identity.js';
import { handleConnection } from './ipc-server.js';
import {
  InFlightBudget,
  OverloadReporter,
  overloadedResponse,
  type BrokerTlsOverload,
} from './listener-limits.js';
import { BROKER_IPC_TIMEOUT_MS } from '../proof/broker-ipc-v1.js';
import { SvidError, verifyX509Svid, type SpiffeTrustBundles } from './spiffe/index.js';

/** What a TLS endpoint presents and trusts right now. */
export interface TlsCredentials {
  /** PEM chain, leaf first. */
  readonly certChainPem: string;
  /** PEM private key. Secret. */
  readonly keyPem: string;
  /** Every trusted root by trust domain. */
  readonly bundles: SpiffeTrustBundles;
}

/** What a TLS endpoint needs from a SPIFFE identity: its own SVID and the roots it trusts. */
export interface TlsCredentialSource {
  /**
   * PEM chain (leaf first), PEM private key, and every trusted root by trust domain. Peers are
   * authenticated with exactly these roots, so they must already be resolved against the pins in
   * force at the time of the call: the SPIFFE identity sources give the trust material's roots for
   * the trust domains it lists (never a root from the SVID directory or the Workload API for them).
   * Return the same `bundles` object while the roots are unchanged: the TLS server re-checks its
   * open connections whenever it gets another one.
   */
  tlsCredentials(): TlsCredentials;
  /** Called after every rotation of the SVID or its bundle. */
  onRotate(listener: () => void): void;
}

/** Default {@link BrokerTlsOptions.maxConnections}. */
export const DEFAULT_TLS_MAX_CONNECTIONS = 512;
/** Default {@link BrokerTlsOptions.maxInFlight}. */
export const DEFAULT_TLS_MAX_IN_FLIGHT = 128;
/** Upper bound of both limits. */
export const MAX_TLS_LIMIT = 1_000_000;
/**
 * Connections beyond the served ones that may be open at once (handshakes in progress, callers
 * being answered `overloaded`): at least this many, or `maxConnections` if more.
 */
export const TLS_REFUSAL_HEADROOM = 64;
/** How often the listener looks for new trust material or SVID when nothing else asks, ms. */
export const TLS_TRUST_CHECK_INTERVAL_MS = 1000;
/** A TLS handshake must complete within this (or the idle timeout, if shorter), ms. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** A refused caller has this long to read its `overloaded` answer before the socket is destroyed, ms. */
const REFUSAL_LINGER_MS = 2000;

/** Options for {@link serveBrokerTls}. */
export interface BrokerTlsOptions {
  /** `host:port` (port 0 picks one). */
  readonly listen: string;
  readonly credentials: TlsCredentialSource;
  readonly clock?: () => number;
  /** Idle timeout per connection, ms (default 30 s, the broker-ipc-v1 timeout). */
  readonly timeoutMs?: number;
  /**
   * Most connections served at once (default 512). A caller past it completes the handshake, gets
   * one `overloaded` deny (retryable, `request_id` "unknown") and is disconnected. At most
   * `maxConnections + max(maxConnections, 64)` TCP connections are open at once: past that a new
   * one is closed before any TLS (counted as dropped).
   */
  readonly maxConnections?: number;
  /**
   * Most requests received and not yet answered, over all connections (default 128). A request past
   * it is answered `overloaded` in its turn, without being decided or audited.
   */
  readonly maxInFlight?: number;
  /** Connection-level events (handshake failures, refused or disconnected peers); never secrets. */
  readonly onError?: (message: string, fields?: Readonly<Record<string, string | number>>) => void;
  /** Refusals by a limit, at most one report per limit per second ({@link BrokerTlsOverload}). */
  readonly onOverload?: (report: BrokerTlsOverload) => void;
}

/** Counters of a running TLS endpoint. */
export interface BrokerTlsStats {
  /** Served connections open now (authenticated peers). */
  readonly connections: number;
  /** Requests received and not yet answered. */
  readonly inFlight: number;
  /** Callers answered `overloaded` for the connection cap. */
  readonly refusedConnections: number;
  /** Requests answered `overloaded` for the in-flight cap. */
  readonly refusedRequests: number;
  /** TCP connections closed before TLS (past the connection cap and its headroom). */
  readonly droppedConnections: number;
  /** Open connections closed because the roots in force no longer vouch for their peer. */
  readonly disconnectedPeers: number;
}

/** A running TLS endpoint. */
export interface BrokerTlsServer {
  readonly address: AddressInfo;
  /** Connection and refusal counters. */
  stats(): BrokerTlsStats;
  close(): Promise<void>;
}

interface Peer {
  readonly chain: readonly Uint8Array[];
  readonly spiffeId: string;
}

function rootsPem(bundles: SpiffeTrustBundles): string[] {
  const out: string[] = [];
  for (const roots of bundles.values()) for (const cert of roots) out.push(cert.toString());
  return out;
}

function secureContextOptions(c: TlsCredentials) {
  return { cert: c.certChainPem, key: c.keyPem, ca: rootsPem(c.bundles) };
}

function sameCredentials(a: TlsCredentials, b: TlsCredentials): boolean {
  return a === b || (a.bundles === b.bundles && a.certChainPem === b.certChainPem && a.keyPem === b.keyPem);
}

function limit(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1 || v > MAX_TLS_LIMIT) {
    throw new RangeError(`serveBrokerTls: ${name} must be an integer from 1 to ${MAX_TLS_LIMIT}`);
  }
  return v;
}

/**
 * broker-ipc-v1 over TLS for brokers that are not pod-local. Mutual TLS: the broker presents its
 * own X.509-SVID; the caller must present an X.509-SVID that chains to a SPIFFE bundle the broker
 * holds, and is then verified by the SPIFFE X.509-SVID rules (one URI SAN, leaf not a CA, key
 * usage, validity by the injected clock). The caller's SPIFFE ID is its identity: passports are
 * minted for it (`sub` = peer SPIFFE ID, `provenance.peer` set), subject to the same policy
 * bundle and issuance grants.
 *
 * The certificate and the roots follow the credential source: every new connection, every request
 * and a 1 s timer look for a change (an SVID rotation, a reloaded trust material), and a change
 * applies to the next handshake. When the roots change, every open connection's peer chain is
 * verified again and the connections the new roots no longer vouch for are closed
 * (`TLS peer disconnected: no longer trusted`); no request is answered for them after the change.
 *
 * Limits: `maxConnections` served connections and `maxInFlight` requests in flight; the excess is
 * answered `overloaded` (retryable) and counted ({@link BrokerTlsServer.stats}, `onOverload`).
 *
 * @throws RangeError for a limit that is not an integer from 1 to 1,000,000; TypeError for a bad
 *   `listen`; the listen error (e.g. `EADDRINUSE`)
 * @example
 * const tls = await serveBrokerTls(broker, { listen: '0.0.0.0:8443', credentials: identity, maxConnections: 256 })
 */
export async function serveBrokerTls(
  broker: Pick<Broker, 'issue' | 'refuse'>,
  options: BrokerTlsOptions,
): Promise<BrokerTlsServer> {
  const clock = options.clock ?? (() => Math.floor(Date.now() / 1000));
  const maxConnections = limit(options.maxConnections, DEFAULT_TLS_MAX_CONNECTIONS, 'maxConnections');
  const maxInFlight = limit(options.maxInFlight, DEFAULT_TLS_MAX_IN_FLIGHT, 'maxInFlight');
  const timeoutMs = options.timeoutMs ?? BROKER_IPC_TIMEOUT_MS;
  const [host, portText] = splitHostPort(options.listen);
  const report = (message: string, fields?: Readonly<Record<string, string | number>>) => {
    try {
      options.onError?.(message, fields);
    } catch {
      // A throwing listener must not take the TLS server down.
    }
  };

  let inForce = options.credentials.tlsCredentials();
  const server = createServer({
    ...secureContextOptions(inForce),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    handshakeTimeout: Math.min(timeoutMs, HANDSHAKE_TIMEOUT_MS),
  });
  server.maxConnections = maxConnections + Math.max(maxConnections, TLS_REFUSAL_HEADROOM);

  const peers = new Map<TLSSocket, Peer>();
  /** Every TCP connection (handshakes in progress and refusals included), for close(). */
  const connections = new Set<Socket>();
  server.on('connection', (raw: Socket) => {
    connections.add(raw);
    raw.on('close', () => connections.delete(raw));
  });
  let dropped = 0;
  let disconnected = 0;
  const overload = new OverloadReporter(
    { connections: maxConnections, in_flight: maxInFlight },
    options.onOverload,
  );
  const inFlight = new InFlightBudget(maxInFlight, () => overload.count('in_flight'));

  /** Re-verify every open connection's peer with the roots in force; close those it fails. */
  const sweep = () => {
    const now = clock();
    for (const [socket, peer] of peers) {
      try {
        verifyX509Svid(peer.chain, inForce.bundles, now);
      } catch (error) {
        peers.delete(socket);
        disconnected += 1;
        report('TLS peer disconnected: no longer trusted', {
          reason: error instanceof SvidError ? error.reason : 'svid_malformed',
          spiffe_id: peer.spiffeId,
        });
        socket.destroy();
      }
    }
  };

  let unavailable: string | undefined;
  /** Take the credentials in force: a new certificate or new roots apply to the next handshake. */
  const refresh = () => {
    let next: TlsCredentials;
    try {
      next = options.credentials.tlsCredentials();
      unavailable = undefined;
    } catch (error) {
      const message = (error as Error).message;
      if (message !== unavailable) {
        report('TLS credentials unavailable; keeping those in force', { error: message });
      }
      unavailable = message;
      return;
    }
    if (sameCredentials(next, inForce)) return;
    try {
      server.setSecureContext(secureContextOptions(next));
    } catch (error) {
      report(`TLS credentials rotation failed: ${(error as Error).message}`);
      return;
    }
    const rootsChanged = next.bundles !== inForce.bundles;
    inForce = next;
    if (rootsChanged) sweep();
  };
  options.credentials.onRotate(refresh);
  // Before the TLS socket of a new connection is built from the server's context (this listener
  // runs ahead of node's own), so the handshake uses the roots in force at that moment.
  server.prependListener('connection', refresh);
  const timer = setInterval(refresh, TLS_TRUST_CHECK_INTERVAL_MS);
  timer.unref();

  const refuseConnection = (socket: TLSSocket) => {
    overload.count('connections');
    socket.setTimeout(REFUSAL_LINGER_MS, () => socket.destroy());
    socket.resume();
    socket.end(`${JSON.stringify(overloadedResponse('unknown', 'connections'))}\n`);
  };

  server.on('secureConnection', (socket: TLSSocket) => {
    socket.on('error', () => socket.destroy());
    refresh();
    if (peers.size >= maxConnections) {
      refuseConnection(socket);
      return;
    }
    let peer: Peer;
    let identity: WorkloadIdentity;
    try {
      const chain = peerChainDer(socket.getPeerCertificate(true));
      const svid = verifyX509Svid(chain, inForce.bundles, clock());
      peer = { chain, spiffeId: svid.spiffeId };
      identity = spiffeWorkloadIdentity(svid.spiffeId, svid.trustDomain, svid.expiresAt, svid.spiffeId);
    } catch (error) {
      const code = error instanceof SvidError ? error.reason : 'svid_malformed';
      report(`TLS peer refused: ${code}`);
      socket.destroy();
      return;
    }
    peers.set(socket, peer);
    socket.on('close', () => peers.delete(socket));
    socket.setTimeout(timeoutMs, () => socket.destroy());
    handleConnection(
      broker,
      socket,
      { peer: identity },
      {
        inFlight,
        admit: () => {
          refresh();
          return peers.has(socket) && !socket.destroyed;
        },
      },
    );
  });
  server.on('tlsClientError', (error) => report(`TLS handshake failed: ${error.message}`));
  server.on('drop', () => {
    dropped += 1;
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(portText), host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    clearInterval(timer);
    throw error;
  }
  return {
    address: server.address() as AddressInfo,
    stats: () => ({
      connections: peers.size,
      inFlight: inFlight.current,
      refusedConnections: overload.total('connections'),
      refusedRequests: overload.total('in_flight'),
      droppedConnections: dropped,
      disconnectedPeers: disconnected,
    }),
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        server.close(() => {
          overload.close();
          resolve();
        });
        for (const socket of [...peers.keys(), ...connections]) socket.destroy();
      }),
  };
}

function splitHostPort(listen: string): [string, string] {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  if (!m) throw new TypeError(`--tls-listen must be host:port, got ${JSON.stringify(listen)}`);
  return [m[1]!.replace(/^\[|\]$/g, ''), m[2]!];
}
