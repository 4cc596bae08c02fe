import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, REDIS_SERVER } from './redis.js';

/**
 * A redis-server that keeps its data across a crash: append-only file with `appendfsync always`
 * (every write is on disk before Redis answers it), so a SIGKILL followed by {@link restart} on
 * the same port and directory brings back every key it acknowledged. Unlike `startRedis`
 * (`test/helpers/redis.ts`, no persistence), this is the server for outage tests that must not
 * confuse "Redis was down" with "Redis came back empty".
 */
export interface RedisWithData {
  /** `redis://127.0.0.1:<port>` (stable across restarts). */
  readonly url: string;
  readonly port: number;
  /** The data directory (kept until {@link stop}). */
  readonly dir: string;
  /** The current server process id. */
  pid(): number;
  /** SIGSTOP: the server hangs (connections stay open, nothing is answered). */
  pause(): void;
  /** SIGCONT after {@link pause}. */
  resume(): void;
  /** SIGKILL and wait for the exit; the data directory stays. */
  crash(): Promise<void>;
  /** Start the server again on the same port and data directory; waits (≤ 10 s) for PING. */
  restart(): Promise<void>;
  /** Stop the server (SIGCONT + SIGTERM) and remove the data directory. Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;

/**
 * Start a persistent redis-server on 127.0.0.1 and wait (at most 10 s) until it answers PING.
 * @example
 * const redis = await startRedisWithData(); try { await redis.crash(); await redis.restart() } finally { await redis.stop() }
 */
export async function startRedisWithData(): Promise<RedisWithData> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trustplane-redis-data-'));
  let port = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  const launch = async () => {
    const c = spawn(
      REDIS_SERVER,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--daemonize',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    c.stdout?.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-4000)));
    c.stderr?.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-4000)));
    child = c;
    exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`redis-server exited early (${c.exitCode ?? c.signalCode}): ${output}`);
      }
      if (await answersPing(port)) return;
      if (Date.now() > deadline) {
        c.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} did not answer PING: ${output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const signal = async (sig: NodeJS.Signals) => {
    if (alive()) {
      child!.kill(sig);
      child!.kill('SIGCONT'); // a stopped server acts on the signal only once continued
    }
    await exited;
  };
  let lastError: unknown;
  for (let attempt = 0; attempt < 3 && !alive(); attempt++) {
    try {
      port = await freePort();
      await launch();
    } catch (e) {
      lastError = e;
    }
  }
  if (!alive()) {
    await rm(dir, { recursive: true, force: true });
    throw lastError;
  }
  let stopped = false;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    pid: () => child?.pid ?? 0,
    pause: () => void (alive() && child!.kill('SIGSTOP')),
    resume: () => void (alive() && child!.kill('SIGCONT')),
    crash: () => signal('SIGKILL'),
    restart: async () => {
      if (alive()) throw new Error('redis-server is still running');
      await launch();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await signal('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One raw RESP PING; true on `+PONG`. */
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
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.once('connect', () => socket.write('PING\r\n'));
  });
}
