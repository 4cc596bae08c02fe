// Memory benchmarks of issue 13: the replay store's bytes per live entry and consume cost, the
// reload of a 1,000-route policy bundle (time and event-loop stall), and the adapter's RSS over a
// run at peak load.
//
// Run: npm run build && node --expose-gc bench/memory.mjs   (bench/main.mjs --only memory does this)
//      BENCH_QUICK=1 / BENCH_SMOKE=1 as for the other benches; --json <file> or BENCH_JSON_OUT=<file>;
//      BENCH_MEMORY_PHASES=reload (a comma list of replay, reload, rss) runs only those phases.
//
// Phases (each in this process unless said otherwise):
//   replay store  MemoryReplayStore filled to N live entries (full and quick: 1,000,000; smoke:
//                 10,000) with realistic keys: 64-hex SHA-256 of `iss\njti`, scopes SHA-256 of
//                 `iss\nsub` over 1,000 subjects, every key and scope a fresh string as in the
//                 verifier, expiries now+300..now+660. Bytes per entry = (heapUsed + arrayBuffers)
//                 after − before, both after global.gc(), ÷ N. consumeSync timed per call (the
//                 hashing is outside the timed calls); the slowest single call is reported too
//                 (growth rehashes). Then replays of live keys, and one full sweep with half expired.
//   reload        a signed policy bundle of R routes (full/quick 1,000; smoke 100) loaded by
//                 BundleManager.reload() from a file, while a 1 ms timer ticks: reload wall time
//                 (median of the rounds) and the longest event-loop delay during any reload
//                 (perf_hooks.monitorEventLoopDelay, resolution 1 ms).
//   adapter RSS   `trustplane adapter` (built CLI, memory replay store with its journal, audit
//                 ledger file) at closed-loop peak (16 connections, each request freshly signed by
//                 this process), RSS read from its admin /metrics
//                 (trustplane_process_resident_memory_bytes) every second for 60 s (quick 10 s,
//                 smoke 2 s); first, last, max and the least-squares slope after warm-up.

import console from 'node:console';
import { createHash, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import process from 'node:process';
import { clearInterval, setInterval } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';

import { MemoryReplayStore, issuePassport } from '../dist/pkg/authcore/index.js';
import { signDocument } from '../dist/pkg/bundle/index.js';
import { signRequest } from '../dist/pkg/proof/index.js';
import { BundleManager, parseConfiguredKeys } from '../dist/pkg/runtime/index.js';
import { fetchText, forkServer, killAll, startAdapterProcess } from './processes.mjs';
import { benchMode, createResults } from './results.mjs';
import { BUNDLE_SIGNER, ISSUER, ORIGIN, SOFTWARE_SOURCE, TRUST_DOMAIN, buildBenchWorld } from './world.mjs';

const MODE = benchMode();
const pick = (full, quick, smoke) => (MODE === 'smoke' ? smoke : MODE === 'quick' ? quick : full);
const STORE_ENTRIES = pick(1_000_000, 1_000_000, 10_000);
const SUBJECTS = 1_000;
const ROUTES = pick(1_000, 1_000, 100);
const RELOAD_ROUNDS = pick(10, 5, 3);
const RSS_SECONDS = pick(60, 10, 2);
const RSS_WARMUP_SECONDS = pick(10, 2, 0);
const CONNECTIONS = 16;
const READY_TIMEOUT_MS = 30_000;
/** BENCH_MEMORY_PHASES=replay,reload,rss (default all): run only some phases. */
const PHASES = new Set((process.env.BENCH_MEMORY_PHASES ?? 'replay,reload,rss').split(','));

const results = createResults('memory');
const nowS = () => Math.floor(Date.now() / 1000);
const mib = (bytes) => bytes / (1024 * 1024);
const log = (msg) => process.stderr.write(`${msg}\n`);

if (typeof globalThis.gc !== 'function') {
  console.error('bench/memory.mjs needs --expose-gc (node --expose-gc bench/memory.mjs)');
  process.exit(2);
}
const gc = globalThis.gc;

function heapBytes() {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const sha256Hex = (s) => createHash('sha256').update(s).digest('hex');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

// ---------------------------------------------------------------------------------------------
// Replay store

function benchReplayStore() {
  const n = STORE_ENTRIES;
  const now = 1_767_225_600;
  const subjects = Array.from({ length: SUBJECTS }, (_, i) => `service:client-${i}`);
  const before = heapBytes();
  const store = new MemoryReplayStore({ maxEntries: n });
  const CHUNK = 10_000;
  const keys = new Array(CHUNK);
  const scopes = new Array(CHUNK);
  const exps = new Float64Array(CHUNK);
  let consumeMs = 0;
  let slowestMs = 0;
  const runTag = webcrypto.randomUUID();
  for (let done = 0; done < n; done += CHUNK) {
    const m = Math.min(CHUNK, n - done);
    // Fresh strings per entry, as the verifier makes them: only the store keeps them alive.
    for (let i = 0; i < m; i++) {
      const j = done + i;
      keys[i] = sha256Hex(`${ISSUER}\njti-${runTag}-${j}`);
      scopes[i] = sha256Hex(`${ISSUER}\n${subjects[j % SUBJECTS]}`);
      exps[i] = now + 300 + (j % 361);
    }
    for (let i = 0; i < m; i++) {
      const t = performance.now();
      const ok = store.consumeSync(keys[i], exps[i], now, scopes[i]);
      const dt = performance.now() - t;
      consumeMs += dt;
      if (dt > slowestMs) slowestMs = dt;
      if (!ok) throw new Error(`fresh key ${done + i} refused`);
    }
    keys.fill(undefined);
    scopes.fill(undefined);
  }
  if (store.size !== n) throw new Error(`store holds ${store.size}, expected ${n}`);
  const after = heapBytes();
  const perEntry = (after - before) / n;

  // Replays of live keys (answer false): the lookup path alone.
  const replays = Math.min(n, 200_000);
  const replayKeys = Array.from({ length: replays }, (_, j) => sha256Hex(`${ISSUER}\njti-${runTag}-${j}`));
  const t0 = performance.now();
  for (let i = 0; i < replays; i++) {
    if (store.consumeSync(replayKeys[i], now + 300 + (i % 361), now + 1)) throw new Error('replay accepted');
  }
  const replayUs = ((performance.now() - t0) * 1000) / replays;

  // One full sweep at a time when about half the entries are past expiry + grace.
  const sweepAt = now + 480 + store.sweepGraceSeconds;
  const t1 = performance.now();
  store.sweep(sweepAt);
  const sweepMs = performance.now() - t1;
  const left = store.size;
  if (!(left > n * 0.4 && left < n * 0.6)) throw new Error(`sweep left ${left} of ${n}`);

  const consumeUs = (consumeMs * 1000) / n;
  console.log(`\n## Replay store (MemoryReplayStore, ${n.toLocaleString('en-US')} live entries)\n`);
  console.log('| measurement | value |');
  console.log('|---|---|');
  console.log(`| bytes per live entry (heapUsed + arrayBuffers after gc) | ${perEntry.toFixed(1)} B |`);
  console.log(`| store total | ${mib(after - before).toFixed(1)} MiB |`);
  console.log(`| consumeSync of a fresh key, mean | ${consumeUs.toFixed(3)} µs |`);
  console.log(`| slowest single consumeSync (growth) | ${slowestMs.toFixed(2)} ms |`);
  console.log(`| consumeSync of a live key (replay), mean | ${replayUs.toFixed(3)} µs |`);
  console.log(
    `| full sweep, ${(n - left).toLocaleString('en-US')} of ${n.toLocaleString('en-US')} expired | ${sweepMs.toFixed(1)} ms |`,
  );
  results.add('memory.replay_store.bytes_per_entry', perEntry, {
    unit: 'B',
    better: 'lower',
    description: `MemoryReplayStore bytes per live entry at ${n} entries (64-hex keys, ${SUBJECTS} scopes; heapUsed + arrayBuffers after gc)`,
  });
  results.add('memory.replay_store.consume_us', consumeUs, {
    unit: 'µs',
    better: 'lower',
    description: `consumeSync of a fresh key, mean over the fill to ${n} entries (growth included)`,
  });
  results.add('memory.replay_store.max_consume_ms', Math.max(slowestMs, 0.001), {
    unit: 'ms',
    better: 'lower',
    description: `slowest single consumeSync during the fill to ${n} entries (a growth rehash)`,
  });
  results.add('memory.replay_store.replay_us', replayUs, {
    unit: 'µs',
    better: 'lower',
    description: `consumeSync of a live key (answers false), mean over ${replays} keys`,
  });
  results.add('memory.replay_store.sweep_ms', Math.max(sweepMs, 0.001), {
    unit: 'ms',
    better: 'lower',
    description: `one full sweep of ${n} entries, about half expired`,
  });
  return perEntry;
}

// ---------------------------------------------------------------------------------------------
// Reload of an R-route policy bundle

async function policyOf(bundleSigner, issuedAt, routes, tag) {
  const per = 50;
  const groups = [];
  for (let g = 0; g * per < routes; g++) {
    const list = [];
    for (let i = g * per; i < Math.min(routes, (g + 1) * per); i++) {
      const method = ['GET', 'POST', 'PUT', 'DELETE'][i % 4];
      list.push({
        route_id: `r${tag}.${i}`,
        method,
        path_template: i % 3 === 0 ? `/v1/svc${g}/items${i}/{item_id}` : `/v1/svc${g}/items${i}`,
        allowed_sources: [SOFTWARE_SOURCE],
      });
    }
    groups.push({ route_group_id: `group-${g}`, api_id: 'orders-api', routes: list });
  }
  return signDocument(
    {
      version: 'trustplane-bundle-v1',
      kind: 'policy_runtime_bundle',
      trust_domain: TRUST_DOMAIN,
      issued_at: issuedAt,
      apis: [{ api_id: 'orders-api', audience: 'orders-api', base_url: ORIGIN }],
      route_groups: groups,
      default_required_key_binding: 'software',
      default_freshness_class: 'bounded',
      default_max_staleness_seconds: 300,
      revocations: [],
    },
    bundleSigner,
    BUNDLE_SIGNER,
  );
}

async function benchReload(dir) {
  const issued = nowS() - 600;
  const { bundleSigner, trustDoc, policyDoc } = await buildBenchWorld(issued);
  const trustPath = path.join(dir, 'trust.json');
  const policyPath = path.join(dir, 'policy.json');
  writeFileSync(trustPath, JSON.stringify(trustDoc));
  writeFileSync(policyPath, JSON.stringify(policyDoc));
  const keys = await parseConfiguredKeys([bundleSigner.publicKey.x]);
  const silent = { debug() {}, info() {}, warn() {}, error() {}, enabled: () => false };
  const manager = await BundleManager.open(
    {
      trustMaterialPath: trustPath,
      policyBundlePath: policyPath,
      trustMaterialKeys: keys,
      policyBundleKeys: keys,
      devAllowUnsigned: false,
    },
    { log: silent },
  );
  // Signed before timing; each round a newer issued_at, so no rollback refusal.
  const docs = [];
  for (let r = 0; r < RELOAD_ROUNDS + 1; r++)
    docs.push(JSON.stringify(await policyOf(bundleSigner, issued + 1 + r, ROUTES, r)));
  const bytes = docs[0].length;
  const times = [];
  let maxStallMs = 0;
  let maxGapMs = 0;
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  try {
    for (let r = 0; r < docs.length; r++) {
      writeFileSync(policyPath, docs[r]);
      await sleep(20);
      histogram.reset();
      let last = performance.now();
      let gap = 0;
      const ticker = setInterval(() => {
        const t = performance.now();
        gap = Math.max(gap, t - last);
        last = t;
      }, 1);
      await sleep(5);
      const t0 = performance.now();
      const outcome = await manager.reload('bench');
      const ms = performance.now() - t0;
      await sleep(5);
      clearInterval(ticker);
      if (outcome.policy !== 'reloaded') throw new Error(`reload round ${r}: ${JSON.stringify(outcome)}`);
      if (manager.current.policy.routesById.size !== ROUTES) {
        throw new Error(`reload round ${r}: ${manager.current.policy.routesById.size} routes in force`);
      }
      // Round 0 warms up the code paths; the figures are from the others.
      if (r === 0) continue;
      times.push(ms);
      maxStallMs = Math.max(maxStallMs, histogram.max / 1e6);
      maxGapMs = Math.max(maxGapMs, gap);
    }
  } finally {
    histogram.disable();
    await manager.close();
  }
  const med = median(times);
  console.log(`\n## Reload of a ${ROUTES}-route policy bundle (${(bytes / 1024).toFixed(0)} KiB, signed)\n`);
  console.log('| measurement | value |');
  console.log('|---|---|');
  console.log(`| BundleManager.reload(), median of ${times.length} | ${med.toFixed(1)} ms |`);
  console.log(`| slowest reload | ${Math.max(...times).toFixed(1)} ms |`);
  console.log(
    `| longest event-loop delay during a reload (monitorEventLoopDelay max) | ${maxStallMs.toFixed(1)} ms |`,
  );
  console.log(`| longest gap between 1 ms timer ticks | ${maxGapMs.toFixed(1)} ms |`);
  const id = ROUTES === 1000 ? '1000_routes' : `${ROUTES}_routes`;
  results.add(`memory.reload_${id}_ms`, med, {
    unit: 'ms',
    better: 'lower',
    description: `BundleManager.reload() of a signed ${ROUTES}-route policy bundle from a file, median of ${times.length}`,
  });
  results.add('memory.reload_max_stall_ms', Math.max(maxStallMs, 0.001), {
    unit: 'ms',
    better: 'lower',
    description: `longest event-loop delay (monitorEventLoopDelay, 1 ms resolution) during any reload of ${ROUTES} routes`,
  });
  results.add('memory.reload_max_tick_gap_ms', Math.max(maxGapMs, 0.001), {
    unit: 'ms',
    better: 'lower',
    description: `longest gap between ticks of a 1 ms interval timer during any reload of ${ROUTES} routes`,
  });
}

// ---------------------------------------------------------------------------------------------
// Adapter RSS at peak

async function adapterRss(admin) {
  const { status, text } = await fetchText(`${admin}/metrics`);
  if (status !== 200) throw new Error(`adapter /metrics answered ${status}`);
  const m = /^trustplane_process_resident_memory_bytes (\S+)$/m.exec(text);
  const allowed = [
    ...text.matchAll(/^trustplane_decisions_total\{[^}]*outcome="allow"[^}]*\} (\S+)$/gm),
  ].reduce((s, x) => s + Number(x[1]), 0);
  if (m === null) throw new Error('adapter /metrics has no trustplane_process_resident_memory_bytes');
  return { rss: Number(m[1]), allowed };
}

const GET_TARGET = '/v1/orders/search?status=open&limit=50';

async function signedGet(caller, i) {
  const iat = nowS();
  const passport = await issuePassport(
    {
      iss: ISSUER,
      sub: 'service:orders-client',
      aud: 'orders-api',
      iat,
      exp: iat + 300,
      jti: `jti-rss-${i}-${webcrypto.randomUUID()}`,
      trust_domain: TRUST_DOMAIN,
      cnf: { kid: 'request-key', key_binding: 'software', public_key_b64url: caller.publicKey.x },
    },
    caller,
    { kid: 'caller-1' },
  );
  const signed = await signRequest({
    method: 'GET',
    url: `${ORIGIN}${GET_TARGET}`,
    routeId: 'orders.search',
    passport,
    requestKey: caller,
  });
  return { method: 'GET', path: GET_TARGET, headers: { host: 'orders.example', ...signed.headers } };
}

function send(agent, port, r) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: r.method, path: r.path, headers: r.headers, agent },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out after 15 s')));
    req.on('error', reject);
    req.end();
  });
}

async function benchAdapterRss(dir) {
  const { caller, bundleSigner, trustDoc, policyDoc } = await buildBenchWorld(nowS() - 60);
  const files = {
    trustMaterial: path.join(dir, 'rss-trust.json'),
    policyBundle: path.join(dir, 'rss-policy.json'),
    signerKey: bundleSigner.publicKey.x,
  };
  writeFileSync(files.trustMaterial, JSON.stringify(trustDoc));
  writeFileSync(files.policyBundle, JSON.stringify(policyDoc));
  const upstream = await forkServer('upstream.mjs');
  const adapter = await startAdapterProcess({
    upstreamPort: upstream.port,
    files: { ...files, dir },
    name: 'rss',
    readyTimeoutMs: READY_TIMEOUT_MS,
  });
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const samples = [];
  let seq = 0;
  let failure;
  let stop = false;
  try {
    const first = await adapterRss(adapter.admin);
    const t0 = performance.now();
    samples.push({ t: 0, rss: first.rss });
    // Each connection signs its next request while the others wait on the adapter: the signing
    // cost is this process's, on the other core.
    const worker = async () => {
      while (!stop && failure === undefined) {
        const r = await signedGet(caller, seq++);
        const status = await send(agent, adapter.port, r);
        if (status !== 200) failure = new Error(`adapter answered ${status}`);
      }
    };
    const workers = Array.from({ length: CONNECTIONS }, worker);
    const end = t0 + RSS_SECONDS * 1000;
    let nextSample = t0 + 1000;
    while (performance.now() < end && failure === undefined) {
      await sleep(Math.max(0, nextSample - performance.now()));
      const { rss } = await adapterRss(adapter.admin);
      samples.push({ t: (performance.now() - t0) / 1000, rss });
      nextSample += 1000;
    }
    stop = true;
    await Promise.allSettled(workers);
    if (failure !== undefined) throw failure;
    const last = await adapterRss(adapter.admin);
    const seconds = (performance.now() - t0) / 1000;
    const rps = (last.allowed - first.allowed) / seconds;
    const after = samples.filter((s) => s.t >= RSS_WARMUP_SECONDS);
    const fit = after.length >= 2 ? after : samples;
    const mt = fit.reduce((s, x) => s + x.t, 0) / fit.length;
    const mr = fit.reduce((s, x) => s + x.rss, 0) / fit.length;
    let num = 0;
    let den = 0;
    for (const x of fit) {
      num += (x.t - mt) * (x.rss - mr);
      den += (x.t - mt) ** 2;
    }
    const slope = den > 0 ? (num / den) * 60 : 0;
    const rssFirst = samples[0].rss;
    const rssLast = samples[samples.length - 1].rss;
    const rssMax = Math.max(...samples.map((s) => s.rss));
    const warm = fit[0].rss;
    console.log(`\n## Adapter RSS at closed-loop peak, ${RSS_SECONDS} s (${CONNECTIONS} connections, GET)\n`);
    console.log('| measurement | value |');
    console.log('|---|---|');
    console.log(`| allowed requests per second | ${rps.toFixed(0)} |`);
    console.log(
      `| RSS first / after warm-up (${RSS_WARMUP_SECONDS} s) / last / max | ${mib(rssFirst).toFixed(1)} / ${mib(warm).toFixed(1)} / ${mib(rssLast).toFixed(1)} / ${mib(rssMax).toFixed(1)} MiB |`,
    );
    console.log(
      `| RSS slope after warm-up (least squares, ${fit.length} samples) | ${slope / (1024 * 1024) >= 0 ? '+' : ''}${(slope / (1024 * 1024)).toFixed(2)} MiB/min |`,
    );
    console.log(
      `| replay entries added (one per allowed request, each live 300 s + skew + grace) | ${(last.allowed - first.allowed).toLocaleString('en-US')} |`,
    );
    log(
      `rss samples (s: MiB): ${samples.map((s) => `${s.t.toFixed(0)}:${mib(s.rss).toFixed(1)}`).join(' ')}`,
    );
    results.add('memory.adapter_rps', rps, {
      unit: 'req/s',
      better: 'higher',
      description: `adapter allowed GET requests per second during the RSS run (${CONNECTIONS} connections, signed by the client as it goes)`,
    });
    results.add('memory.adapter_rss_first_mib', mib(rssFirst), {
      unit: 'MiB',
      better: 'lower',
      description: 'adapter RSS when the load starts',
    });
    results.add('memory.adapter_rss_last_mib', mib(rssLast), {
      unit: 'MiB',
      better: 'lower',
      description: `adapter RSS after ${RSS_SECONDS} s at peak`,
    });
    results.add('memory.adapter_rss_max_mib', mib(rssMax), {
      unit: 'MiB',
      better: 'lower',
      description: `largest adapter RSS sample over ${RSS_SECONDS} s at peak`,
    });
    results.add('memory.adapter_rss_slope_mib_per_min', slope / (1024 * 1024), {
      unit: 'MiB/min',
      better: 'lower',
      kind: 'difference',
      description: `least-squares slope of adapter RSS after a ${RSS_WARMUP_SECONDS} s warm-up, sampled every second for ${RSS_SECONDS} s at peak`,
    });
  } finally {
    stop = true;
    agent.destroy();
    await adapter.stop();
    upstream.child.disconnect();
  }
}

async function main() {
  const started = performance.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-bench-memory-'));
  try {
    console.log(
      `# Memory benchmarks (${MODE} mode, node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'})`,
    );
    if (PHASES.has('replay')) {
      log('replay store ...');
      benchReplayStore();
    }
    if (PHASES.has('reload')) {
      log('reload ...');
      await benchReload(dir);
    }
    if (PHASES.has('rss')) {
      log('adapter RSS ...');
      await benchAdapterRss(dir);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const total = (performance.now() - started) / 1000;
  results.add('memory.total_s', total, {
    unit: 's',
    better: 'lower',
    description: 'wall time of bench/memory.mjs',
  });
  results.write();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  killAll();
  process.exit(1);
});
