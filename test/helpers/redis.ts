import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';

/** Where the tests look for redis-server (override with REDIS_SERVER). */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';

/** A redis-server started for one test file. */
export interface RedisServer {
  /** `redis://127.0.0.1:<port>` (with `:<password>@` when started with a password). */
  readonly url: string;
  readonly port: number;
  /** The server's process id (e.g. to SIGSTOP it and simulate a hung server). */
  readonly pid: number;
  /** SIGTERM and wait for the exit; removes the data directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (an outage, not a shutdown) and wait for the exit; removes the data directory. Idempotent. */
  kill(): Promise<void>;
}

/** Options for {@link startRedis}. */
export interface StartRedisOptions {
  /** Require this password (`--requirepass`). */
  readonly password?: string;
  /** Listen on this port (e.g. to restart a killed server where its clients reconnect); default: a free one. */
  readonly port?: number;
  /**
   * More `redis-server` arguments, after the defaults (a later one wins), e.g.
   * `['--maxmemory-policy', 'allkeys-lru']`, `['--rename-command', 'CONFIG', '']`, or `['--dir', d]`
   * to keep the data directory across a kill and a restart on the same port.
   */
  readonly args?: readonly string[];
}

const READY_TIMEOUT_MS = 10_000;

/**
 * Start `redis-server` on 127.0.0.1 on a free port, without persistence, and wait (at most 10 s)
 * until it answers PING.
 * @example
 * const redis = await startRedis(); try { ... } finally { await redis.stop() }
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  if (options.port !== undefined) return startOnce(options.port, options);
  let lastError: unknown;
  // A free port can be taken between probing and binding: retry a few times.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(await freePort(), options);
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

async function startOnce(port: number, options: StartRedisOptions): Promise<RedisServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trustplane-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--daemonize',
    'no',
  ];
  if (options.password !== undefined) args.push('--requirepass', options.password);
  if (options.args !== undefined) args.push(...options.args);
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let done = false;
  const finish = async (signal: NodeJS.Signals): Promise<void> => {
    if (!done) {
      done = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        child.kill('SIGCONT'); // a stopped server acts on SIGTERM only once continued
      }
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    await waitForPing(port, child, () => output);
  } catch (e) {
    await finish('SIGKILL');
    throw e;
  }
  const auth = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`;
  return {
    url: `redis://${auth}127.0.0.1:${port}`,
    port,
    pid: child.pid ?? 0,
    stop: () => finish('SIGTERM'),
    kill: () => finish('SIGKILL'),
  };
}

async function waitForPing(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server exited early (${child.exitCode ?? child.signalCode}): ${output()}`);
    }
    if (await answersPing(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `redis-server on port ${port} did not answer PING within ${READY_TIMEOUT_MS} ms: ${output()}`,
  );
}

/** One raw RESP PING; true on `+PONG` or an auth error (the server is up either way). */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
    socket.once('connect', () => socket.write('PING\r\n'));
  });
}

/** A TCP port that was free a moment ago (and nothing listens on it now). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Whether `binary` (a path, or a name looked up on PATH) is an executable file. */
export function hasBinary(binary: string): boolean {
  const candidates = binary.includes('/')
    ? [binary]
    : (process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, binary));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Declare, inside a `describe`, a test that checks an external server binary is installed, and
 * tell whether it is. In CI (`CI=true`) a missing binary fails that test; elsewhere the test passes
 * with a warning. Define the server's real tests only when this returns true (no `.skip`).
 * @param name a human name, e.g. `redis-server`
 * @param binary a path or a name looked up on PATH
 * @returns whether the binary is available
 * @example
 * describe('RedisReplayStore', () => { if (requireServer('redis-server', REDIS_SERVER)) { it(...) } })
 */
export function requireServer(name: string, binary: string): boolean {
  const available = hasBinary(binary);
  it(`${name} is installed`, () => {
    if (!available) {
      if (process.env.CI === 'true') {
        expect.fail(`${name} (${binary}) is required in CI but was not found; install it (see .ci/run)`);
      }
      console.warn(`${name} (${binary}) is not installed: the tests that need it were not defined`);
    }
    expect(typeof available).toBe('boolean');
  });
  return available;
}
