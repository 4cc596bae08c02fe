// One driver for every benchmark: runs bench/run.mjs, bench/adapter.mjs, bench/broker.mjs and
// bench/memory.mjs (with --expose-gc) in sequence (each its own process, output passed through),
// merges their results (bench/results.mjs) into one JSON file, and compares a run with a saved
// baseline.
//
//   npm run bench                                   build, run all four, write .tmp/bench/latest.json
//   npm run bench -- --save baseline.json           write the merged results there instead
//   npm run bench -- --compare baseline.json        run, then print baseline / now / ratio per id
//   npm run bench -- --only adapter                 one bench (repeatable, or --only run,broker)
//   node bench/main.mjs --compare a.json --current b.json   compare two saved files, run nothing
//
// Options: --threshold <percent> (default 15: a change beyond it in the worse direction is flagged),
// --fail-on-regression (exit 3 when anything is flagged). BENCH_QUICK=1 / BENCH_SMOKE=1 pass through.
// Within one run, ratios (kind "ratio", e.g. adapter.get.throughput_vs_bare) divide two measurements
// taken side by side: those are the figures to compare across runs and machines. Absolute rates and
// times move with the machine and whatever else it runs.

import { execFileSync, spawn } from 'node:child_process';
import console from 'node:console';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { fileURLToPath } from 'node:url';

import { SCHEMA, benchMode, machineInfo } from './results.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const BENCHES = ['run', 'adapter', 'broker', 'memory'];
const SCRIPT = { run: 'run.mjs', adapter: 'adapter.mjs', broker: 'broker.mjs', memory: 'memory.mjs' };
/** Node flags per bench: memory.mjs calls global.gc() around its heap measurements. */
const NODE_FLAGS = { memory: ['--expose-gc'] };
const DEFAULT_OUT = path.join(ROOT, '.tmp/bench/latest.json');
/** A bench that has not finished in this long is killed (a full adapter run takes ~80 s). */
const BENCH_TIMEOUT_MS = 15 * 60_000;

const USAGE = `usage: node bench/main.mjs [--only run|adapter|broker|memory ...] [--save <file>]
                          [--compare <baseline.json> [--current <file.json>]] [--threshold <percent>]
                          [--fail-on-regression]`;

function parseArgs(argv) {
  const opts = {
    only: [],
    save: undefined,
    compare: undefined,
    current: undefined,
    threshold: 15,
    fail: false,
  };
  const value = (i, flag) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--only') {
      for (const name of value(i++, a).split(',')) {
        if (!BENCHES.includes(name))
          throw new UsageError(`--only: unknown bench ${name} (${BENCHES.join(', ')})`);
        if (!opts.only.includes(name)) opts.only.push(name);
      }
    } else if (a === '--save') opts.save = value(i++, a);
    else if (a === '--compare') opts.compare = value(i++, a);
    else if (a === '--current') opts.current = value(i++, a);
    else if (a === '--threshold') {
      opts.threshold = Number(value(i++, a));
      if (!Number.isFinite(opts.threshold) || opts.threshold <= 0)
        throw new UsageError('--threshold must be > 0');
    } else if (a === '--fail-on-regression') opts.fail = true;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new UsageError(`unknown argument ${a}`);
  }
  if (opts.current !== undefined && opts.compare === undefined)
    throw new UsageError('--current needs --compare');
  if (opts.current !== undefined && (opts.save !== undefined || opts.only.length > 0)) {
    throw new UsageError(
      '--current compares saved files: it runs nothing, so --save and --only do not apply',
    );
  }
  return opts;
}

class UsageError extends Error {}

/** Read and check a results document (merged or one bench's). */
function readDocument(file) {
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read ${file}: ${e.message}`);
  }
  if (doc?.schema !== SCHEMA || !Array.isArray(doc.results)) {
    throw new Error(`${file} is not a ${SCHEMA} results file`);
  }
  return doc;
}

let running;
let partsDir;
process.on('SIGINT', () => stopAndExit(130));
process.on('SIGTERM', () => stopAndExit(143));
function stopAndExit(code) {
  // The bench scripts kill their own children when they exit on a signal.
  if (running !== undefined && running.exitCode === null) running.kill('SIGTERM');
  if (partsDir !== undefined) rmSync(partsDir, { recursive: true, force: true });
  process.exit(code);
}

/** Run one bench script with `--json <file>`; resolves its exit code (or signal). */
function runBench(name, jsonFile) {
  return new Promise((resolve, reject) => {
    const args = [...(NODE_FLAGS[name] ?? []), path.join(HERE, SCRIPT[name]), '--json', jsonFile];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, BENCH_JSON_OUT: '' },
    });
    running = child;
    const timer = setTimeout(() => child.kill('SIGTERM'), BENCH_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      running = undefined;
      resolve(code ?? signal);
    });
  });
}

function gitCommit() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    return dirty === '' ? commit : `${commit}-dirty`;
  } catch {
    return undefined;
  }
}

async function runAll(benches, outFile) {
  // Per-bench files in a private temp dir, so two drivers running at once never mix their parts.
  partsDir = mkdtempSync(path.join(os.tmpdir(), 'tp-bench-parts-'));
  try {
    return await runInto(benches, outFile, partsDir);
  } finally {
    rmSync(partsDir, { recursive: true, force: true });
    partsDir = undefined;
  }
}

async function runInto(benches, outFile, dir) {
  const merged = {
    schema: SCHEMA,
    bench: 'all',
    mode: benchMode(),
    date: new Date().toISOString(),
    machine: machineInfo(),
    commit: gitCommit(),
    benches: {},
    results: [],
  };
  for (const name of benches) {
    const part = path.join(dir, `${name}.json`);
    process.stderr.write(`\n=== bench/${SCRIPT[name]} ===\n`);
    const status = await runBench(name, part);
    if (status !== 0) throw new Error(`bench/${SCRIPT[name]} failed (${status}); no results written`);
    if (!existsSync(part)) throw new Error(`bench/${SCRIPT[name]} exited 0 but wrote no ${part}`);
    const doc = readDocument(part);
    merged.benches[name] = { date: doc.date, mode: doc.mode, count: doc.results.length };
    merged.results.push(...doc.results);
  }
  mkdirSync(path.dirname(path.resolve(outFile)), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(merged, null, 2)}\n`);
  process.stderr.write(`\nmerged results (${merged.results.length} ids) written to ${outFile}\n`);
  return merged;
}

const num = (v) => {
  const a = Math.abs(v);
  return a >= 1000 ? Math.round(v).toLocaleString('en-US') : a >= 10 ? v.toFixed(1) : v.toFixed(3);
};

/**
 * Print, per id, baseline, now and now/baseline; flag a change beyond `threshold` % in the worse
 * direction. Only ids of the benches in `now` are compared. Returns the number flagged.
 */
function compare(base, now, threshold, baseName) {
  const benchOf = (id) => id.split('.')[0];
  const benchesNow = new Set(now.results.map((r) => benchOf(r.id)));
  const baseById = new Map(base.results.filter((r) => benchesNow.has(benchOf(r.id))).map((r) => [r.id, r]));
  const nowIds = new Set(now.results.map((r) => r.id));
  const t = threshold / 100;
  const rows = [];
  let flagged = 0;
  for (const r of now.results) {
    const b = baseById.get(r.id);
    if (b === undefined) {
      rows.push([r.id, r.kind, r.unit, '', num(r.value), '', 'new']);
      continue;
    }
    // A ratio of two signed differences means nothing: those are compared only when both are > 0.
    const comparable = b.value > 0 && r.value > 0;
    const q = comparable ? r.value / b.value : undefined;
    let verdict = '';
    if (q === undefined) verdict = `Δ ${r.value - b.value >= 0 ? '+' : ''}${num(r.value - b.value)}`;
    else if (r.better === 'higher' ? q < 1 - t : q > 1 + t) {
      verdict = 'REGRESSION';
      flagged++;
    } else if (r.better === 'higher' ? q > 1 + t : q < 1 - t) verdict = 'better';
    rows.push([
      r.id,
      r.kind,
      r.unit,
      num(b.value),
      num(r.value),
      q === undefined ? 'n/a' : q.toFixed(2),
      verdict,
    ]);
  }
  for (const id of baseById.keys()) {
    if (!nowIds.has(id))
      rows.push([
        id,
        baseById.get(id).kind,
        baseById.get(id).unit,
        num(baseById.get(id).value),
        '',
        '',
        'missing',
      ]);
  }
  const header = ['id', 'kind', 'unit', 'baseline', 'now', 'now/baseline', `flag (±${threshold} %)`];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells) =>
    cells.map((c, i) => (i <= 2 || i === 6 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [];
  out.push('');
  out.push(`compare: baseline ${baseName} (${base.date}, ${base.mode}, commit ${base.commit ?? 'unknown'})`);
  out.push(`         now      ${now.date}, ${now.mode}, commit ${now.commit ?? 'unknown'}`);
  if (base.mode !== now.mode)
    out.push(`note: the modes differ (${base.mode} vs ${now.mode}): counts and phase lengths differ`);
  const m = (x) => `${x.nproc} CPUs ${x.cpu_model}, node ${x.node}`;
  if (base.machine && now.machine && m(base.machine) !== m(now.machine)) {
    out.push(
      `note: different machines (${m(base.machine)} vs ${m(now.machine)}): absolute figures do not compare`,
    );
  }
  out.push(
    'Read the "ratio" rows across runs: each divides two measurements taken side by side in one run ' +
      '(e.g. adapter vs bare proxy), so machine speed and load cancel. "absolute" rows move with the machine.',
  );
  out.push('');
  out.push(line(header).trimEnd());
  out.push(line(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) out.push(line(row).trimEnd());
  out.push('');
  out.push(
    flagged === 0
      ? `no regression beyond ${threshold} %`
      : `${flagged} id(s) worse than the baseline by more than ${threshold} %`,
  );
  console.log(out.join('\n'));
  return flagged;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const base = opts.compare === undefined ? undefined : readDocument(opts.compare);
  const now =
    opts.current !== undefined
      ? readDocument(opts.current)
      : await runAll(
          opts.only.length > 0 ? BENCHES.filter((b) => opts.only.includes(b)) : BENCHES,
          opts.save ?? DEFAULT_OUT,
        );
  if (base !== undefined) {
    const flagged = compare(base, now, opts.threshold, opts.compare);
    if (flagged > 0 && opts.fail) process.exitCode = 3;
  }
}

main().catch((e) => {
  if (e instanceof UsageError) {
    console.error(`${e.message}\n${USAGE}`);
    process.exit(2);
  }
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
