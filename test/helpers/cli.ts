import { execFile } from 'node:child_process';
import { CLI } from './adapter-process.js';

/** What one CLI run printed and how it exited. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * Run `trustplane <args>` in this process (the same program the binary runs, `cmd/trustplane/program.ts`)
 * and capture what it writes. Runs are serialized: stdout and stderr are process-wide, so two
 * in-process runs must never overlap. Use it where the verb's behaviour is the point; use
 * {@link cliProcess} where the process is (exit on a closed pipe, signals, stdin).
 */
export function cliInProcess(args: readonly string[]): Promise<CliRun> {
  const run = queue.then(() => runOnce(args));
  queue = run.catch(() => undefined);
  return run;
}

async function runOnce(args: readonly string[]): Promise<CliRun> {
  const { runCli } = await import('../../cmd/trustplane/program.js');
  let stdout = '';
  let stderr = '';
  const writeOut = process.stdout.write;
  const writeErr = process.stderr.write;
  const capture =
    (append: (text: string) => void) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      const done = rest.find((r): r is () => void => typeof r === 'function');
      done?.();
      return true;
    };
  process.stdout.write = capture((t) => (stdout += t)) as typeof process.stdout.write;
  process.stderr.write = capture((t) => (stderr += t)) as typeof process.stderr.write;
  const exitCode = process.exitCode;
  try {
    const code = await runCli([process.execPath, CLI, ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
    process.exitCode = exitCode;
  }
}

// At most two CLI processes at a time per test file: a 2-core machine shared with other work.
const MAX_PROCESSES = 2;
let running = 0;
const waiting: (() => void)[] = [];

/**
 * Run the built CLI as its own process (at most two at a time per test file, 60 s timeout: sized
 * for a loaded 2-core machine, not for the work, which takes well under a second).
 */
export async function cliProcess(
  args: readonly string[],
  options: { readonly env?: Record<string, string>; readonly cwd?: string } = {},
): Promise<CliRun> {
  if (running >= MAX_PROCESSES) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await new Promise<CliRun>((resolve) => {
      execFile(
        process.execPath,
        [CLI, ...args],
        {
          encoding: 'utf8',
          timeout: 60_000,
          env: { ...process.env, NO_COLOR: '1', ...options.env },
          ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
        },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
          resolve({ code, stdout, stderr });
        },
      );
    });
  } finally {
    running--;
    waiting.shift()?.();
  }
}
