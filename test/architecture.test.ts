import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// docs/architecture.md holds the module map and its "may import" table; this test reads that
// table and holds every file of pkg/ and cmd/ to it, so the document cannot drift from the code.

const ROOT = path.resolve(import.meta.dirname, '..');

interface ModuleRow {
  readonly name: string;
  /** Repository-relative path: a directory, or one file (`pkg/index.ts`). */
  readonly path: string;
  readonly mayImport: ReadonlySet<string>;
  readonly packages: ReadonlySet<string>;
  readonly webOnly: boolean;
}

function moduleTable(): ModuleRow[] {
  const doc = readFileSync(path.join(ROOT, 'docs/architecture.md'), 'utf8');
  const start = doc.indexOf('<!-- module-table:start -->');
  const end = doc.indexOf('<!-- module-table:end -->');
  expect(start).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  const rows = doc
    .slice(start, end)
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .slice(2);
  const list = (cell: string) =>
    new Set(
      cell
        .split(',')
        .map((s) => s.replace(/`/g, '').trim())
        .filter((s) => s !== '' && s !== '—'),
    );
  return rows.map((row) => {
    const cells = row.split('|').slice(1, -1);
    expect(cells).toHaveLength(5);
    const [name, where, may, packages, web] = cells as [string, string, string, string, string];
    return {
      name: name.trim(),
      path: where.replace(/`/g, '').trim(),
      mayImport: list(may),
      packages: list(packages),
      webOnly: web.trim() === 'yes',
    };
  });
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? tsFiles(path.join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [path.join(dir, e.name)]
        : [],
  );
}

/** Code without comments (TSDoc examples may mention anything). */
function code(file: string): string {
  return readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
}

/**
 * Every module specifier a file imports or re-exports (static and dynamic, type-only included),
 * as TypeScript's own pre-processor reads them (strings and comments that look like imports are not).
 */
function specifiers(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  // A bare builtin name ('http', also from a `declare module 'http'` augmentation) is node:http.
  return info.importedFiles.map((f) =>
    isBuiltin(f.fileName) && !f.fileName.startsWith('node:') ? `node:${f.fileName}` : f.fileName,
  );
}

const table = moduleTable();
// Longest path first, so pkg/internal/node-http wins over pkg/internal.
const byPath = [...table].sort((a, b) => b.path.length - a.path.length);

function moduleOf(file: string): ModuleRow | undefined {
  const rel = path.relative(ROOT, file).split(path.sep).join('/');
  return byPath.find((m) => rel === m.path || rel.startsWith(`${m.path}/`));
}

/** The source file a relative `.js` specifier names. */
function resolveRelative(from: string, spec: string): string {
  const target = path.resolve(path.dirname(from), spec);
  return target.endsWith('.js') ? `${target.slice(0, -3)}.ts` : target;
}

function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

const PKG_FILES = tsFiles(path.join(ROOT, 'pkg'));

describe('module map (docs/architecture.md)', () => {
  it('the table names every module once, and every file of pkg/ belongs to one', () => {
    expect(new Set(table.map((m) => m.name)).size).toBe(table.length);
    for (const m of table) {
      for (const dep of m.mayImport)
        expect(
          table.map((t) => t.name),
          `${m.name} → ${dep}`,
        ).toContain(dep);
      expect(statSync(path.join(ROOT, m.path)), m.path).toBeTruthy();
    }
    expect(PKG_FILES.filter((f) => moduleOf(f) === undefined)).toEqual([]);
  });

  it('every import in pkg/ is one its module may make', () => {
    const offenders: string[] = [];
    for (const file of PKG_FILES) {
      const from = moduleOf(file)!;
      for (const spec of specifiers(file)) {
        if (spec.startsWith('.')) {
          const to = moduleOf(resolveRelative(file, spec));
          if (to === undefined) offenders.push(`${path.relative(ROOT, file)}: ${spec} (outside pkg/)`);
          else if (to !== from && !from.mayImport.has(to.name)) {
            offenders.push(`${path.relative(ROOT, file)}: ${from.name} may not import ${to.name} (${spec})`);
          }
        } else if (spec.startsWith('node:')) {
          if (from.webOnly)
            offenders.push(`${path.relative(ROOT, file)}: Web-only ${from.name} imports ${spec}`);
        } else if (!from.packages.has(packageName(spec))) {
          offenders.push(`${path.relative(ROOT, file)}: ${from.name} may not import package ${spec}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });

  it('Web-only modules use Web APIs only, and so does everything they import (transitively)', () => {
    const offenders = new Set<string>();
    const visited = new Set<string>();
    const visit = (file: string, root: string) => {
      if (visited.has(file)) return;
      visited.add(file);
      const text = code(file);
      if (/from ['"]node:|require\(|\bBuffer\.|\bprocess\./.test(text)) {
        offenders.add(`${path.relative(ROOT, file)} (reached from ${root})`);
      }
      for (const spec of specifiers(file)) if (spec.startsWith('.')) visit(resolveRelative(file, spec), root);
    };
    for (const m of table.filter((t) => t.webOnly)) {
      for (const file of PKG_FILES.filter((f) => moduleOf(f) === m)) visit(file, m.name);
    }
    expect([...offenders]).toEqual([]);
  });
});

describe('cmd/ imports only public subpaths', () => {
  const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    exports: Record<string, unknown>;
  };
  const publicEntries = new Set(
    Object.keys(manifest.exports)
      .filter((k) => k !== './package.json')
      .map((k) => path.join(ROOT, 'pkg', k === '.' ? 'index.ts' : `${k.slice(2)}/index.ts`)),
  );

  it('every exports subpath has its module entry in pkg/', () => {
    for (const entry of publicEntries) expect(statSync(entry).isFile(), entry).toBe(true);
  });

  it('relative imports into pkg/ name a public entry; packages are commander and node:*', () => {
    const offenders: string[] = [];
    for (const file of tsFiles(path.join(ROOT, 'cmd'))) {
      for (const spec of specifiers(file)) {
        if (spec.startsWith('.')) {
          const target = resolveRelative(file, spec);
          const inPkg = target.startsWith(path.join(ROOT, 'pkg') + path.sep);
          if (inPkg && !publicEntries.has(target)) offenders.push(`${path.relative(ROOT, file)}: ${spec}`);
        } else if (!spec.startsWith('node:') && spec !== 'commander') {
          offenders.push(`${path.relative(ROOT, file)}: package ${spec}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});
