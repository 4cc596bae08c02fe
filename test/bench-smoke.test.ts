// CI smoke run of every benchmark (issue 13): `node bench/main.mjs` with BENCH_SMOKE=1 (a few hundred
// requests, ~300 ms phases, one round; memory: 10,000 replay entries, 100 routes, 2 s of RSS) against
// the built dist/, then `--compare` of the file it
// wrote. Proves the benchmark code still works and writes every result id; performance is never
// asserted here (no figure is compared with anything but itself).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

import { REDIS_SERVER, requireServer } from './helpers/redis.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST_CLI = path.join(ROOT, 'dist/cmd/trustplane/main.js');
/** Generous: a smoke run of all four takes ~25 s on a busy 2-core machine. */
const RUN_TIMEOUT_MS = 100_000;

interface BenchResult {
  readonly id: string;
  readonly value: number;
  readonly unit: string;
  readonly better: string;
  readonly kind: string;
  readonly description: string;
}
interface BenchDocument {
  readonly schema: string;
  readonly bench: string;
  readonly mode: string;
  readonly date: string;
  readonly machine: { nproc: number; cpu_model: string; node: string; platform: string; arch: string };
  readonly benches: Record<string, { mode: string; count: number }>;
  readonly results: readonly BenchResult[];
}

const RUN_IDS = [
  'run.ed25519_verify_webcrypto.us_per_op',
  'run.ed25519_verify_node_crypto.us_per_op',
  'run.ed25519_verify_webcrypto_concurrent.us_per_op',
  'run.verify_request_get.us_per_op',
  'run.verify_request_post.us_per_op',
  'run.verify_request_get_concurrent.us_per_op',
  'run.verify_passport.us_per_op',
  'run.build_transcript.us_per_op',
  'run.verify_request_get.vs_webcrypto_ceiling',
  'run.verify_request_post.vs_webcrypto_ceiling',
  'run.verify_request_get_concurrent.vs_webcrypto_ceiling',
  'run.verify_request_get.vs_node_crypto_ceiling',
  'run.route_resolve.10000_vs_10_routes_distinct',
  'run.total_s',
];
const ADAPTER_IDS = [
  'adapter.ed25519_verify_us.native',
  'adapter.ed25519_verify_us.webcrypto',
  ...['get', 'post'].flatMap((k) => [
    `adapter.${k}.rps`,
    `adapter.${k}.p99_ms`,
    `adapter.${k}.cpu_us_per_req`,
    `adapter.${k}.throughput_vs_bare`,
    `adapter.${k}.cpu_vs_bare`,
    `adapter.${k}.cpu_vs_floor`,
    `adapter.bare.${k}.rps`,
    `adapter.bare.${k}.cpu_us_per_req`,
    `adapter.direct.${k}.rps`,
  ]),
  'adapter.open.rate_rps',
  'adapter.open.bare.p50_ms',
  'adapter.open.bare.p99_ms',
  'adapter.open.bare.p999_ms',
  'adapter.open.adapter.p50_ms',
  'adapter.open.adapter.p99_ms',
  'adapter.open.adapter.p999_ms',
  'adapter.open.p99_added_ms',
  'adapter.open.p999_added_ms',
  'adapter.total_s',
];
const REDIS_IDS = [
  'adapter.cores.memory_1w.rps',
  'adapter.cores.redis_1w.rps',
  'adapter.cores.redis_2w.rps',
  'adapter.cores.redis_2w.cpu_us_per_req',
  'adapter.cores.redis_vs_memory',
  'adapter.cores.workers_2_vs_1',
];
const MEMORY_IDS = [
  'memory.replay_store.bytes_per_entry',
  'memory.replay_store.consume_us',
  'memory.replay_store.max_consume_ms',
  'memory.replay_store.replay_us',
  'memory.replay_store.sweep_ms',
  // smoke: 100 routes (full and quick: memory.reload_1000_routes_ms)
  'memory.reload_100_routes_ms',
  'memory.reload_max_stall_ms',
  'memory.adapter_rps',
  'memory.adapter_rss_max_mib',
  'memory.adapter_rss_slope_mib_per_min',
  'memory.total_s',
];
const BROKER_IDS = [
  'broker.floor.us_per_issue',
  'broker.in_process.us_per_issue',
  'broker.in_process.vs_floor',
  'broker.ipc_1.us_per_issue',
  'broker.ipc_16.vs_floor',
  'broker.ipc_1.p99_us',
  'broker.ipc_1.p50_us',
  'broker.in_process.issues_per_s',
  'broker.in_process.cpu_us_per_issue',
  // The SPIFFE source (an X.509-SVID from spiffe-helper files, attested_workload passports).
  'broker.spiffe.in_process.us_per_issue',
  'broker.spiffe.in_process.issues_per_s',
  'broker.spiffe.in_process.cpu_us_per_issue',
  'broker.spiffe.in_process.vs_floor',
  'broker.spiffe.in_process.vs_software',
  'broker.spiffe.ipc_1.us_per_issue',
  'broker.spiffe.ipc_1.p50_us',
  'broker.spiffe.ipc_1.p99_us',
  'broker.spiffe.ipc_16.us_per_issue',
  'broker.spiffe.ipc_16.issues_per_s',
  'broker.spiffe.ipc_16.vs_floor',
];

interface Run {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Process groups started here; each is killed (with everything it started) in afterAll. */
const groups = new Set<number>();
function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

/**
 * `node bench/main.mjs <args>` in its own process group (so the adapters, helpers and redis-server
 * it starts go with it), BENCH_SMOKE=1; killed as a group after RUN_TIMEOUT_MS.
 */
function runBench(args: readonly string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bench/main.mjs'), ...args], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BENCH_SMOKE: '1', BENCH_QUICK: '', BENCH_JSON_OUT: '', ...env },
    });
    const pid = child.pid;
    if (pid !== undefined) groups.add(pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-30_000)));
    const timer = setTimeout(() => {
      if (pid !== undefined) killGroup(pid);
    }, RUN_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      // Anything of the run that outlived main.mjs goes now.
      if (pid !== undefined) {
        killGroup(pid);
        groups.delete(pid);
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const explain = (r: Run): string =>
  `exit ${r.code ?? r.signal}\n--- stdout ---\n${r.stdout.slice(-5000)}\n--- stderr ---\n${r.stderr.slice(-8000)}`;

describe('bench smoke: every benchmark with tiny counts (BENCH_SMOKE=1), results as data, --compare', () => {
  const redis = requireServer('redis-server', REDIS_SERVER);
  const dir = mkdtempSync(path.join(tmpdir(), 'tp-bench-smoke-'));
  const saved = path.join(dir, 'smoke.json');
  const env = { BENCH_REDIS: redis ? '1' : '0' };
  afterAll(() => {
    for (const pid of groups) killGroup(pid);
    groups.clear();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs every benchmark against dist/ and writes every expected id with a finite value', async () => {
    expect(existsSync(DIST_CLI), `${DIST_CLI} is missing: run \`npm run build\` before this test`).toBe(true);
    const run = await runBench(['--save', saved], env);
    expect(run.code, explain(run)).toBe(0);
    expect(existsSync(saved), explain(run)).toBe(true);

    const doc = JSON.parse(readFileSync(saved, 'utf8')) as BenchDocument;
    expect(doc.schema).toBe('trustplane-bench-v1');
    expect(doc.mode).toBe('smoke');
    expect(Number.isNaN(Date.parse(doc.date))).toBe(false);
    expect(Number.isInteger(doc.machine.nproc) && doc.machine.nproc > 0).toBe(true);
    expect(doc.machine.cpu_model.length).toBeGreaterThan(0);
    expect(doc.machine.node).toBe(process.version);
    expect(Object.keys(doc.benches)).toEqual(['run', 'adapter', 'broker', 'memory']);

    const ids = doc.results.map((r) => r.id);
    expect(new Set(ids).size, 'duplicate ids').toBe(ids.length);
    const expected = [...RUN_IDS, ...ADAPTER_IDS, ...(redis ? REDIS_IDS : []), ...BROKER_IDS, ...MEMORY_IDS];
    expect(expected.filter((id) => !ids.includes(id))).toEqual([]);
    if (!redis) expect(ids.filter((id) => id.startsWith('adapter.cores.'))).toEqual([]);
    for (const r of doc.results) {
      expect(r.id).toMatch(/^(run|adapter|broker|memory)\.[a-z0-9_.]+$/);
      expect(Number.isFinite(r.value), `${r.id} = ${r.value}`).toBe(true);
      // A difference (adapter p99 − bare p99) may be ≤ 0; every other figure is a rate, a time or a ratio.
      if (r.kind !== 'difference') expect(r.value, r.id).toBeGreaterThan(0);
      expect(['higher', 'lower'], r.id).toContain(r.better);
      expect(['ratio', 'absolute', 'difference'], r.id).toContain(r.kind);
      expect(r.unit.length, r.id).toBeGreaterThan(0);
    }
    // The human tables are still printed.
    expect(run.stdout).toContain('| trustplane adapter | GET, no body |');
    expect(run.stdout).toContain('p99 added by the adapter over the bare proxy');
  }, 120_000);

  it('--compare against the file it just wrote prints 1.00 for every id', async () => {
    expect(existsSync(saved), 'the smoke run above wrote no file').toBe(true);
    const doc = JSON.parse(readFileSync(saved, 'utf8')) as BenchDocument;
    const run = await runBench(['--compare', saved, '--current', saved], env);
    expect(run.code, explain(run)).toBe(0);
    const rows = new Map<string, string[]>();
    for (const line of run.stdout.split('\n')) {
      const cells = line.trim().split(/\s{2,}/);
      if (cells[0] !== undefined && /^(run|adapter|broker|memory)\./.test(cells[0]))
        rows.set(cells[0], cells);
    }
    for (const r of doc.results) {
      const cells = rows.get(r.id);
      expect(cells, `no compare row for ${r.id}`).toBeDefined();
      // id, kind, unit, baseline, now, now/baseline[, flag]
      const expectRatio = r.value > 0 ? '1.00' : 'n/a';
      expect(cells?.[5], `${r.id}: ${cells?.join(' | ')}`).toBe(expectRatio);
    }
    expect(run.stdout).toContain('no regression beyond 15 %');
  }, 60_000);

  it('--only broker --compare runs one bench and compares only its ids', async () => {
    const run = await runBench(
      ['--only', 'broker', '--compare', saved, '--save', path.join(dir, 'b.json')],
      env,
    );
    expect(run.code, explain(run)).toBe(0);
    const compared = run.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s{2,}/))
      .filter((c) => c[0] !== undefined && /^(run|adapter|broker|memory)\./.test(c[0]));
    expect(compared.map((c) => c[0]?.split('.')[0]).every((b) => b === 'broker')).toBe(true);
    for (const id of BROKER_IDS) {
      const row = compared.find((c) => c[0] === id);
      expect(row?.[5], `${id}: ${row?.join(' | ')}`).toMatch(/^\d+\.\d\d$/);
    }
  }, 60_000);
});
