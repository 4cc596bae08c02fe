import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from './redis.js';

/** The built CLI (tests run after `npm run build`; TRUSTPLANE_TEST_CLI points at another build). */
export const CLI = process.env.TRUSTPLANE_TEST_CLI ?? path.resolve('dist/cmd/trustplane/main.js');

/** An adapter running as its own OS process. */
export interface AdapterProcess {
  readonly child: ChildProcess;
  readonly base: string;
  readonly admin: string;
  /** Resolves with the exit code or signal. */
  readonly exited: Promise<number | string | null>;
  /** stderr so far (structured logs). */
  stderr(): string;
  /** The JSON log lines of stderr so far. */
  lines(): Record<string, unknown>[];
  /** Send a signal and wait for the exit (SIGKILL after `ms`). Returns the exit code or signal. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number | string | null>;
}

/** Options for {@link spawnAdapter}. */
export interface SpawnAdapterOptions {
  readonly env?: Record<string, string>;
  /**
   * What to wait for before returning: `ready` (`/readyz` 200, the default), `healthy`
   * (`/healthz` 200: listening, maybe not ready), `admin` (`/healthz` answers at all), `nothing`.
   */
  readonly waitFor?: 'ready' | 'healthy' | 'admin' | 'nothing';
  readonly readyTimeoutMs?: number;
  readonly listenPort?: number;
  /** Run under `ulimit -f` (KiB): every file the adapter writes is limited to that size. */
  readonly fileSizeKiB?: number;
}

/** The flags naming a test world's bundle files and their signer. */
export function bundleArgs(files: {
  readonly trustMaterial: string;
  readonly policyBundle: string;
  readonly signerKey: string;
}): string[] {
  return [
    '--trust-material',
    files.trustMaterial,
    '--policy-bundle',
    files.policyBundle,
    '--bundle-public-key',
    files.signerKey,
  ];
}

/** Parse the JSON lines of a log (other lines are skipped). */
export function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut by the stderr window
    }
  }
  return out;
}

/**
 * Start `trustplane adapter` with `args` on free loopback ports and wait (bounded) for what
 * `options.waitFor` names. A process that exits first, or misses the deadline, is an error.
 */
export async function spawnAdapter(
  args: readonly string[],
  options: SpawnAdapterOptions = {},
): Promise<AdapterProcess> {
  const port = options.listenPort ?? (await freePort());
  const adminPort = await freePort();
  const argv = [
    CLI,
    'adapter',
    '--listen',
    `127.0.0.1:${port}`,
    '--admin-listen',
    `127.0.0.1:${adminPort}`,
    ...args,
  ];
  const spawnOptions = {
    stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...options.env },
  };
  const child =
    options.fileSizeKiB === undefined
      ? spawn(process.execPath, argv, spawnOptions)
      : spawn(
          'bash',
          ['-c', `ulimit -f ${options.fileSizeKiB} && exec "$0" "$@"`, process.execPath, ...argv],
          spawnOptions,
        );
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-200_000)));
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
  const proc: AdapterProcess = {
    child,
    base: `http://127.0.0.1:${port}`,
    admin,
    exited,
    stderr: () => stderr,
    lines: () => jsonLines(stderr),
    stop,
  };
  const waitFor = options.waitFor ?? 'ready';
  if (waitFor === 'nothing') return proc;
  const probe = waitFor === 'ready' ? '/readyz' : '/healthz';
  const deadline = Date.now() + (options.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`adapter exited with ${child.exitCode}: ${stderr}`);
    try {
      const r = await fetch(`${admin}${probe}`, { signal: AbortSignal.timeout(1_000) });
      if (r.status === 200 || waitFor === 'admin') break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop('SIGKILL');
      throw new Error(`adapter did not answer ${probe} in time: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return proc;
}
