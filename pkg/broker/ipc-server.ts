import { chmod, lstat, mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Broker, IssueContext } from './broker.js';
import { BROKER_IPC_TIMEOUT_MS, type BrokerIpcResponse } from '../proof/broker-ipc-v1.js';
import { readLines } from './ndjson.js';
import { overloadedResponse, requestIdOfLine, type InFlightBudget } from './listener-limits.js';

/** Options for {@link serveBrokerIpc}. */
export interface BrokerIpcServerOptions {
  /** Unix socket path. The socket is created with mode 0600 (owner only). */
  readonly socketPath: string;
  /** Idle timeout per connection, ms (default 30 s, the broker-ipc-v1 timeout). */
  readonly timeoutMs?: number;
  /** Most concurrent connections (default 64). */
  readonly maxConnections?: number;
  /** Told about connection-level problems (never with request contents). */
  readonly onError?: (message: string) => void;
}

/** A running IPC server. */
export interface BrokerIpcServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Remove a stale socket at `path`; refuse to touch anything that is not a dead socket. */
async function clearSocketPath(path: string): Promise<void> {
  let stat;
  try {
    stat = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!stat.isSocket()) throw new Error(`broker socket path exists and is not a socket: ${path}`);
  if (await socketInUse(path)) throw new Error(`another broker is listening on ${path}`);
  await unlink(path);
}

/**
 * Serve broker-ipc-v1 on a Unix socket: one JSON request per line, one JSON response per line,
 * answered in order per connection. The socket is bound inside a fresh 0700 directory, set to
 * 0600 and only then renamed into place, so no other user can ever connect to it, not even in the
 * moment between bind and chmod. A line over 1 MiB, or not UTF-8 / not JSON, gets a
 * `malformed_request` deny; a too-long line also closes the connection. Idle connections close
 * after 30 s.
 * @example
 * const server = await serveBrokerIpc(broker, { socketPath: '/run/trustplane/broker.sock' })
 */
export async function serveBrokerIpc(
  broker: Pick<Broker, 'issue' | 'refuse'>,
  options: BrokerIpcServerOptions,
  context: IssueContext = {},
): Promise<BrokerIpcServer> {
  const socketPath = options.socketPath;
  const timeoutMs = options.timeoutMs ?? BROKER_IPC_TIMEOUT_MS;
  await clearSocketPath(socketPath);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(timeoutMs, () => socket.destroy());
    handleConnection(broker, socket, context);
  });
  server.maxConnections = options.maxConnections ?? 64;
  server.on('error', (error) => options.onError?.(`broker socket error: ${error.message}`));

  const staging = await mkdtemp(join(dirname(socketPath), '.trustplane-broker-'));
  const stagingSocket = join(staging, 'broker.sock');
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(stagingSocket, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(stagingSocket, 0o600);
    await rename(stagingSocket, socketPath);
  } catch (error) {
    server.close();
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }

  let closed = false;
  return {
    socketPath,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      await unlink(socketPath).catch(() => undefined);
    },
  };
}

/** What a listener adds to the handling of each connection (the TLS listener; the Unix socket has none). */
export interface ConnectionOptions {
  /**
   * Called before each request is decided. False: the connection is being closed (its peer is no
   * longer trusted) and the request gets no answer.
   */
  readonly admit?: () => boolean;
  /**
   * The in-flight budget the listener's connections share. A request that finds no free slot is
   * answered `overloaded` (in its turn on the connection) without being decided or audited.
   */
  readonly inFlight?: InFlightBudget;
}

/** Answer the lines of one connection, strictly in order. */
export function handleConnection(
  broker: Pick<Broker, 'issue' | 'refuse'>,
  socket: Socket,
  context: IssueContext,
  options: ConnectionOptions = {},
): void {
  let chain: Promise<void> = Promise.resolve();
  const send = (response: BrokerIpcResponse) => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(response)}\n`);
  };
  const budget = options.inFlight;
  readLines(
    socket,
    (line) => {
      if (budget !== undefined && !budget.tryAcquire()) {
        // Only the answer is kept, never the line: a shed request costs no buffer while it waits.
        const answer = overloadedResponse(requestIdOfLine(line), 'in_flight');
        chain = chain.then(() => send(answer));
        return;
      }
      chain = chain.then(async () => {
        try {
          if (options.admit?.() === false) return;
          let request: unknown;
          try {
            request = JSON.parse(line);
          } catch {
            send(await broker.refuse('the message is not JSON'));
            return;
          }
          send(await broker.issue(request, context));
        } finally {
          budget?.release();
        }
      });
    },
    (problem) => {
      chain = chain.then(async () => {
        send(
          await broker.refuse(
            problem === 'message_too_large' ? 'the message exceeds 1 MiB' : 'the message is not UTF-8',
          ),
        );
        socket.end();
      });
    },
  );
}
