// HTTP benchmark of the reverse-proxy adapter against a bare Node reverse proxy, side by side in one
// run, with the Ed25519 crypto ceiling measured in the same run.
//
// Run: npm run bench:adapter   (builds, then `node bench/adapter.mjs`; uses the compiled dist/)
//      BENCH_QUICK=1 node bench/adapter.mjs   (short run, about 20 s, after a build)
//      BENCH_SMOKE=1 node bench/adapter.mjs   (tiny counts: proves the bench works, figures mean nothing)
//      node bench/adapter.mjs --json <file>   (or BENCH_JSON_OUT=<file>: the results as data too)
// A full run takes about 80 s (45 s closed loop, then the open-loop and all-cores phases).
//
// Processes (each its own event loop; the machine has 2 cores, so they compete for CPU):
//   upstream    bench/upstream.mjs: node:http, 200 + small JSON body
//   bare proxy  bench/bare-proxy.mjs: node:http reverse proxy, buffers the body, pooled keep-alive
//   adapter     `node dist/cmd/trustplane/main.js adapter ...` (the built CLI, real clock, memory
//               replay store with its journal, hash-chained audit ledger file in a temp dir)
//   client      this process: node:http, keep-alive Agent, C concurrent connections
//
// Every adapter request is signed before timing (fresh passport and jti each, iat = now). The bare
// proxy and the direct row get the very same requests (headers and body), so the bytes are equal.
// Phases are bounded by a request count and a time budget, run after an untimed warm-up, and rounds
// reverse the order of the targets (direct, bare, adapter, then adapter, bare, direct); each row of
// the report is the median round. The bare and direct phases cycle through the same requests.
// CPU per request comes from each process itself: the adapter's own /metrics
// (trustplane_process_cpu_seconds_total, read between phases), process.cpuUsage() of the helpers
// over IPC, and of this process. Every timed adapter response must be 200 from the upstream
// (the bench aborts otherwise), and a replayed request must be 401 jti_replay.
//
// After the closed-loop rounds:
//   open loop   GET at a fixed rate (half the adapter's closed-loop peak, or BENCH_OPEN_RATE), to the
//               bare proxy and then to the adapter: each request is scheduled at start + i / rate and
//               sent then whatever earlier responses did, and its latency counts from the scheduled
//               time (no coordinated omission). p50, p99, p99.9 of each, and p99 added by the adapter.
//   all cores   (when redis-server is on PATH or BENCH_REDIS=1; BENCH_REDIS=0 skips) a redis-server
//               on a free loopback port, an adapter with `--replay-store redis` at 1 worker and one
//               at `--workers 2`, against the memory-store adapter above: GET, closed loop as above.
//
// Knobs (environment): BENCH_QUICK=1, BENCH_SMOKE=1, BENCH_CONNECTIONS (16), BENCH_ROUNDS (3),
// BENCH_PHASE_REQUESTS (per adapter phase), BENCH_PHASE_MS (time cap per phase),
// BENCH_CPU_PROF=<dir> (run the adapter, bare proxy and upstream with --cpu-prof; the profiles
// adapter.cpuprofile, bare-proxy.cpuprofile and upstream.cpuprofile are written to <dir> at exit;
// profiling slows the processes, so do not compare those figures with unprofiled runs),
// BENCH_ADAPTER_METRICS=<file> (the adapter's /metrics text at the end of the run),
// BENCH_OPEN_RATE (req/s of the open-loop phase), BENCH_OPEN_MS (its length), BENCH_REDIS (0|1),
// REDIS_SERVER (the redis-server binary, default redis-server on PATH).

import console from 'node:console';
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { verify as nodeVerify, createPublicKey, webcrypto } from 'node:crypto';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { createConnection } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';

import { issuePassport } from '../dist/pkg/authcore/index.js';
import { loadNativeEd25519 } from '../dist/pkg/adapter/index.js';
import { signRequest } from '../dist/pkg/proof/index.js';
import {
  fetchText,
  forkServer,
  freePort,
  killAll,
  onExit,
  startAdapterProcess,
  stopForked,
  track,
} from './processes.mjs';
import { benchMode, createResults } from './results.mjs';
import { ISSUER, ORIGIN, TRUST_DOMAIN, buildBenchWorld } from './world.mjs';

/** full, quick (BENCH_QUICK=1) or smoke (BENCH_SMOKE=1: a few hundred requests, ~300 ms phases). */
const MODE = benchMode();
const pick = (full, quick, smoke) => (MODE === 'smoke' ? smoke : MODE === 'quick' ? quick : full);
function intEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
}
/** Concurrent keep-alive connections from the client. */
const CONNECTIONS = intEnv('BENCH_CONNECTIONS', 16);
/** Rounds of (direct, bare, adapter) per request kind; the report takes the median round. */
const ROUNDS = intEnv('BENCH_ROUNDS', pick(3, 2, 1));
/** Fresh signed requests per timed adapter phase (its count bound). */
const PHASE_REQUESTS = intEnv('BENCH_PHASE_REQUESTS', pick(3000, 600, 150));
/** Time cap per timed phase, ms; direct and bare phases run this long, cycling the same requests. */
const PHASE_MS = intEnv('BENCH_PHASE_MS', pick(1500, 600, 300));
/** Count bound of a direct or bare phase (far above what PHASE_MS allows here). */
const MAX_BASELINE_REQUESTS = 200_000;
/** Untimed warm-up: fresh signed requests per kind for the adapter, and ms per baseline target. */
const WARMUP = pick(2500, 300, 50);
const WARMUP_MS = pick(1000, 300, 150);
/** Time budget per crypto ceiling measurement, ms. */
const CEILING_MS = pick(1000, 300, 100);
/**
 * Passports live 300 s: never sign more than this many in one batch (about 7,000/s here, so < 5 s).
 * Each section (closed loop, open loop, all cores) signs its own batch just before it runs.
 */
const MAX_SIGNED = 32_000;
/** A batch of pre-signed requests must be used up within this many seconds of its signing. */
const MAX_BATCH_AGE_S = 240;
/** Open loop: fixed rate (default: half the adapter's closed-loop GET peak) and length. */
const OPEN_RATE = process.env.BENCH_OPEN_RATE ? intEnv('BENCH_OPEN_RATE', 1) : undefined;
const OPEN_MS = intEnv('BENCH_OPEN_MS', pick(5000, 1500, 300));
/** Open loop: keep-alive connections opened before the schedule starts, and the most it may use. */
const OPEN_WARM_CONNECTIONS = 32;
const OPEN_MAX_SOCKETS = 256;
/** All cores: untimed fresh requests per adapter before its rounds. */
const CORES_WARMUP = pick(500, 200, 30);
// A/B: BENCH_AB_DIST=<a dist directory of another build> (e.g. a copy of dist/ made before a change)
// runs that build's adapter beside this one, same requests, alternating rounds: CPU per request of
// each and their ratio, from one run (the only way to see a 5 % change on a noisy machine).
const AB_DIST = process.env.BENCH_AB_DIST ? path.resolve(process.env.BENCH_AB_DIST) : undefined;
const AB_ROUNDS = intEnv('BENCH_AB_ROUNDS', pick(4, 3, 1));
// The base adapter starts cold while this build's has served every earlier phase: warm both well.
const AB_WARMUP = pick(2000, 1500, 50);
/** How long an adapter may take to answer /readyz 200 (a cluster starts its workers first). */
const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF;
const METRICS_FILE = process.env.BENCH_ADAPTER_METRICS;

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const log = (s) => process.stderr.write(`${s}\n`);
const nowS = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------------------------
// Child processes are tracked (bench/processes.mjs) and killed on every exit path.

let tmpDir;
onExit(() => {
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
});

/** Node flags that write a V8 CPU profile `<dir>/<name>.cpuprofile` at exit (BENCH_CPU_PROF only). */
function cpuProfArgs(name) {
  if (!CPU_PROF_DIR) return [];
  return ['--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROF_DIR)}`, `--cpu-prof-name=${name}.cpuprofile`];
}

/** process.cpuUsage() of a forked helper, µs (user + system). */
function childCpuUs(child) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('cpu query timed out')), 5_000);
    const onMessage = (m) => {
      if (!m?.cpu) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(m.cpu.user + m.cpu.system);
    };
    child.on('message', onMessage);
    child.send({ cmd: 'cpu' });
  });
}

/** `startAdapterProcess` of bench/processes.mjs, with a CPU profile for the main adapter (BENCH_CPU_PROF). */
function startAdapter(options) {
  const name = options.name ?? 'adapter';
  // Profiles of the main adapter only: cluster workers would all write the same file name.
  return startAdapterProcess({ ...options, nodeArgs: name === 'adapter' ? cpuProfArgs(name) : [] });
}

/** Counters the bench reads from the adapter's /metrics (Prometheus text). */
async function adapterMetrics(admin) {
  const { status, text } = await fetchText(`${admin}/metrics`);
  if (status !== 200) throw new Error(`adapter /metrics answered ${status}`);
  const value = (re) => {
    let sum = 0;
    for (const m of text.matchAll(re)) sum += Number(m[1]);
    return sum;
  };
  return {
    cpuUs: value(/^trustplane_process_cpu_seconds_total (\S+)$/gm) * 1e6,
    allowed: value(/^trustplane_decisions_total\{[^}]*outcome="allow"[^}]*\} (\S+)$/gm),
    decideSum: value(/^trustplane_verification_duration_seconds_sum\{[^}]*outcome="allow"[^}]*\} (\S+)$/gm),
    decideCount: value(
      /^trustplane_verification_duration_seconds_count\{[^}]*outcome="allow"[^}]*\} (\S+)$/gm,
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// World: the minimum of test/helpers/fixture.ts, on the real clock (the adapter runs on it).

const GET_TARGET = '/v1/orders/search?status=open&limit=50';
const POST_TARGET = '/v1/orders';

async function writeWorld(dir) {
  const { caller, bundleSigner, trustDoc, policyDoc } = await buildBenchWorld(nowS() - 60);
  const trustMaterial = path.join(dir, 'trust.json');
  const policyBundle = path.join(dir, 'policy.json');
  writeFileSync(trustMaterial, JSON.stringify(trustDoc));
  writeFileSync(policyBundle, JSON.stringify(policyDoc));
  return { caller, files: { dir, trustMaterial, policyBundle, signerKey: bundleSigner.publicKey.x } };
}

/** An order as JSON, exactly 1024 bytes. */
const JSON_BODY = (() => {
  const order = {
    order_id: 'ord_123',
    currency: 'USD',
    items: Array.from({ length: 8 }, (_, i) => ({ sku: `sku-${i}`, qty: i + 1, price: '19.99' })),
    note: '',
  };
  order.note = 'x'.repeat(1024 - JSON.stringify(order).length);
  const bytes = Buffer.from(JSON.stringify(order));
  if (bytes.length !== 1024) throw new Error('body is not 1 KiB');
  return bytes;
})();

/** Sign `count` requests of one kind, each with a fresh passport (fresh jti), iat = now. */
async function presign(caller, kind, count, tag) {
  const isPost = kind === 'POST';
  const one = async (i) => {
    const iat = nowS();
    const passport = await issuePassport(
      {
        iss: ISSUER,
        sub: 'service:orders-client',
        aud: 'orders-api',
        iat,
        exp: iat + 300,
        jti: `jti-${tag}-${i}-${webcrypto.randomUUID()}`,
        trust_domain: TRUST_DOMAIN,
        cnf: { kid: 'request-key', key_binding: 'software', public_key_b64url: caller.publicKey.x },
      },
      caller,
      { kid: 'caller-1' },
    );
    const target = isPost ? POST_TARGET : GET_TARGET;
    const signed = await signRequest({
      method: kind,
      url: `${ORIGIN}${target}`,
      routeId: isPost ? 'orders.create' : 'orders.search',
      passport,
      requestKey: caller,
      ...(isPost ? { body: JSON_BODY, headers: { 'content-type': 'application/json' } } : {}),
    });
    // The same Host for every target, so every target gets byte-identical requests.
    const headers = { host: 'orders.example', ...signed.headers };
    if (isPost) headers['content-length'] = String(JSON_BODY.length);
    return { method: kind, path: target, headers, body: isPost ? JSON_BODY : undefined };
  };
  const out = [];
  for (let i = 0; i < count; i += 64) {
    const chunk = [];
    for (let j = i; j < Math.min(count, i + 64); j++) chunk.push(one(j));
    out.push(...(await Promise.all(chunk)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Load generator

function send(agent, port, r) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: r.method, path: r.path, headers: r.headers, agent },
      (res) => {
        let text = '';
        if (res.statusCode === 200) res.resume();
        else {
          res.setEncoding('utf8');
          res.on('data', (c) => (text += c));
        }
        res.on('end', () =>
          resolve({ status: res.statusCode, fromUpstream: res.headers['x-bench-upstream'] === '1', text }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out after 15 s')));
    req.on('error', reject);
    req.end(r.body);
  });
}

/**
 * Send `reqs` (at most `maxCount`, at most `budgetMs`) over CONNECTIONS keep-alive connections,
 * each connection one request at a time. A fresh Agent per phase, so no pooled connection outlives
 * the server's keep-alive timeout. Any response that is not a 200 from the upstream aborts.
 */
async function load(port, reqs, maxCount, budgetMs, label) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const lat = new Float64Array(maxCount);
  let next = 0;
  let done = 0;
  let failure;
  const start = performance.now();
  const deadline = start + budgetMs;
  const worker = async () => {
    while (failure === undefined && next < maxCount && performance.now() < deadline) {
      const r = reqs[next++ % reqs.length];
      const t = performance.now();
      let res;
      try {
        res = await send(agent, port, r);
      } catch (e) {
        failure ??= `${label}: ${r.method} ${r.path} failed: ${e.message}`;
        return;
      }
      lat[done++] = performance.now() - t;
      if (res.status !== 200 || !res.fromUpstream) {
        failure ??=
          `${label}: ${r.method} ${r.path} answered ${res.status}` +
          `${res.fromUpstream ? '' : ' (not from the upstream)'}: ${res.text.slice(0, 300)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  const ms = performance.now() - start;
  agent.destroy();
  if (failure !== undefined) throw new Error(`bench aborted: ${failure}`);
  const sorted = lat.subarray(0, done).sort();
  return {
    ops: done,
    ms,
    rps: (done / ms) * 1000,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Open loop: request i is due at start + i × (1000 / rate) ms and is sent then, whether or not the
 * earlier ones have been answered; its latency runs from the due time (so a stall shows in every
 * request it delays: no coordinated omission). A keep-alive pool of up to OPEN_MAX_SOCKETS
 * connections, OPEN_WARM_CONNECTIONS of them opened by `warm` (untimed) before the schedule starts;
 * a request with no free connection waits in the pool, and that wait counts. Bounded: `reqs.length`
 * requests, each with a 15 s timeout. Any response that is not a 200 from the upstream aborts.
 * `sendLag` is how late the generator itself sent (timer granularity, its own event loop).
 */
async function openLoop(port, reqs, warm, rate, label) {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: OPEN_MAX_SOCKETS,
    maxFreeSockets: OPEN_MAX_SOCKETS,
  });
  try {
    await Promise.all(warm.map((r) => send(agent, port, r)));
    const count = reqs.length;
    const interval = 1000 / rate;
    const lat = new Float64Array(count);
    const lag = new Float64Array(count);
    const pending = [];
    let failure;
    const start = performance.now() + 5;
    let sent = 0;
    while (sent < count && failure === undefined) {
      const now = performance.now();
      while (sent < count && start + sent * interval <= now) {
        const i = sent++;
        const due = start + i * interval;
        lag[i] = now - due;
        const r = reqs[i];
        pending.push(
          send(agent, port, r).then(
            (res) => {
              lat[i] = performance.now() - due;
              if (res.status !== 200 || !res.fromUpstream) {
                failure ??= `${label}: ${r.method} ${r.path} answered ${res.status}: ${res.text.slice(0, 300)}`;
              }
            },
            (e) => {
              failure ??= `${label}: ${r.method} ${r.path} failed: ${e.message}`;
            },
          ),
        );
      }
      if (sent < count) await sleep(Math.max(0, start + sent * interval - performance.now()));
    }
    await Promise.all(pending);
    const ms = performance.now() - start;
    if (failure !== undefined) throw new Error(`bench aborted: ${failure}`);
    const sorted = lat.sort();
    const lagSorted = lag.sort();
    return {
      ops: count,
      ms,
      achievedRps: (count / ms) * 1000,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      max: sorted[count - 1],
      lagP99: percentile(lagSorted, 99),
    };
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Redis (all-cores phases)

function onPath(binary) {
  const dirs = binary.includes('/') ? [''] : (process.env.PATH ?? '').split(path.delimiter);
  return dirs.some((dir) => {
    try {
      accessSync(dir === '' ? binary : path.join(dir, binary), fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Whether to run the Redis phases: BENCH_REDIS=1 requires them, 0 skips them, else if installed. */
function redisWanted() {
  const flag = process.env.BENCH_REDIS;
  if (flag === '0') return { run: false, why: 'BENCH_REDIS=0' };
  const found = onPath(REDIS_SERVER);
  if (flag === '1' && !found) throw new Error(`BENCH_REDIS=1 but ${REDIS_SERVER} was not found`);
  return found ? { run: true } : { run: false, why: `${REDIS_SERVER} is not on PATH` };
}

function answersPing(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (c) => {
      reply += c.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.once('connect', () => socket.write('PING\r\n'));
  });
}

/**
 * A redis-server on a free loopback port, no persistence, data dir under `dir`, `noeviction` (the
 * adapter requires it). Tracked like every child, so it dies with the bench.
 */
async function startRedis(dir) {
  const port = await freePort();
  const child = track(
    spawn(
      REDIS_SERVER,
      [
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
        '--maxmemory-policy',
        'noeviction',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
  );
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c.toString()).slice(-4000)));
  const deadline = Date.now() + 10_000;
  while (!(await answersPing(port))) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}): ${stderr}`);
    }
    if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within 10 s: ${stderr}`);
    await sleep(50);
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  return { url: `redis://127.0.0.1:${port}`, stop };
}

// ---------------------------------------------------------------------------------------------
// Crypto ceiling (same process, same run, before any HTTP load)

async function measureAsync(fn, budgetMs) {
  for (let i = 0; i < 200; i++) await fn();
  let ops = 0;
  const start = performance.now();
  while (performance.now() - start < budgetMs) {
    for (let j = 0; j < 32; j++) await fn();
    ops += 32;
  }
  return ((performance.now() - start) * 1000) / ops;
}
function measureSync(fn, budgetMs) {
  for (let i = 0; i < 500; i++) fn();
  let ops = 0;
  const start = performance.now();
  while (performance.now() - start < budgetMs) {
    for (let j = 0; j < 64; j++) if (!fn()) throw new Error('verify failed');
    ops += 64;
  }
  return ((performance.now() - start) * 1000) / ops;
}

async function cryptoCeiling(caller) {
  const msg = webcrypto.getRandomValues(new Uint8Array(32));
  const sig = await caller.sign(msg);
  const subtle = webcrypto.subtle;
  const pub = caller.publicKey.cryptoKey;
  const webUs = await measureAsync(async () => {
    if (!(await subtle.verify({ name: 'Ed25519' }, pub, sig, msg))) throw new Error('bad signature');
  }, CEILING_MS);
  const native = loadNativeEd25519();
  const raw = caller.publicKey.raw;
  const nativeUs = measureSync(() => native.verify(raw, sig, msg), CEILING_MS);
  const nodeKey = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: caller.publicKey.x },
    format: 'jwk',
  });
  const nodeUs =
    native.name === 'node:crypto'
      ? nativeUs
      : measureSync(() => nodeVerify(null, msg, nodeKey, sig), CEILING_MS);
  return { webUs, nativeUs, nativeName: native.name, nodeUs };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const t0 = performance.now();
  const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
  const nproc = os.availableParallelism?.() ?? os.cpus().length;
  log(
    `node ${process.version}, ${nproc} CPUs (${cpuModel})${MODE === 'full' ? '' : `, ${MODE.toUpperCase()}`}`,
  );
  const kinds = ['GET', 'POST'];
  const perKind = WARMUP + ROUNDS * PHASE_REQUESTS;
  if (perKind * kinds.length > MAX_SIGNED) {
    throw new Error(
      `would sign ${perKind * kinds.length} requests (max ${MAX_SIGNED}); lower BENCH_PHASE_REQUESTS or BENCH_ROUNDS`,
    );
  }
  const redis = redisWanted();
  const out = createResults('adapter');

  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'tp-bench-adapter-'));
  const { caller, files } = await writeWorld(tmpDir);

  log('starting upstream, bare proxy and adapter');
  const upstream = await forkServer('upstream.mjs', ['0'], cpuProfArgs('upstream'));
  const bare = await forkServer('bare-proxy.mjs', [String(upstream.port), '0'], cpuProfArgs('bare-proxy'));
  const adapter = await startAdapter({ upstreamPort: upstream.port, files });

  log('crypto ceiling');
  const ceiling = await cryptoCeiling(caller);
  log(
    `  Ed25519 verify: WebCrypto ${ceiling.webUs.toFixed(1)} µs, ${ceiling.nativeName} ` +
      `${ceiling.nativeUs.toFixed(1)} µs, node:crypto ${ceiling.nodeUs.toFixed(1)} µs`,
  );

  /** Sign a batch; returns its lists and a check that it was used up before its passports expire. */
  const signBatch = async (counts, tag) => {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    if (total > MAX_SIGNED) throw new Error(`would sign ${total} requests in one batch (max ${MAX_SIGNED})`);
    const tSign = performance.now();
    const signedAt = nowS();
    const batch = {};
    for (const [kind, count] of Object.entries(counts)) {
      batch[kind] = await presign(caller, kind, count, `${tag}-${kind.toLowerCase()}`);
    }
    log(`  signed ${fmt(total)} requests in ${fmt(performance.now() - tSign)} ms`);
    const checkAge = () => {
      if (nowS() - signedAt > MAX_BATCH_AGE_S) {
        throw new Error(`run too slow: the pre-signed passports (${tag}) were close to expiry`);
      }
    };
    return { batch, checkAge };
  };

  log('pre-signing requests');
  const closed = await signBatch({ GET: perKind, POST: perKind }, 'closed');
  const lists = closed.batch;

  const targets = {
    direct: { port: upstream.port, name: 'direct to upstream' },
    bare: { port: bare.port, name: 'bare node:http proxy' },
    adapter: { port: adapter.port, name: 'trustplane adapter', admin: adapter.admin },
  };
  const clientCpuUs = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const snapshot = async (t) => ({
    adapter: t.admin === undefined ? undefined : await adapterMetrics(t.admin),
    bareUs: await childCpuUs(bare.child),
    upstreamUs: await childCpuUs(upstream.child),
    clientUs: clientCpuUs(),
  });

  /** One timed phase, with the CPU each process spent during it. */
  const phase = async (target, kind, reqs, maxCount, budgetMs) => {
    const t = targets[target];
    const before = await snapshot(t);
    const m = await load(t.port, reqs, maxCount, budgetMs, `${t.name} ${kind}`);
    const after = await snapshot(t);
    const perReq = (a, b) => (a - b) / m.ops;
    if (t.admin !== undefined && after.adapter.allowed - before.adapter.allowed !== m.ops) {
      throw new Error(
        `bench aborted: ${t.name} counted ${after.adapter.allowed - before.adapter.allowed} allows for ${m.ops} responses`,
      );
    }
    return {
      ...m,
      proxyCpuUs:
        t.admin !== undefined
          ? perReq(after.adapter.cpuUs, before.adapter.cpuUs)
          : target === 'bare'
            ? perReq(after.bareUs, before.bareUs)
            : undefined,
      upstreamCpuUs: perReq(after.upstreamUs, before.upstreamUs),
      clientCpuUs: perReq(after.clientUs, before.clientUs),
      decideMeanUs:
        t.admin !== undefined
          ? ((after.adapter.decideSum - before.adapter.decideSum) /
              (after.adapter.decideCount - before.adapter.decideCount)) *
            1e6
          : undefined,
    };
  };
  const logPhase = (label, res) =>
    log(
      `  ${label} ${fmt(res.rps).padStart(6)} req/s ` +
        `p50 ${res.p50.toFixed(2)} ms p99 ${res.p99.toFixed(2)} ms` +
        (res.proxyCpuUs !== undefined ? `, proxy CPU ${res.proxyCpuUs.toFixed(0)} µs/req` : '') +
        ` (${fmt(res.ops)} in ${fmt(res.ms)} ms)`,
    );

  log('warm-up (untimed)');
  for (const kind of kinds) {
    const warm = lists[kind].slice(0, WARMUP);
    for (const target of ['direct', 'bare']) {
      await load(targets[target].port, warm, MAX_BASELINE_REQUESTS, WARMUP_MS, `warm-up ${target} ${kind}`);
    }
    await load(targets.adapter.port, warm, WARMUP, 30_000, `warm-up adapter ${kind}`);
  }

  const results = { GET: { direct: [], bare: [], adapter: [] }, POST: { direct: [], bare: [], adapter: [] } };
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of kinds) {
      const offset = WARMUP + r * PHASE_REQUESTS;
      const reqs = lists[kind].slice(offset, offset + PHASE_REQUESTS);
      const order = r % 2 === 0 ? ['direct', 'bare', 'adapter'] : ['adapter', 'bare', 'direct'];
      for (const target of order) {
        const maxCount = target === 'adapter' ? PHASE_REQUESTS : MAX_BASELINE_REQUESTS;
        const res = await phase(target, kind, reqs, maxCount, PHASE_MS);
        results[kind][target].push(res);
        logPhase(`round ${r + 1} ${kind.padEnd(4)} ${target.padEnd(7)}`, res);
      }
    }
  }
  closed.checkAge();

  // Correctness: a request the adapter already accepted must now be refused as a replay.
  log('replay check');
  {
    const agent = new Agent({ keepAlive: false });
    const replay = await send(agent, adapter.port, lists.GET[0]);
    agent.destroy();
    let reason;
    try {
      reason = JSON.parse(replay.text).reason;
    } catch {
      reason = undefined;
    }
    if (replay.status !== 401 || reason !== 'jti_replay' || replay.fromUpstream) {
      throw new Error(
        `bench aborted: a replayed request answered ${replay.status} ${replay.text.slice(0, 200)} (want 401 jti_replay)`,
      );
    }
    log('  replayed request: 401 jti_replay');
  }
  // The closed-loop report takes, per target and kind, the median round by throughput (the lower
  // one of two).
  const median = (list) => [...list].sort((a, b) => a.rps - b.rps)[Math.floor((list.length - 1) / 2)];

  // ---- open loop: GET at a fixed rate, bare proxy then adapter, the very same requests.
  const peakRps = median(results.GET.adapter).rps;
  const openRate = OPEN_RATE ?? Math.max(1, Math.round(peakRps / 2));
  const openCount = Math.max(50, Math.round((openRate * OPEN_MS) / 1000));
  log(
    `open loop: GET at ${fmt(openRate)} req/s for ${fmt(OPEN_MS)} ms (${fmt(openCount)} requests per target)`,
  );
  const openBatch = await signBatch({ GET: openCount + 2 * OPEN_WARM_CONNECTIONS }, 'open');
  const openReqs = openBatch.batch.GET.slice(2 * OPEN_WARM_CONNECTIONS);
  const open = {};
  for (const [i, target] of ['bare', 'adapter'].entries()) {
    const warm = openBatch.batch.GET.slice(i * OPEN_WARM_CONNECTIONS, (i + 1) * OPEN_WARM_CONNECTIONS);
    const t = targets[target];
    const before = t.admin === undefined ? undefined : await adapterMetrics(t.admin);
    open[target] = await openLoop(t.port, openReqs, warm, openRate, `open loop ${t.name}`);
    if (before !== undefined) {
      const allowed = (await adapterMetrics(t.admin)).allowed - before.allowed;
      if (allowed !== openCount + OPEN_WARM_CONNECTIONS) {
        throw new Error(
          `bench aborted: ${t.name} counted ${allowed} allows for ${openCount} open-loop responses`,
        );
      }
    }
    const o = open[target];
    log(
      `  ${target.padEnd(7)} p50 ${o.p50.toFixed(2)} ms p99 ${o.p99.toFixed(2)} ms p99.9 ${o.p999.toFixed(2)} ms ` +
        `max ${o.max.toFixed(2)} ms (achieved ${fmt(o.achievedRps)} req/s, send lag p99 ${o.lagP99.toFixed(2)} ms)`,
    );
  }
  openBatch.checkAge();

  // ---- all cores: Redis replay store at 1 and 2 workers against the memory-store adapter above.
  let cores;
  if (!redis.run) {
    log(`all cores: skipped (${redis.why}; BENCH_REDIS=1 requires the Redis phases)`);
  } else {
    log('all cores: starting redis-server and the Redis-store adapters (1 worker, --workers 2)');
    const redisDir = mkdtempSync(path.join(tmpDir, 'redis-'));
    const redisServer = await startRedis(redisDir);
    const redisArgs = (prefix) => [
      '--replay-store',
      'redis',
      '--redis-url',
      redisServer.url,
      '--redis-key-prefix',
      prefix,
    ];
    const redis1 = await startAdapter({
      upstreamPort: upstream.port,
      files,
      name: 'redis-1w',
      extraArgs: redisArgs('bench-1w:'),
    });
    const redis2 = await startAdapter({
      upstreamPort: upstream.port,
      files,
      name: 'redis-2w',
      extraArgs: [...redisArgs('bench-2w:'), '--workers', '2'],
    });
    targets.memory_1w = { port: adapter.port, name: 'adapter, memory store, 1 worker', admin: adapter.admin };
    targets.redis_1w = { port: redis1.port, name: 'adapter, Redis store, 1 worker', admin: redis1.admin };
    targets.redis_2w = { port: redis2.port, name: 'adapter, Redis store, 2 workers', admin: redis2.admin };
    const configs = ['memory_1w', 'redis_1w', 'redis_2w'];
    const perConfig = CORES_WARMUP + ROUNDS * PHASE_REQUESTS;
    const coresBatch = await signBatch({ GET: perConfig * configs.length }, 'cores');
    const slice = (c, from, n) => {
      const base = configs.indexOf(c) * perConfig;
      return coresBatch.batch.GET.slice(base + from, base + from + n);
    };
    for (const c of configs) {
      await load(targets[c].port, slice(c, 0, CORES_WARMUP), CORES_WARMUP, 30_000, `warm-up ${c}`);
    }
    cores = { memory_1w: [], redis_1w: [], redis_2w: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? configs : [...configs].reverse();
      for (const c of order) {
        const reqs = slice(c, CORES_WARMUP + r * PHASE_REQUESTS, PHASE_REQUESTS);
        const res = await phase(c, 'GET', reqs, PHASE_REQUESTS, PHASE_MS);
        cores[c].push(res);
        logPhase(`round ${r + 1} GET  ${c.padEnd(9)}`, res);
      }
    }
    coresBatch.checkAge();
    await Promise.all([redis1.stop(), redis2.stop()]);
    await redisServer.stop();
  }

  let ab;
  if (AB_DIST !== undefined) {
    log(`A/B: the adapter of ${AB_DIST} beside this build's`);
    const base = await startAdapter({
      upstreamPort: upstream.port,
      files,
      name: 'adapter-base',
      cli: path.join(AB_DIST, 'cmd/trustplane/main.js'),
    });
    targets.adapter_base = { port: base.port, name: 'adapter (base build)', admin: base.admin };
    const per = AB_WARMUP + AB_ROUNDS * PHASE_REQUESTS;
    const pair = ['adapter', 'adapter_base'];
    ab = {};
    for (const kind of kinds) {
      // One batch per kind, signed just before its rounds (passports stay fresh, batches bounded).
      const abBatch = await signBatch({ [kind]: 2 * per }, `ab-${kind.toLowerCase()}`);
      const list = abBatch.batch[kind];
      const slice = (c, from, n) =>
        list.slice(pair.indexOf(c) * per + from, pair.indexOf(c) * per + from + n);
      for (const c of pair) {
        await load(targets[c].port, slice(c, 0, AB_WARMUP), AB_WARMUP, 60_000, `warm-up ${c}`);
      }
      ab[kind] = { adapter: [], adapter_base: [] };
      for (let r = 0; r < AB_ROUNDS; r++) {
        for (const c of r % 2 === 0 ? pair : [...pair].reverse()) {
          const reqs = slice(c, AB_WARMUP + r * PHASE_REQUESTS, PHASE_REQUESTS);
          const res = await phase(c, kind, reqs, PHASE_REQUESTS, PHASE_MS);
          ab[kind][c].push(res);
          logPhase(`A/B round ${r + 1} ${kind.padEnd(4)} ${c.padEnd(12)}`, res);
        }
      }
      abBatch.checkAge();
    }
    await base.stop();
  }

  if (METRICS_FILE) writeFileSync(METRICS_FILE, (await fetchText(`${adapter.admin}/metrics`)).text);
  await adapter.stop();
  await Promise.all([stopForked(bare.child), stopForked(upstream.child)]);
  const totalS = (performance.now() - t0) / 1000;
  log(`done in ${totalS.toFixed(1)} s\n`);

  // ---- report
  const lines = [];
  lines.push(
    `node ${process.version}, ${nproc} CPUs (${cpuModel}), ${os.platform()} ${os.arch()}; ` +
      `${CONNECTIONS} connections, median of ${ROUNDS} rounds, ${(PHASE_MS / 1000).toFixed(1)} s per phase ` +
      `(adapter: ≤ ${fmt(PHASE_REQUESTS)} fresh requests); Ed25519 in the adapter: ${ceiling.nativeName}` +
      (MODE === 'full' ? '' : `; ${MODE.toUpperCase()} run, figures are not comparable with full runs`),
  );
  lines.push('');
  lines.push(
    '| Target | Request | req/s | p50 ms | p99 ms | req/s vs bare | proxy CPU µs/req | CPU vs bare | upstream CPU µs/req | client CPU µs/req |',
  );
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const kindName = { GET: 'GET, no body', POST: 'POST, 1 KiB JSON' };
  for (const kind of kinds) {
    const bareMedian = median(results[kind].bare);
    for (const target of ['direct', 'bare', 'adapter']) {
      const b = median(results[kind][target]);
      const ratio = target === 'direct' ? '' : `${(b.rps / bareMedian.rps).toFixed(2)}×`;
      const proxyCpu = b.proxyCpuUs === undefined ? '' : b.proxyCpuUs.toFixed(0);
      const cpuRatio =
        b.proxyCpuUs === undefined ? '' : `${(b.proxyCpuUs / bareMedian.proxyCpuUs).toFixed(2)}×`;
      lines.push(
        `| ${targets[target].name} | ${kindName[kind]} | ${fmt(b.rps)} | ${b.p50.toFixed(2)} | ` +
          `${b.p99.toFixed(2)} | ${ratio} | ${proxyCpu} | ${cpuRatio} | ${b.upstreamCpuUs.toFixed(0)} | ` +
          `${b.clientCpuUs.toFixed(0)} |`,
      );
    }
  }
  lines.push('');
  lines.push(
    `Ed25519 verify, same run: WebCrypto ${ceiling.webUs.toFixed(1)} µs ` +
      `(ceiling ${fmt(1e6 / (2 * ceiling.webUs))} req/s per core for 2 verifies), ` +
      `${ceiling.nativeName} ${ceiling.nativeUs.toFixed(1)} µs (ceiling ${fmt(1e6 / (2 * ceiling.nativeUs))} req/s per core), ` +
      `node:crypto ${ceiling.nodeUs.toFixed(1)} µs`,
  );
  for (const kind of kinds) {
    const a = median(results[kind].adapter);
    const b = median(results[kind].bare);
    const crypto2 = 2 * ceiling.nativeUs;
    const other = a.proxyCpuUs - b.proxyCpuUs - crypto2;
    const share = (x) => `${((x / a.proxyCpuUs) * 100).toFixed(0)} %`;
    lines.push(
      `adapter ${kind}: ${a.proxyCpuUs.toFixed(0)} µs CPU/request = 2 × ${ceiling.nativeUs.toFixed(1)} µs Ed25519 ` +
        `(${share(crypto2)}) + ${b.proxyCpuUs.toFixed(0)} µs bare proxying (${share(b.proxyCpuUs)}) + ` +
        `${other.toFixed(0)} µs other (${share(other)}); one core at that cost = ${fmt(1e6 / a.proxyCpuUs)} req/s, ` +
        `measured ${fmt(a.rps)}; mean handler start to decision (adapter histogram) ${a.decideMeanUs.toFixed(0)} µs; ` +
        `CPU / (bare + 2 verifies) ${(a.proxyCpuUs / (b.proxyCpuUs + crypto2)).toFixed(2)}×`,
    );
  }
  for (const kind of kinds) {
    const perRound = results[kind].adapter.map((a, i) => (a.rps / results[kind].bare[i].rps).toFixed(2));
    const cpuRound = results[kind].adapter.map((a, i) =>
      (a.proxyCpuUs / results[kind].bare[i].proxyCpuUs).toFixed(2),
    );
    lines.push(
      `adapter/bare per round, ${kind}: throughput ${perRound.join(', ')}; proxy CPU per request ${cpuRound.join(', ')}`,
    );
  }

  lines.push('');
  lines.push(
    `Open loop, GET at a fixed ${fmt(openRate)} req/s ` +
      `(${OPEN_RATE === undefined ? `half the adapter's closed-loop median ${fmt(peakRps)} req/s` : 'BENCH_OPEN_RATE'}), ` +
      `${fmt(openCount)} requests per target, latency from the scheduled send time:`,
  );
  lines.push('');
  lines.push('| Target | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms | generator send lag p99 ms |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const target of ['bare', 'adapter']) {
    const o = open[target];
    lines.push(
      `| ${targets[target].name} | ${fmt(o.achievedRps)} | ${o.p50.toFixed(2)} | ${o.p99.toFixed(2)} | ` +
        `${o.p999.toFixed(2)} | ${o.max.toFixed(2)} | ${o.lagP99.toFixed(2)} |`,
    );
  }
  lines.push('');
  lines.push(
    `p99 added by the adapter over the bare proxy: ${(open.adapter.p99 - open.bare.p99).toFixed(2)} ms ` +
      `(p99.9 added ${(open.adapter.p999 - open.bare.p999).toFixed(2)} ms)`,
  );

  lines.push('');
  if (cores === undefined) {
    lines.push(`All cores: skipped (${redis.why}).`);
  } else {
    const m = Object.fromEntries(Object.entries(cores).map(([c, list]) => [c, median(list)]));
    lines.push(`All cores, GET, closed loop (${CONNECTIONS} connections, median of ${ROUNDS} rounds):`);
    lines.push('');
    lines.push('| Adapter | req/s | p50 ms | p99 ms | adapter CPU µs/req (all workers) |');
    lines.push('| --- | ---: | ---: | ---: | ---: |');
    for (const c of Object.keys(cores)) {
      lines.push(
        `| ${targets[c].name} | ${fmt(m[c].rps)} | ${m[c].p50.toFixed(2)} | ${m[c].p99.toFixed(2)} | ` +
          `${m[c].proxyCpuUs.toFixed(0)} |`,
      );
    }
    lines.push('');
    lines.push(
      `Redis store / memory store, 1 worker: ${(m.redis_1w.rps / m.memory_1w.rps).toFixed(2)}×; ` +
        `Redis store, --workers 2 / 1 worker: ${(m.redis_2w.rps / m.redis_1w.rps).toFixed(2)}× ` +
        `(${nproc} CPUs, shared with the client, the upstream and redis-server)`,
    );
  }
  lines.push(`total run time ${totalS.toFixed(1)} s`);
  console.log(lines.join('\n'));

  // ---- results as data (bench/results.mjs)
  const lower = { better: 'lower' };
  const higher = { better: 'higher' };
  const ratioKind = (better) => ({ unit: '×', better, kind: 'ratio' });
  for (const [key, us, name] of [
    ['webcrypto', ceiling.webUs, 'WebCrypto'],
    ['native', ceiling.nativeUs, `the adapter's native Ed25519 (${ceiling.nativeName})`],
    ['node_crypto', ceiling.nodeUs, 'node:crypto'],
  ]) {
    out.add(`adapter.ed25519_verify_us.${key}`, us, {
      unit: 'µs',
      ...lower,
      description: `one Ed25519 verify, ${name}, in the bench process`,
    });
  }
  for (const kind of kinds) {
    const k = kind.toLowerCase();
    const a = median(results[kind].adapter);
    const b = median(results[kind].bare);
    const d = median(results[kind].direct);
    const what = `${kindName[kind]}, closed loop, median round`;
    out.add(`adapter.${k}.rps`, a.rps, { unit: 'req/s', ...higher, description: `adapter, ${what}` });
    out.add(`adapter.${k}.p50_ms`, a.p50, { unit: 'ms', ...lower, description: `adapter, ${what}` });
    out.add(`adapter.${k}.p99_ms`, a.p99, { unit: 'ms', ...lower, description: `adapter, ${what}` });
    out.add(`adapter.${k}.cpu_us_per_req`, a.proxyCpuUs, {
      unit: 'µs',
      ...lower,
      description: `adapter process CPU per request, ${what}`,
    });
    out.add(`adapter.${k}.decide_mean_us`, a.decideMeanUs, {
      unit: 'µs',
      ...lower,
      description: `adapter histogram: mean handler start to decision, ${what}`,
    });
    out.add(`adapter.${k}.throughput_vs_bare`, a.rps / b.rps, {
      ...ratioKind('higher'),
      description: `adapter req/s / bare proxy req/s, ${what}`,
    });
    out.add(`adapter.${k}.cpu_vs_bare`, a.proxyCpuUs / b.proxyCpuUs, {
      ...ratioKind('lower'),
      description: `adapter CPU per request / bare proxy CPU per request, ${what}`,
    });
    out.add(`adapter.${k}.cpu_vs_floor`, a.proxyCpuUs / (b.proxyCpuUs + 2 * ceiling.nativeUs), {
      ...ratioKind('lower'),
      description: `adapter CPU per request / (bare proxy CPU per request + 2 native Ed25519 verifies), ${what}`,
    });
    out.add(`adapter.bare.${k}.rps`, b.rps, { unit: 'req/s', ...higher, description: `bare proxy, ${what}` });
    out.add(`adapter.bare.${k}.cpu_us_per_req`, b.proxyCpuUs, {
      unit: 'µs',
      ...lower,
      description: `bare proxy process CPU per request, ${what}`,
    });
    out.add(`adapter.direct.${k}.rps`, d.rps, {
      unit: 'req/s',
      ...higher,
      description: `direct to upstream, ${what}`,
    });
  }
  out.add('adapter.open.rate_rps', openRate, {
    unit: 'req/s',
    ...higher,
    description:
      'open loop: the fixed request rate (half the adapter GET closed-loop median unless BENCH_OPEN_RATE)',
  });
  for (const target of ['bare', 'adapter']) {
    const o = open[target];
    for (const [key, v, p] of [
      ['p50_ms', o.p50, 'p50'],
      ['p99_ms', o.p99, 'p99'],
      ['p999_ms', o.p999, 'p99.9'],
    ]) {
      out.add(`adapter.open.${target}.${key}`, v, {
        unit: 'ms',
        ...lower,
        description: `open loop, GET: ${targets[target].name} latency ${p} from the scheduled send time`,
      });
    }
  }
  out.add('adapter.open.p99_added_ms', open.adapter.p99 - open.bare.p99, {
    unit: 'ms',
    ...lower,
    kind: 'difference',
    description: 'open loop, GET: adapter p99 − bare proxy p99 at the same rate',
  });
  out.add('adapter.open.p999_added_ms', open.adapter.p999 - open.bare.p999, {
    unit: 'ms',
    ...lower,
    kind: 'difference',
    description: 'open loop, GET: adapter p99.9 − bare proxy p99.9 at the same rate',
  });
  if (cores !== undefined) {
    const m = Object.fromEntries(Object.entries(cores).map(([c, list]) => [c, median(list)]));
    for (const c of Object.keys(cores)) {
      out.add(`adapter.cores.${c}.rps`, m[c].rps, {
        unit: 'req/s',
        ...higher,
        description: `${targets[c].name}, GET, closed loop, median round`,
      });
      out.add(`adapter.cores.${c}.cpu_us_per_req`, m[c].proxyCpuUs, {
        unit: 'µs',
        ...lower,
        description: `${targets[c].name}, GET: adapter CPU per request (all workers, from its /metrics)`,
      });
    }
    out.add('adapter.cores.redis_vs_memory', m.redis_1w.rps / m.memory_1w.rps, {
      ...ratioKind('higher'),
      description: 'GET req/s, 1 worker: Redis replay store / memory replay store',
    });
    out.add('adapter.cores.workers_2_vs_1', m.redis_2w.rps / m.redis_1w.rps, {
      ...ratioKind('higher'),
      description: 'GET req/s, Redis replay store: --workers 2 / 1 worker',
    });
  }
  if (ab !== undefined) {
    const medianCpu = (list) =>
      [...list].map((x) => x.proxyCpuUs).sort((a, b) => a - b)[Math.floor((list.length - 1) / 2)];
    console.log(`\nA/B against ${AB_DIST} (median of ${AB_ROUNDS} alternating rounds, CPU µs per request):`);
    for (const kind of kinds) {
      const now = medianCpu(ab[kind].adapter);
      const was = medianCpu(ab[kind].adapter_base);
      console.log(
        `  ${kind}: this build ${now.toFixed(0)}, base ${was.toFixed(0)}, this/base ${(now / was).toFixed(3)}`,
      );
      out.add(`adapter.ab.${kind.toLowerCase()}.cpu_vs_base`, now / was, {
        ...ratioKind('lower'),
        description: `${kind}: adapter CPU per request, this build / the BENCH_AB_DIST build, same run`,
      });
    }
  }
  out.add('adapter.total_s', totalS, { unit: 's', ...lower, description: 'wall time of the whole run' });
  out.write();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
  killAll();
  process.exit(1);
});
