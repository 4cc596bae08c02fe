import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, hasBinary } from './redis.js';

/** The nginx binary (override with NGINX): on PATH, else Debian's /usr/sbin/nginx. */
export const NGINX = process.env.NGINX ?? (hasBinary('nginx') ? 'nginx' : '/usr/sbin/nginx');

/** A running nginx. */
export interface NginxServer {
  readonly base: string;
  readonly port: number;
  stop(): Promise<void>;
  /** The error log so far (for failure messages). */
  errorLog(): string;
}

/**
 * Start nginx (foreground, its own prefix, pid and temp dirs under a fresh temp dir) serving
 * `serverConf` (a `server { ... }` block; `__LISTEN__` is replaced by the chosen loopback port).
 * Waits (at most 10 s) until it accepts connections.
 */
export async function startNginx(serverConf: string): Promise<NginxServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'trustplane-nginx-'));
  // Workers run as nobody when the master is root: they must be able to enter the prefix.
  chmodSync(dir, 0o755);
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) mkdirSync(path.join(dir, d));
  const port = await freePort();
  const root = process.getuid?.() === 0;
  const conf = `
${root ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  ${serverConf.replaceAll('__LISTEN__', `127.0.0.1:${port}`)}
}
`;
  const confPath = path.join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const child = spawn(NGINX, ['-p', dir, '-c', confPath, '-e', `${dir}/logs/error.log`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const errorLog = () => {
    try {
      return readFileSync(path.join(dir, 'logs/error.log'), 'utf8') + stderr;
    } catch {
      return stderr;
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGQUIT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${errorLog()}`);
    try {
      await fetch(`http://127.0.0.1:${port}/__nginx_probe__`, { signal: AbortSignal.timeout(500) });
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`nginx did not start: ${errorLog()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { base: `http://127.0.0.1:${port}`, port, stop, errorLog };
}
