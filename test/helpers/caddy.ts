import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './redis.js';

/** The caddy binary (override with CADDY). */
export const CADDY = process.env.CADDY ?? 'caddy';

/** A running Caddy. */
export interface CaddyServer {
  readonly base: string;
  readonly port: number;
  stop(): Promise<void>;
  /** Caddy's log so far (for failure messages). */
  log(): string;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.setTimeout(500, () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * Run `caddy run --config <caddyfile> --adapter caddyfile` on a free loopback port, with the
 * Caddyfile's `{$VAR}` placeholders given by `env` (plus `TRUSTPLANE_CADDY_PORT`,
 * `TRUSTPLANE_CADDY_BIND=127.0.0.1` and `CADDY_ADMIN=off`). Caddy's data and config directories
 * (certificate storage, autosave) are in a fresh temp dir. Waits (at most 15 s) until the port
 * accepts connections; the probe is a bare TCP connect, so no request reaches the routes.
 */
export async function startCaddy(caddyfile: string, env: Record<string, string>): Promise<CaddyServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'trustplane-caddy-'));
  const port = await freePort();
  const child = spawn(CADDY, ['run', '--config', caddyfile, '--adapter', 'caddyfile'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: dir,
      XDG_DATA_HOME: path.join(dir, 'data'),
      XDG_CONFIG_HOME: path.join(dir, 'config'),
      CADDY_ADMIN: 'off',
      TRUSTPLANE_CADDY_PORT: String(port),
      TRUSTPLANE_CADDY_BIND: '127.0.0.1',
      ...env,
    },
  });
  let output = '';
  const keep = (c: Buffer) => (output = (output + c.toString()).slice(-8000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`caddy exited: ${output}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`caddy did not start: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { base: `http://127.0.0.1:${port}`, port, stop, log: () => output };
}
