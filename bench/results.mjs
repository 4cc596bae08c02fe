// Benchmark results as data: every bench script records its measurements here and, when asked
// (`--json <file>` or BENCH_JSON_OUT=<file>), writes them as one JSON document. bench/main.mjs
// merges the documents and compares them with a saved baseline.
//
// Document (schema `trustplane-bench-v1`):
//   { schema, bench, mode, date, machine: { nproc, cpu_model, node, platform, arch },
//     results: [ { id, value, unit, better, kind, description } ] }
// - id: stable, dotted, lower case (`adapter.get.cpu_us_per_req`); never reused for another meaning.
// - better: 'higher' or 'lower' (the direction of an improvement).
// - kind: 'ratio' (two measurements of the same run divided: comparable across runs and machines),
//   'absolute' (a rate, a time, a CPU cost: moves with the machine and its load), or 'difference'
//   (two measurements of the same run subtracted; may be zero or negative).

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';

export const SCHEMA = 'trustplane-bench-v1';

/** quick, smoke or full, from BENCH_SMOKE / BENCH_QUICK (smoke wins). */
export function benchMode() {
  if (process.env.BENCH_SMOKE === '1') return 'smoke';
  if (process.env.BENCH_QUICK === '1') return 'quick';
  return 'full';
}

/** The machine a run ran on. */
export function machineInfo() {
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu_model: os.cpus()[0]?.model?.trim() ?? 'unknown CPU',
    node: process.version,
    platform: os.platform(),
    arch: os.arch(),
  };
}

/** The file named by `--json <file>` (or `--json=<file>`) in argv, else BENCH_JSON_OUT, else undefined. */
export function jsonOutPath(argv = process.argv.slice(2)) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') {
      const file = argv[i + 1];
      if (file === undefined || file.startsWith('--')) throw new Error('--json needs a file name');
      return file;
    }
    if (a.startsWith('--json=')) return a.slice('--json='.length);
  }
  const env = process.env.BENCH_JSON_OUT;
  return env === undefined || env === '' ? undefined : env;
}

const ID = /^[a-z0-9_]+(\.[a-z0-9_]+)+$/;
const KINDS = new Set(['ratio', 'absolute', 'difference']);

/**
 * A collector for one bench script.
 * @param bench the script's name: `run`, `adapter` or `broker` (every id starts with it)
 */
export function createResults(bench) {
  const results = [];
  const seen = new Set();
  return {
    /**
     * Record one measurement. `kind` defaults to 'absolute'.
     * A non-finite value is a bug in the bench, so it throws rather than writing garbage.
     */
    add(id, value, { unit, better, kind = 'absolute', description = '' }) {
      if (!ID.test(id) || !id.startsWith(`${bench}.`)) throw new Error(`bad result id ${id}`);
      if (seen.has(id)) throw new Error(`result id ${id} recorded twice`);
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`result ${id} is ${value}`);
      if (better !== 'higher' && better !== 'lower')
        throw new Error(`result ${id}: better must be higher|lower`);
      if (!KINDS.has(kind)) throw new Error(`result ${id}: bad kind ${kind}`);
      seen.add(id);
      results.push({ id, value, unit, better, kind, description });
    },
    /** The document, with the machine and the date. */
    document() {
      return {
        schema: SCHEMA,
        bench,
        mode: benchMode(),
        date: new Date().toISOString(),
        machine: machineInfo(),
        results: [...results],
      };
    },
    /** Write the document to `--json <file>` / BENCH_JSON_OUT, if either is set; returns the path. */
    write() {
      const file = jsonOutPath();
      if (file === undefined) return undefined;
      mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
      writeFileSync(file, `${JSON.stringify(this.document(), null, 2)}\n`);
      process.stderr.write(`results written to ${file}\n`);
      return file;
    },
  };
}
