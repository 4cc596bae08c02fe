import type { Socket } from 'node:net';
import { connect, type DetailedPeerCertificate, type TLSSocket } from 'node:tls';
import type { TlsCredentialSource } from './tls-server.js';
import { SvidError, verifyX509Svid } from './spiffe/index.js';

/** Options for {@link brokerTlsConnector}. */
export interface BrokerTlsConnectorOptions {
  /** Broker host (an IP or a name; the name is not what authenticates the broker). */
  readonly host: string;
  readonly port: number;
  /** The caller's own SVID and trusted roots (e.g. from `openSpiffeFilesIdentity`). */
  readonly credentials: Pick<TlsCredentialSource, 'tlsCredentials'>;
  /** The broker's SPIFFE ID: the connection is refused unless the broker's SVID names exactly this. */
  readonly brokerSpiffeId: string;
  /** Epoch seconds for the SVID validity check (default the system clock). */
  readonly clock?: () => number;
}

/** The presented chain (leaf first, DER) of a TLS peer certificate, without a self-signed root. */
export function peerChainDer(cert: DetailedPeerCertificate): Uint8Array[] {
  const chain: Uint8Array[] = [];
  const seen = new Set<string>();
  let current: DetailedPeerCertificate | undefined = cert;
  while (current?.raw !== undefined && !seen.has(current.fingerprint256) && chain.length < 8) {
    seen.add(current.fingerprint256);
    const issuer: DetailedPeerCertificate | undefined = current.issuerCertificate;
    // A self-signed root ends the chain; the verifier finds roots in the bundle, not the peer.
    if (chain.length > 0 && issuer?.fingerprint256 === current.fingerprint256) break;
    chain.push(new Uint8Array(current.raw));
    current = issuer;
  }
  return chain;
}

/**
 * A connection factory for {@link BrokerIpcClient} in network mode: mutual TLS where the caller
 * presents its X.509-SVID and authenticates the broker by SPIFFE ID (the broker's chain must
 * verify by the X.509-SVID rules against the caller's bundles, and its SPIFFE ID must equal
 * `brokerSpiffeId`), never by DNS name.
 * @example
 * const client = new BrokerIpcClient({ socketPath: '', connect: brokerTlsConnector({
 *   host: '10.0.0.7', port: 8443, credentials: identity, brokerSpiffeId: 'spiffe://example.org/trustplane/broker' }) })
 */
export function brokerTlsConnector(options: BrokerTlsConnectorOptions): () => Socket {
  const clock = options.clock ?? (() => Math.floor(Date.now() / 1000));
  return () => {
    const own = options.credentials.tlsCredentials();
    const roots: string[] = [];
    for (const certs of own.bundles.values()) for (const c of certs) roots.push(c.toString());
    const socket: TLSSocket = connect({
      host: options.host,
      port: options.port,
      cert: own.certChainPem,
      key: own.keyPem,
      ca: roots,
      minVersion: 'TLSv1.2',
      checkServerIdentity: () => {
        try {
          const svid = verifyX509Svid(peerChainDer(socket.getPeerCertificate(true)), own.bundles, clock());
          if (svid.spiffeId !== options.brokerSpiffeId) {
            return new Error('the broker presented another SPIFFE ID than the one expected');
          }
          return undefined;
        } catch (error) {
          const code = error instanceof SvidError ? error.reason : 'svid_malformed';
          return new Error(`the broker SVID is not valid (${code})`);
        }
      },
    });
    return socket;
  };
}
