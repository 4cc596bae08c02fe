import type { AddressInfo } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';
import { peerChainDer } from './tls-client.js';
import type { Broker } from './broker.js';
import { spiffeWorkloadIdentity } from './identity.js';
import { handleConnection } from './ipc-server.js';
import { BROKER_IPC_TIMEOUT_MS } from '../proof/broker-ipc-v1.js';
import { SvidError, verifyX509Svid, type SpiffeTrustBundles } from './spiffe/index.js';

/** What a TLS endpoint needs from a SPIFFE identity: its own SVID and the roots it trusts. */
export interface TlsCredentialSource {
  /**
   * PEM chain (leaf first), PEM private key, and every trusted root by trust domain. Peers are
   * authenticated with exactly these roots, so they must already be resolved against the pins:
   * the SPIFFE identity sources give the trust material's roots for the trust domains it lists
   * (never a root from the SVID directory or the Workload API for them).
   */
  tlsCredentials(): {
    readonly certChainPem: string;
    readonly keyPem: string;
    readonly bundles: SpiffeTrustBundles;
  };
  /** Called after every rotation of the SVID or its bundle. */
  onRotate(listener: () => void): void;
}

/** Options for {@link serveBrokerTls}. */
export interface BrokerTlsOptions {
  /** `host:port` (port 0 picks one). */
  readonly listen: string;
  readonly credentials: TlsCredentialSource;
  readonly clock?: () => number;
  readonly timeoutMs?: number;
  readonly onError?: (message: string) => void;
}

/** A running TLS endpoint. */
export interface BrokerTlsServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

function rootsPem(bundles: SpiffeTrustBundles): string[] {
  const out: string[] = [];
  for (const roots of bundles.values()) for (const cert of roots) out.push(cert.toString());
  return out;
}

/**
 * broker-ipc-v1 over TLS for brokers that are not pod-local. Mutual TLS: the broker presents its
 * own X.509-SVID; the caller must present an X.509-SVID that chains to a SPIFFE bundle the broker
 * holds, and is then verified by the SPIFFE X.509-SVID rules (one URI SAN, leaf not a CA, key
 * usage, validity by the injected clock). The caller's SPIFFE ID is its identity: passports are
 * minted for it (`sub` = peer SPIFFE ID, `provenance.peer` set), subject to the same policy
 * bundle and issuance grants. The server certificate follows SVID rotation without a restart.
 */
export async function serveBrokerTls(
  broker: Pick<Broker, 'issue' | 'refuse'>,
  options: BrokerTlsOptions,
): Promise<BrokerTlsServer> {
  const clock = options.clock ?? (() => Math.floor(Date.now() / 1000));
  const context = () => {
    const c = options.credentials.tlsCredentials();
    return { cert: c.certChainPem, key: c.keyPem, ca: rootsPem(c.bundles) };
  };
  const server = createServer({
    ...context(),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  });
  options.credentials.onRotate(() => {
    try {
      server.setSecureContext(context());
    } catch (error) {
      options.onError?.(`TLS credentials rotation failed: ${(error as Error).message}`);
    }
  });
  const sockets = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(options.timeoutMs ?? BROKER_IPC_TIMEOUT_MS, () => socket.destroy());
    try {
      const bundles = options.credentials.tlsCredentials().bundles;
      const svid = verifyX509Svid(peerChainDer(socket.getPeerCertificate(true)), bundles, clock());
      const peer = spiffeWorkloadIdentity(svid.spiffeId, svid.trustDomain, svid.expiresAt, svid.spiffeId);
      handleConnection(broker, socket, { peer });
    } catch (error) {
      const code = error instanceof SvidError ? error.reason : 'svid_malformed';
      options.onError?.(`TLS peer refused: ${code}`);
      socket.destroy();
    }
  });
  server.on('tlsClientError', (error) => options.onError?.(`TLS handshake failed: ${error.message}`));

  const [host, portText] = splitHostPort(options.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(portText), host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function splitHostPort(listen: string): [string, string] {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  if (!m) throw new TypeError(`--tls-listen must be host:port, got ${JSON.stringify(listen)}`);
  return [m[1]!.replace(/^\[|\]$/g, ''), m[2]!];
}
