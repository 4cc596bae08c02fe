import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  WORKLOAD_API_SECURITY_HEADER,
  loadWorkloadApiDefinition,
  type X509SvidResponseInput,
} from '../../pkg/broker/spiffe/workload-proto.js';
import type { SpiffeChain } from './x509.js';

/*
 * Test helper: a local SPIFFE Workload API server (a real grpc-js Server speaking the published
 * Workload API protobuf) on a Unix socket in a fresh temporary directory, or on 127.0.0.1.
 *
 * Like SPIRE, it answers any call that lacks the `workload.spiffe.io: true` metadata with
 * INVALID_ARGUMENT "security header missing from request". Accepted FetchX509SVID streams get the
 * latest response at once; push() sends a rotation down every open stream.
 *
 * The listening socket is a node:net server whose connections are handed to grpc-js through its
 * public connection-injector API; that is what lets the helper count transport connections
 * (grpc-js exposes no per-connection event for bindAsync listeners). Everything above the socket
 * is plain grpc-js.
 *
 * @example
 * ```ts
 * const chain = mintSpiffeChain({ trustDomain: 'example.org' });
 * const server = await WorkloadApiTestServer.start({ initial: x509SvidResponse([{ chain }]) });
 * const source = await WorkloadApiX509Source.connect({ endpoint: server.endpoint });
 * server.push(x509SvidResponse([{ chain: rotated }]));
 * await server.close();
 * ```
 */

/** The status every call without the security header gets (SPIRE's wording). */
export const SECURITY_HEADER_MISSING = 'security header missing from request';

/** Options of {@link WorkloadApiTestServer.start}. */
export interface WorkloadApiTestServerOptions {
  /**
   * First response written to every accepted stream (later ones get the latest pushed response).
   * `null`: accept streams but never answer.
   */
  readonly initial: X509SvidResponseInput | null;
  /** Answer every accepted call with this status instead of a stream. */
  readonly failWith?: { readonly code: grpc.status; readonly details: string };
  /** `unix` (default): a socket in a fresh temp dir, or `socketPath`. `tcp`: 127.0.0.1, ephemeral port. */
  readonly transport?: 'unix' | 'tcp';
  /** Unix socket path to listen on (its directory must exist; it is not removed on close). */
  readonly socketPath?: string;
}

type FetchCall = grpc.ServerWritableStream<unknown, X509SvidResponseInput>;

/** A running local Workload API server. */
export class WorkloadApiTestServer {
  /** The endpoint to give a client: `unix:///…/agent.sock` or `tcp://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** The Unix socket path (undefined for tcp). */
  readonly socketPath: string | undefined;

  readonly #grpc: grpc.Server;
  readonly #net: NetServer;
  readonly #injector: grpc.ConnectionInjector;
  readonly #ownedDir: string | undefined;
  readonly #sockets = new Set<Socket>();
  readonly #streams = new Set<FetchCall>();
  readonly #failWith: WorkloadApiTestServerOptions['failWith'];
  #latest: X509SvidResponseInput | null;
  #connections = 0;
  #calls = 0;
  #rejected = 0;
  #closed = false;

  private constructor(
    options: WorkloadApiTestServerOptions,
    parts: {
      grpc: grpc.Server;
      net: NetServer;
      injector: grpc.ConnectionInjector;
      endpoint: string;
      socketPath: string | undefined;
      ownedDir: string | undefined;
    },
  ) {
    this.#latest = options.initial;
    this.#failWith = options.failWith;
    this.#grpc = parts.grpc;
    this.#net = parts.net;
    this.#injector = parts.injector;
    this.endpoint = parts.endpoint;
    this.socketPath = parts.socketPath;
    this.#ownedDir = parts.ownedDir;
    this.#net.on('connection', (socket) => {
      this.#connections++;
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      this.#injector.injectConnection(socket);
    });
  }

  /** Start a server and wait until it listens. */
  static async start(options: WorkloadApiTestServerOptions): Promise<WorkloadApiTestServer> {
    const transport = options.transport ?? 'unix';
    let ownedDir: string | undefined;
    let socketPath: string | undefined;
    if (transport === 'unix') {
      if (options.socketPath === undefined) {
        ownedDir = mkdtempSync(path.join(tmpdir(), 'tp-wlapi-'));
        socketPath = path.join(ownedDir, 'agent.sock');
      } else {
        socketPath = options.socketPath;
        rmSync(socketPath, { force: true });
      }
    }
    const server = new grpc.Server();
    const net = createServer();
    const listenPath = socketPath;
    await new Promise<void>((resolve, reject) => {
      net.once('error', reject);
      const done = (): void => {
        net.off('error', reject);
        resolve();
      };
      if (listenPath !== undefined) net.listen(listenPath, done);
      else net.listen(0, '127.0.0.1', done);
    });
    const endpoint =
      socketPath !== undefined
        ? `unix://${socketPath}`
        : `tcp://127.0.0.1:${(net.address() as AddressInfo).port}`;
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const instance = new WorkloadApiTestServer(options, {
      grpc: server,
      net,
      injector,
      endpoint,
      socketPath,
      ownedDir,
    });
    server.addService(loadWorkloadApiDefinition().service, {
      FetchX509SVID: (call: FetchCall) => instance.#onFetch(call),
    });
    return instance;
  }

  /** Transport connections accepted so far. */
  get connections(): number {
    return this.#connections;
  }

  /** FetchX509SVID calls accepted (security header present) so far. */
  get calls(): number {
    return this.#calls;
  }

  /** Calls refused for a missing or wrong security header so far. */
  get rejected(): number {
    return this.#rejected;
  }

  /** FetchX509SVID streams currently open. */
  get openStreams(): number {
    return this.#streams.size;
  }

  /**
   * Make `response` the latest one and write it to every open stream (a rotation).
   * @returns How many streams it was written to.
   */
  push(response: X509SvidResponseInput): number {
    this.#latest = response;
    for (const call of this.#streams) call.write(response);
    return this.#streams.size;
  }

  /** End every open stream: cleanly (status OK) or with `status`. */
  endStreams(status?: { readonly code: grpc.status; readonly details: string }): void {
    for (const call of [...this.#streams]) {
      this.#streams.delete(call);
      if (status === undefined) call.end();
      else call.emit('error', { code: status.code, details: status.details });
    }
  }

  /** Stop at once: cancel streams, drop connections, stop listening, remove the temp dir. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#streams.clear();
    this.#grpc.forceShutdown();
    this.#injector.destroy();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#net.close(() => resolve()));
    if (this.#ownedDir !== undefined) rmSync(this.#ownedDir, { recursive: true, force: true });
  }

  #onFetch(call: FetchCall): void {
    const values = call.metadata.get(WORKLOAD_API_SECURITY_HEADER);
    if (values.length !== 1 || values[0] !== 'true') {
      this.#rejected++;
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: SECURITY_HEADER_MISSING });
      return;
    }
    this.#calls++;
    if (this.#failWith !== undefined) {
      call.emit('error', { code: this.#failWith.code, details: this.#failWith.details });
      return;
    }
    this.#streams.add(call);
    const forget = (): void => {
      this.#streams.delete(call);
    };
    call.on('cancelled', forget);
    call.on('close', forget);
    call.on('error', forget);
    if (this.#latest !== null) call.write(this.#latest);
  }
}

/** One SVID for {@link x509SvidResponse}. */
export interface TestSvid {
  readonly chain: SpiffeChain;
  /** The SPIFFE ID to announce (default: the leaf's `spiffe://` URI SAN). */
  readonly spiffeId?: string;
  readonly hint?: string;
}

/** Concatenate DER values the way the Workload API carries chains and bundles. */
export function concatDer(items: readonly Uint8Array[]): Buffer {
  return Buffer.concat(items.map((d) => Buffer.from(d)));
}

/**
 * Build an `X509SVIDResponse` from minted chains: `x509_svid` = leaf + intermediates, `bundle` =
 * the root, key = the leaf's PKCS#8 DER.
 */
export function x509SvidResponse(
  svids: readonly TestSvid[],
  federated: Readonly<Record<string, readonly Uint8Array[]>> = {},
): X509SvidResponseInput {
  return {
    svids: svids.map((s) => ({
      spiffe_id: s.spiffeId ?? spiffeIdOf(s.chain),
      x509_svid: concatDer(s.chain.chainDer),
      x509_svid_key: Buffer.from(s.chain.leafKey.pkcs8Der),
      bundle: concatDer([s.chain.root.der]),
      hint: s.hint ?? '',
    })),
    federated_bundles: Object.fromEntries(Object.entries(federated).map(([k, v]) => [k, concatDer(v)])),
  };
}

function spiffeIdOf(chain: SpiffeChain): string {
  const san = chain.leaf.x509.subjectAltName ?? '';
  const m = /URI:(spiffe:\/\/[^,\s]+)/.exec(san);
  if (m?.[1] === undefined) throw new Error('x509SvidResponse: leaf has no spiffe:// URI SAN');
  return m[1];
}
