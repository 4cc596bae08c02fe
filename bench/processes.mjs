// Process and loopback helpers the benchmarks share: child processes tracked and killed on every
// exit path, a free loopback port, and a GET on a fresh connection.

import { fork, spawn } from 'node:child_process';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import path from 'node:path';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const children = new Set();
const atExit = [];

/** Track a child process: it is SIGKILLed when this process exits (normally or on a signal). */
export function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILL every tracked child still running. */
export function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

/** Run `fn` at exit, after the children are killed (e.g. remove a temp directory). */
export function onExit(fn) {
  atExit.push(fn);
}

process.on('exit', () => {
  killAll();
  for (const fn of atExit) {
    try {
      fn();
    } catch {
      // best effort at exit
    }
  }
});
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

/** A loopback port free right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** GET on a fresh connection; resolves { status, text }. */
export function fetchText(url, timeoutMs = 5_000) {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
/** The built CLI the benches run. */
export const CLI = path.join(BENCH_DIR, '..', 'dist/cmd/trustplane/main.js');

/**
 * Fork a bench helper script (bench/<script>); resolves with its port once it reports it over IPC.
 * @param execArgv Node flags for the child (e.g. a CPU profile)
 */
export async function forkServer(script, args = [], execArgv = []) {
  const child = track(
    fork(path.join(BENCH_DIR, script), args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv }),
  );
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start within 10 s`)), 10_000);
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m.port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before listening`));
    });
  });
  return { child, port };
}

/** Disconnect a forked helper (it exits on disconnect) and wait for it, SIGKILL after 5 s. */
export async function stopForked(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.disconnect();
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Start `trustplane adapter` (journaled memory replay store, hash-chained ledger file in `dir`, named
 * `<name>-…` so adapters of one run stay apart) and wait until /readyz answers 200.
 * `BENCH_ADAPTER_ARGS` (adapter flags, space-separated) is appended for every adapter of a run,
 * e.g. "--replay-journal off" to see what the journal costs.
 * @param options.upstreamPort, options.files ({ dir, trustMaterial, policyBundle, signerKey }),
 *   options.name, options.extraArgs (adapter flags), options.nodeArgs, options.cli (another build's CLI),
 *   options.readyTimeoutMs
 */
export async function startAdapterProcess({
  upstreamPort,
  files,
  name = 'adapter',
  extraArgs = [],
  nodeArgs = [],
  cli = CLI,
  readyTimeoutMs = 30_000,
}) {
  const [port, adminPort] = [await freePort(), await freePort()];
  const args = [
    ...nodeArgs,
    cli,
    'adapter',
    '--upstream',
    `http://127.0.0.1:${upstreamPort}`,
    '--trust-material',
    files.trustMaterial,
    '--policy-bundle',
    files.policyBundle,
    '--bundle-public-key',
    files.signerKey,
    '--audit',
    path.join(files.dir, `${name}-ledger.jsonl`),
    '--log-level',
    'error',
    '--replay-journal',
    path.join(files.dir, `${name}-replay.journal`),
    '--listen',
    `127.0.0.1:${port}`,
    '--admin-listen',
    `127.0.0.1:${adminPort}`,
    ...extraArgs,
    ...(process.env.BENCH_ADAPTER_ARGS ? process.env.BENCH_ADAPTER_ARGS.split(' ').filter(Boolean) : []),
  ];
  const child = track(
    spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: path.join(BENCH_DIR, '..') }),
  );
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c.toString()).slice(-20_000)));
  const admin = `http://127.0.0.1:${adminPort}`;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before ready:\n${stderr}`);
    try {
      if ((await fetchText(`${admin}/readyz`, 1_000)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`${name} not ready within ${readyTimeoutMs / 1000} s:\n${stderr}`);
    await sleep(50);
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 8_000);
    await exited;
    clearTimeout(timer);
  };
  return { child, port, admin, stderr: () => stderr, stop };
}
