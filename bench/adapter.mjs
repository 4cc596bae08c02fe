// HTTP benchmark of the reverse-proxy adapter against a bare Node reverse proxy, side by side in one
// run, with the Ed25519 crypto ceiling measured in the same run.
//
// Run: npm run bench:adapter   (builds, then `node bench/adapter.mjs`; uses the compiled dist/)
//      BENCH_QUICK=1 node bench/adapter.mjs   (smoke run, about 10 s, after a build)
// A full run takes about 45 s.
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
// Knobs (environment): BENCH_QUICK=1, BENCH_CONNECTIONS (16), BENCH_ROUNDS (3),
// BENCH_PHASE_REQUESTS (per adapter phase), BENCH_PHASE_MS (time cap per phase),
// BENCH_CPU_PROF=<dir> (run the adapter, bare proxy and upstream with --cpu-prof; the profiles
// adapter.cpuprofile, bare-proxy.cpuprofile and upstream.cpuprofile are written to <dir> at exit;
// profiling slows the processes, so do not compare those figures with unprofiled runs),
// BENCH_ADAPTER_METRICS=<file> (the adapter's /metrics text at the end of the run).

import console from 'node:console';
import { Buffer } from 'node:buffer';
import { fork, spawn } from 'node:child_process';
import { verify as nodeVerify, createPublicKey, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, get as httpGet, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { issuePassport } from '../dist/pkg/authcore/index.js';
import { loadNativeEd25519 } from '../dist/pkg/adapter/index.js';
import { signRequest } from '../dist/pkg/proof/index.js';
import { ISSUER, ORIGIN, TRUST_DOMAIN, buildBenchWorld } from './world.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const CLI = path.join(ROOT, 'dist/cmd/trustplane/main.js');

const QUICK = process.env.BENCH_QUICK === '1';
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
const ROUNDS = intEnv('BENCH_ROUNDS', QUICK ? 2 : 3);
/** Fresh signed requests per timed adapter phase (its count bound). */
const PHASE_REQUESTS = intEnv('BENCH_PHASE_REQUESTS', QUICK ? 600 : 3000);
/** Time cap per timed phase, ms; direct and bare phases run this long, cycling the same requests. */
const PHASE_MS = intEnv('BENCH_PHASE_MS', QUICK ? 600 : 1500);
/** Count bound of a direct or bare phase (far above what PHASE_MS allows here). */
const MAX_BASELINE_REQUESTS = 200_000;
/** Untimed warm-up: fresh signed requests per kind for the adapter, and ms per baseline target. */
const WARMUP = QUICK ? 300 : 2500;
const WARMUP_MS = QUICK ? 300 : 1000;
/** Time budget per crypto ceiling measurement, ms. */
const CEILING_MS = QUICK ? 300 : 1000;
/** Passports live 300 s: never sign more than this many up front (about 7,000/s here, so < 4 s). */
const MAX_SIGNED = 24_000;
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF;
const METRICS_FILE = process.env.BENCH_ADAPTER_METRICS;

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const log = (s) => process.stderr.write(`${s}\n`);
const nowS = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------------------------
// Child processes: tracked, and killed on every exit path.

const children = new Set();
let tmpDir;
function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}
process.on('exit', () => {
  killAll();
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

/** Node flags that write a V8 CPU profile `<dir>/<name>.cpuprofile` at exit (BENCH_CPU_PROF only). */
function cpuProfArgs(name) {
  if (!CPU_PROF_DIR) return [];
  return ['--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROF_DIR)}`, `--cpu-prof-name=${name}.cpuprofile`];
}

/** Fork a bench helper; resolves when it reports its port over IPC. */
async function forkServer(script, args) {
  const child = track(
    fork(path.join(HERE, script), args, {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: cpuProfArgs(script.replace(/\.mjs$/, '')),
    }),
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
async function stopForked(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.disconnect();
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
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

function freePort() {
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
function fetchText(url, timeoutMs = 5_000) {
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

async function startAdapterProcess({ upstreamPort, files }) {
  const [port, adminPort] = [await freePort(), await freePort()];
  const args = [
    ...cpuProfArgs('adapter'),
    CLI,
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
    path.join(files.dir, 'ledger.jsonl'),
    '--log-level',
    'error',
    '--replay-journal',
    path.join(files.dir, 'replay.journal'),
    '--listen',
    `127.0.0.1:${port}`,
    '--admin-listen',
    `127.0.0.1:${adminPort}`,
  ];
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT }));
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c.toString()).slice(-20_000)));
  const admin = `http://127.0.0.1:${adminPort}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`adapter exited (${child.exitCode ?? child.signalCode}) before ready:\n${stderr}`);
    try {
      if ((await fetchText(`${admin}/readyz`, 1_000)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`adapter not ready within 15 s:\n${stderr}`);
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
  const pct = (p) => sorted[Math.min(done - 1, Math.floor((p / 100) * done))];
  return { ops: done, ms, rps: (done / ms) * 1000, p50: pct(50), p99: pct(99) };
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
  log(`node ${process.version}, ${nproc} CPUs (${cpuModel})${QUICK ? ', QUICK' : ''}`);
  const kinds = ['GET', 'POST'];
  const perKind = WARMUP + ROUNDS * PHASE_REQUESTS;
  if (perKind * kinds.length > MAX_SIGNED) {
    throw new Error(
      `would sign ${perKind * kinds.length} requests (max ${MAX_SIGNED}); lower BENCH_PHASE_REQUESTS or BENCH_ROUNDS`,
    );
  }

  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'tp-bench-adapter-'));
  const { caller, files } = await writeWorld(tmpDir);

  log('starting upstream, bare proxy and adapter');
  const upstream = await forkServer('upstream.mjs', ['0']);
  const bare = await forkServer('bare-proxy.mjs', [String(upstream.port), '0']);
  const adapter = await startAdapterProcess({ upstreamPort: upstream.port, files });

  log('crypto ceiling');
  const ceiling = await cryptoCeiling(caller);
  log(
    `  Ed25519 verify: WebCrypto ${ceiling.webUs.toFixed(1)} µs, ${ceiling.nativeName} ` +
      `${ceiling.nativeUs.toFixed(1)} µs, node:crypto ${ceiling.nodeUs.toFixed(1)} µs`,
  );

  log('pre-signing requests');
  const tSign = performance.now();
  const signedAt = nowS();
  const lists = {};
  for (const kind of kinds) lists[kind] = await presign(caller, kind, perKind, kind.toLowerCase());
  log(`  signed ${fmt(perKind * kinds.length)} requests in ${fmt(performance.now() - tSign)} ms`);

  const targets = {
    direct: { port: upstream.port, name: 'direct to upstream' },
    bare: { port: bare.port, name: 'bare node:http proxy' },
    adapter: { port: adapter.port, name: 'trustplane adapter' },
  };
  const clientCpuUs = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const snapshot = async () => ({
    adapter: await adapterMetrics(adapter.admin),
    bareUs: await childCpuUs(bare.child),
    upstreamUs: await childCpuUs(upstream.child),
    clientUs: clientCpuUs(),
  });

  /** One timed phase, with the CPU each process spent during it. */
  const phase = async (target, kind, reqs, maxCount, budgetMs) => {
    const before = await snapshot();
    const m = await load(targets[target].port, reqs, maxCount, budgetMs, `${targets[target].name} ${kind}`);
    const after = await snapshot();
    const perReq = (a, b) => (a - b) / m.ops;
    if (target === 'adapter' && after.adapter.allowed - before.adapter.allowed !== m.ops) {
      throw new Error(
        `bench aborted: adapter counted ${after.adapter.allowed - before.adapter.allowed} allows for ${m.ops} responses`,
      );
    }
    return {
      ...m,
      proxyCpuUs:
        target === 'adapter'
          ? perReq(after.adapter.cpuUs, before.adapter.cpuUs)
          : target === 'bare'
            ? perReq(after.bareUs, before.bareUs)
            : undefined,
      upstreamCpuUs: perReq(after.upstreamUs, before.upstreamUs),
      clientCpuUs: perReq(after.clientUs, before.clientUs),
      decideMeanUs:
        target === 'adapter'
          ? ((after.adapter.decideSum - before.adapter.decideSum) /
              (after.adapter.decideCount - before.adapter.decideCount)) *
            1e6
          : undefined,
    };
  };

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
        log(
          `  round ${r + 1} ${kind.padEnd(4)} ${target.padEnd(7)} ${fmt(res.rps).padStart(6)} req/s ` +
            `p50 ${res.p50.toFixed(2)} ms p99 ${res.p99.toFixed(2)} ms` +
            (res.proxyCpuUs !== undefined ? `, proxy CPU ${res.proxyCpuUs.toFixed(0)} µs/req` : '') +
            ` (${fmt(res.ops)} in ${fmt(res.ms)} ms)`,
        );
      }
    }
  }
  if (nowS() - signedAt > 240) throw new Error('run too slow: the pre-signed passports were close to expiry');

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

  if (METRICS_FILE) writeFileSync(METRICS_FILE, (await fetchText(`${adapter.admin}/metrics`)).text);
  await adapter.stop();
  await Promise.all([stopForked(bare.child), stopForked(upstream.child)]);
  const totalS = (performance.now() - t0) / 1000;
  log(`done in ${totalS.toFixed(1)} s\n`);

  // ---- report: per target and kind, the median round by throughput (the lower one of two).
  const median = (list) => [...list].sort((a, b) => a.rps - b.rps)[Math.floor((list.length - 1) / 2)];
  const lines = [];
  lines.push(
    `node ${process.version}, ${nproc} CPUs (${cpuModel}), ${os.platform()} ${os.arch()}; ` +
      `${CONNECTIONS} connections, median of ${ROUNDS} rounds, ${(PHASE_MS / 1000).toFixed(1)} s per phase ` +
      `(adapter: ≤ ${fmt(PHASE_REQUESTS)} fresh requests); Ed25519 in the adapter: ${ceiling.nativeName}`,
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
        `measured ${fmt(a.rps)}; mean handler start to decision (adapter histogram) ${a.decideMeanUs.toFixed(0)} µs`,
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
  lines.push(`total run time ${totalS.toFixed(1)} s`);
  console.log(lines.join('\n'));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
  killAll();
  process.exit(1);
});
