import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// docs/gateways.md names an example for each gateway and framework: each must exist and be run or
// checked by a test (a test file names it), so the page cannot point at an untested configuration.

const ROOT = path.resolve(import.meta.dirname, '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
const DOC = 'docs/gateways.md';
const doc = read(DOC);
/** Markdown without its fenced code blocks. */
const prose = (md: string) => md.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '');

/** GitHub's heading anchors: lowercase, punctuation other than `-` and `_` dropped, spaces to `-`. */
function anchors(md: string): Set<string> {
  const out = new Set<string>();
  for (const m of prose(md).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    out.add(
      m[1]!
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    );
  }
  return out;
}

function files(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)],
  );
}

/** Every `examples/…` path the page names, in a link or a code span (repository-relative). */
function examplesNamed(): string[] {
  const named = new Set<string>();
  for (const m of prose(doc).matchAll(/\]\(([^)\s#]+)[^)]*\)/g)) {
    const target = path.normalize(path.join('docs', m[1]!));
    if (target.startsWith('examples/')) named.add(target.replace(/\/$/, ''));
  }
  for (const m of prose(doc).matchAll(/`(examples\/[^`\s]+)`/g)) named.add(m[1]!.replace(/\/$/, ''));
  return [...named].sort();
}

const TEST_TEXT = files('test')
  .filter((f) => /\.(ts|mjs)$/.test(f))
  .map((f) => [f, read(f)] as const);

describe('docs/gateways.md', () => {
  it('names the examples of nginx, Caddy, Traefik and Envoy, and each exists', () => {
    const named = examplesNamed();
    expect(named).toEqual(
      expect.arrayContaining([
        'examples/nginx/trustplane-server.conf',
        'examples/caddy/Caddyfile',
        'examples/traefik/dynamic.yml',
        'examples/envoy/envoy.yaml',
      ]),
    );
    expect(named.filter((e) => !existsSync(path.join(ROOT, e)))).toEqual([]);
  });

  it('every example it names is exercised by a test (a test file names it)', () => {
    const untested = examplesNamed().filter((example) => {
      const dir = path.dirname(example);
      const base = path.basename(example);
      return !TEST_TEXT.some(
        ([, text]) =>
          text.includes(example) ||
          // a test that joins the directory and the name, or reads every file of the directory
          (text.includes(dir) && (text.includes(`'${base}'`) || text.includes(`readdirSync('${dir}')`))),
      );
    });
    expect(untested).toEqual([]);
  });

  it('every test file it names exists', () => {
    const tests = [...new Set([...prose(doc).matchAll(/`(test\/[^`\s]+\.ts)`/g)].map((m) => m[1]!))];
    expect(tests.length).toBeGreaterThan(4);
    expect(tests.filter((t) => !existsSync(path.join(ROOT, t)))).toEqual([]);
  });

  it('every relative link points to an existing file (and heading)', () => {
    const broken: string[] = [];
    for (const m of prose(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      const [relative, fragment] = target.split('#') as [string, string | undefined];
      const resolved = relative === '' ? DOC : path.join('docs', relative);
      if (!existsSync(path.join(ROOT, resolved))) broken.push(target);
      else if (fragment !== undefined && resolved.endsWith('.md') && !anchors(read(resolved)).has(fragment))
        broken.push(target);
    }
    expect(broken).toEqual([]);
  });

  it('is linked from the README and from docs/adapter.md', () => {
    expect(read('README.md')).toContain('](docs/gateways.md)');
    expect(read('docs/adapter.md')).toContain('](gateways.md)');
  });
});
