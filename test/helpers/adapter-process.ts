import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from './redis.js';

/** The built CLI (tests run after `npm run build`). */
export const CLI = path.resolve('dist/cmd/trustplane/main.js');

/** An adapter running as its own OS process. */
export interface AdapterProcess {
  readonly child: ChildProcess;
  readonly base: string;
  readonly admin: string;
  /** stderr so far (structured logs). */
  stderr(): string;
  /** Send a signal and wait for the exit (SIGKILL after `ms`). Returns the exit code or signal. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number | string | null>;
}

/**
 * Start `trustplane adapter` with `args` on free loopback ports and wait (bounded) until its
 * `/readyz` answers 200.
 */
export async function spawnAdapter(
  args: readonly string[],
  options: { env?: Record<string, string>; readyTimeoutMs?: number; listenPort?: number } = {},
): Promise<AdapterProcess> {
  const port = options.listenPort ?? (await freePort());
  const adminPort = await freePort();
  const child = spawn(
    process.execPath,
    [CLI, 'adapter', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`, ...args],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...options.env } },
  );
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
  const exited = new Promise<number | string | null>((r) =>
    child.once('exit', (code, signal) => r(code ?? signal)),
  );
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', ms = 10_000) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    const result = await exited;
    clearTimeout(timer);
    return result;
  };
  const admin = `http://127.0.0.1:${adminPort}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`adapter exited with ${child.exitCode}: ${stderr}`);
    try {
      const r = await fetch(`${admin}/readyz`, { signal: AbortSignal.timeout(1_000) });
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop('SIGKILL');
      throw new Error(`adapter did not become ready: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, base: `http://127.0.0.1:${port}`, admin, stderr: () => stderr, stop };
}
