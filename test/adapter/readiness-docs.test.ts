import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// docs/operations.md lists every readiness check and reason word. The code's reasons are the
// `unhealthy('<word>')` calls of each component; the table and the code must name the same words.

const root = path.resolve(import.meta.dirname, '../..');

/** (check → reasons) from the docs table whose header starts `| check`. */
function documented(): Map<string, Set<string>> {
  const text = readFileSync(path.join(root, 'docs/operations.md'), 'utf8');
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^\| check\s+\| reason\s+\|/.test(l));
  expect(start, 'the readiness table in docs/operations.md').toBeGreaterThan(0);
  const table = new Map<string, Set<string>>();
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const [check, reason] = line
      .split('|')
      .slice(1, 3)
      .map((c) => c.trim().replace(/^`|`$/g, ''));
    if (!table.has(check!)) table.set(check!, new Set());
    table.get(check!)!.add(reason!);
  }
  return table;
}

/** Reason words a set of source files can report. */
function reported(files: readonly string[]): Set<string> {
  const words = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(path.join(root, f), 'utf8').matchAll(/unhealthy\('([a-z_]+)'\)/g))
      words.add(m[1]!);
  }
  return words;
}

const sources = (dir: string) =>
  readdirSync(path.join(root, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `${dir}/${f}`);

describe('docs/operations.md readiness table', () => {
  const table = documented();
  const components: Record<string, readonly string[]> = {
    bundles: ['pkg/runtime/bundle-manager.ts'],
    replay_store: [...sources('pkg/replay'), 'pkg/authcore/memory-replay-store.ts'],
    audit: sources('pkg/audit'),
  };

  it('names exactly the checks /readyz can show', () => {
    expect([...table.keys()].sort()).toEqual(['audit', 'bundles', 'replay_store', 'shutdown']);
    const readiness = readFileSync(path.join(root, 'pkg/adapter/readiness.ts'), 'utf8');
    for (const check of ['bundles', 'replay_store', 'audit']) expect(readiness).toContain(`'${check}'`);
    expect(readiness).toContain("checks.shutdown = 'draining'");
    expect([...table.get('shutdown')!]).toEqual(['draining']);
  });

  for (const [check, files] of Object.entries(components)) {
    it(`${check}: every reason the code reports is documented, and nothing else`, () => {
      const code = reported(files);
      expect(code.size).toBeGreaterThan(0);
      const docs = table.get(check)!;
      expect(
        [...code].filter((w) => !docs.has(w)),
        'reported but not documented',
      ).toEqual([]);
      // `unavailable` is also what readiness.ts answers for a check that throws or hangs.
      expect(
        [...docs].filter((w) => !code.has(w) && w !== 'unavailable'),
        'documented but never reported',
      ).toEqual([]);
    });
  }
});
