import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { signDocument, loadTrustMaterial, type LoadedTrustMaterial } from '../../pkg/bundle/index.js';
import {
  BrokerIpcClient,
  startBroker,
  type BrokerConfig,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
  type RunningBroker,
} from '../../pkg/broker/index.js';
import { createLogger, type Logger } from '../../pkg/runtime/logger.js';
import { BROKER_ISSUER, type World } from '../helpers/fixture.js';
import type { MintedCert, SpiffeChain } from '../helpers/x509.js';

export {
  ORDERS_REFUND,
  realClock,
  refundRequest,
  verifyMinted,
  type RefundRoute,
} from '../helpers/broker-requests.js';

/*
 * Shared by the network-mode broker tests (trust reloads, federated trust domains, listener
 * limits, rogue CAs): spiffe-helper SVID files, real X.509-SVIDs over loopback TLS, signed trust
 * material with SPIFFE pins, a broker started as `trustplane broker serve` starts it. The refund
 * request and the verifier's check of what was minted for it come from ../helpers/broker-requests.ts.
 */

/** The broker's own trust domain. */
export const HOME = 'example.local';
/** A federated trust domain. */
export const PARTNER = 'partner.local';
/** The SPIFFE ID the broker's own SVID carries. */
export const BROKER_ID = `spiffe://${HOME}/trustplane/broker`;

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** A logger whose JSON lines are kept, parsed (`lines`) and as written (`raw`). */
export function captureLog(): { log: Logger; lines: LogLine[]; raw: string[] } {
  const raw: string[] = [];
  const lines: LogLine[] = [];
  const log = createLogger('info', {
    write: (line: string) => {
      raw.push(line);
      lines.push(JSON.parse(line) as LogLine);
    },
  });
  return { log, lines, raw };
}

/** Where spiffe-helper's three files are. */
export interface SvidFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly bundleFile: string;
}

/** Write spiffe-helper's three files the way it does (temporary file, then rename). */
export function writeSvidFiles(target: string, chain: SpiffeChain, bundlePem = chain.bundlePem): SvidFiles {
  const put = (name: string, text: string) => {
    writeFileSync(join(target, `.${name}.tmp`), text, { mode: 0o600 });
    renameSync(join(target, `.${name}.tmp`), join(target, name));
  };
  put('svid_bundle.pem', bundlePem);
  put('svid_key.pem', chain.leafKey.pkcs8Pem);
  put('svid.pem', chain.chainPem);
  return {
    certFile: join(target, 'svid.pem'),
    keyFile: join(target, 'svid_key.pem'),
    bundleFile: join(target, 'svid_bundle.pem'),
  };
}

/** The SPIFFE bundle entry of trust material for some roots. */
export function spiffeBundle(trustDomain: string, roots: readonly MintedCert[]) {
  return {
    trust_domain: trustDomain,
    keys: roots.map((r) => ({ use: 'x509-svid', kty: 'EC', x5c: [Buffer.from(r.der).toString('base64')] })),
  };
}

/**
 * The world's trust material re-signed: SPIFFE pins, the broker issuer's trust domain, `issued_at`
 * (by default the world's).
 */
export async function trustDocument(
  world: World,
  options: {
    readonly pins: readonly { trustDomain: string; roots: readonly MintedCert[] }[];
    readonly brokerTrustDomain?: string;
    readonly issuedAt?: number;
  },
): Promise<Record<string, unknown>> {
  const issuers = (world.trustDoc.issuers as { issuer: string; trust_domain: string }[]).map((i) =>
    i.issuer === BROKER_ISSUER && options.brokerTrustDomain !== undefined
      ? { ...i, trust_domain: options.brokerTrustDomain }
      : i,
  );
  return (await signDocument(
    {
      ...world.trustDoc,
      ...(options.issuedAt !== undefined ? { issued_at: options.issuedAt } : {}),
      issuers,
      spiffe_bundles: options.pins.map((p) => spiffeBundle(p.trustDomain, p.roots)),
    },
    world.bundleSigner,
    { issuer: 'https://bundles.example', kid: 'bundle-signer-1' },
  )) as unknown as Record<string, unknown>;
}

/** Load a signed trust document with the world's bundle signer. */
export function loadTrust(world: World, doc: Record<string, unknown>): Promise<LoadedTrustMaterial> {
  return loadTrustMaterial(doc, { signers: [{ kid: 'bundle-signer-1', key: world.bundleSigner.publicKey }] });
}

/** A route source admitting the broker's passports for SPIFFE workloads of `trustDomain`. */
export function spiffeSource(trustDomain: string) {
  return {
    source_type: 'spiffe_spire',
    issuer: BROKER_ISSUER,
    trust_domain: trustDomain,
    subject_prefix: `spiffe://${trustDomain}/ns/orders/sa/`,
    required_key_binding: 'attested_workload',
    provenance_policy: {
      profile: 'trustplane-spiffe-spire-k8s-v1',
      required_spiffe_trust_domain: trustDomain,
      required_posture: 'spiffe_svid_verified',
    },
  };
}

/**
 * The broker as `trustplane broker serve` runs it (startBroker): the world's issuer key, the SVID
 * `files`, the bundle files named, audit into `dir`, TLS on loopback, no reload timer; its log kept.
 */
export async function startTlsBroker(
  world: World,
  dir: string,
  options: {
    readonly files: SvidFiles;
    readonly trustMaterial: string;
    readonly policyBundle: string;
  } & Pick<BrokerConfig, 'tlsMaxConnections' | 'tlsMaxInFlight'>,
): Promise<{ running: RunningBroker; lines: LogLine[] }> {
  const { files, ...rest } = options;
  const captured = captureLog();
  const running = await startBroker(
    {
      socketPath: join(dir, 'broker.sock'),
      issuer: BROKER_ISSUER,
      issuerKid: 'broker-1',
      issuerKeyText: world.broker.exportKeyText(),
      identity: { kind: 'spiffe-files', ...files },
      trustMaterialPublicKeys: [world.bundleSigner.publicKey.x],
      policyBundlePublicKeys: [world.bundleSigner.publicKey.x],
      audit: join(dir, 'audit.jsonl'),
      tlsListen: '127.0.0.1:0',
      reloadIntervalMs: 0,
      ...rest,
    },
    { log: captured.log },
  );
  return { running, lines: captured.lines };
}

function connectAs(port: number, chain: SpiffeChain | undefined, caPem: string): TLSSocket {
  return tlsConnect({
    host: '127.0.0.1',
    port,
    ca: caPem,
    ...(chain ? { cert: chain.chainPem, key: chain.leafKey.pkcs8Pem } : {}),
    // SPIFFE authenticates the broker by its SPIFFE ID, not a DNS name.
    checkServerIdentity: (_host, cert) =>
      cert.subjectaltname === `URI:${BROKER_ID}` ? undefined : new Error('unexpected broker SPIFFE ID'),
  });
}

/** A broker-ipc-v1 client over TLS with `chain` as its client certificate (one connection per request). */
export function tlsClient(
  port: number,
  chain: SpiffeChain | undefined,
  caPem: string,
  timeoutMs = 10_000,
): BrokerIpcClient {
  return new BrokerIpcClient({
    socketPath: '-',
    timeoutMs,
    connect: () => connectAs(port, chain, caPem),
  });
}

/** One long-lived TLS connection: send request lines, collect answer lines, see it close. */
export interface OpenPeer {
  readonly socket: TLSSocket;
  readonly answers: BrokerIpcResponse[];
  readonly closed: boolean;
  send(request: BrokerIpcRequest): void;
  close(): void;
}

/** Open a TLS connection as `chain` and wait for the client side of the handshake. */
export function openPeer(port: number, chain: SpiffeChain, caPem: string): Promise<OpenPeer> {
  const socket = connectAs(port, chain, caPem);
  const answers: BrokerIpcResponse[] = [];
  let closed = false;
  let buffered = '';
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
      answers.push(JSON.parse(buffered.slice(0, nl)) as BrokerIpcResponse);
      buffered = buffered.slice(nl + 1);
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
  });
  const peer: OpenPeer = {
    socket,
    answers,
    get closed() {
      return closed;
    },
    send: (request) => void socket.write(`${JSON.stringify(request)}\n`),
    close: () => void socket.destroy(),
  };
  return new Promise((resolve, reject) => {
    socket.once('secureConnect', () => resolve(peer));
    socket.once('error', reject);
  });
}

/** Poll `probe` until `ok`, at most `ms` (a bounded wait, never a fixed sleep). */
export async function until<T>(probe: () => T | Promise<T>, ok: (v: T) => boolean, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The outcome of `client.issue` as a value: the answer, or the transport error's reason. */
export async function outcome(
  client: BrokerIpcClient,
  request: BrokerIpcRequest,
): Promise<BrokerIpcResponse | { readonly transport: string }> {
  try {
    return await client.issue(request);
  } catch (error) {
    return { transport: (error as { reason?: string }).reason ?? String(error) };
  }
}
