import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// The vendored vectors are copies, unchanged: their digests are recorded in README.md next to their
// provenance, and any edit (a formatter, a hand fix) fails here.

const DIR = new URL('./', import.meta.url);

function recorded(): Map<string, string> {
  const readme = readFileSync(new URL('README.md', DIR), 'utf8');
  const table = readme.slice(
    readme.indexOf('<!-- digests:start -->'),
    readme.indexOf('<!-- digests:end -->'),
  );
  const map = new Map<string, string>();
  for (const m of table.matchAll(/^\|\s*`([^`]+)`\s*\|\s*`([0-9a-f]{64})`\s*\|$/gm)) map.set(m[1]!, m[2]!);
  return map;
}

describe('vendored vectors', () => {
  const digests = recorded();
  const files = ['trustplane-v1', 'external'].flatMap((d) =>
    readdirSync(new URL(`${d}/`, DIR)).map((f) => `${d}/${f}`),
  );

  it('every vendored file has a recorded digest, and every recorded digest a file', () => {
    expect([...digests.keys()].sort()).toEqual(files.sort());
  });

  it.each(files)('%s is byte for byte the recorded copy', (file) => {
    const digest = createHash('sha256')
      .update(readFileSync(new URL(file, DIR)))
      .digest('hex');
    expect(digest).toBe(digests.get(file));
  });
});

describe('nothing reads outside the repository', () => {
  it('no test, script, bench or example refers to ../shared', () => {
    const root = new URL('../../', import.meta.url);
    const offenders: string[] = [];
    const walk = (dir: URL, rel: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.name === 'node_modules' || e.name === 'vectors') continue;
        if (e.isDirectory()) walk(new URL(`${e.name}/`, dir), `${rel}${e.name}/`);
        else if (/\.(ts|mjs|js|sh|json)$/.test(e.name)) {
          const text = readFileSync(new URL(e.name, dir), 'utf8');
          if (/\.\.\/shared\b|\bshared\/(conformance|vectors|protos)\//.test(text))
            offenders.push(`${rel}${e.name}`);
        }
      }
    };
    for (const top of ['test', 'scripts', 'bench', 'examples', '.ci', 'pkg', 'cmd'])
      walk(new URL(`${top}/`, root), `${top}/`);
    expect(offenders).toEqual([]);
  });
});
