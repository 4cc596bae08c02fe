import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI } from '../helpers/adapter-process.js';
import { cliInProcess } from '../helpers/cli.js';

/*
 * Every verb of the built CLI documents itself: `--help` exits 0 and shows an `Example:` section
 * whose command lines start with the verb. The verbs are discovered from the help output itself
 * (the top-level "Commands:" list, then each command's), so a verb added later is covered without
 * touching this file. The `trustplane` verbs run in-process (test/helpers/cli.ts: one process per
 * verb, ~30 at once, was slow on a loaded 2-core machine); `trustplane-adapter` runs as a process.
 */

const ADAPTER_BIN = path.resolve('dist/cmd/trustplane-adapter/main.js');

interface HelpRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function help(bin: string, verb: readonly string[]): Promise<HelpRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...verb, '--help'],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Names listed in a commander help's "Commands:" section (the built-in `help` left out). */
function listedCommands(text: string): string[] {
  const section = /^Commands:\n((?: {2}.*\n?)+)/m.exec(text)?.[1] ?? '';
  return section
    .split('\n')
    .map((line) => /^ {2}([a-z][a-z0-9-]*)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined && name !== 'help');
}

/** The lines of every `Example:`/`Examples:` section, trimmed, up to the blank line that ends it. */
function exampleLines(text: string): string[] {
  const out: string[] = [];
  let inSection = false;
  for (const line of text.split('\n')) {
    if (/^Examples?:\s*$/.test(line)) inSection = true;
    else if (line.trim() === '') inSection = false;
    else if (inSection) out.push(line.trim());
  }
  return out;
}

function startsCommand(line: string, command: string): boolean {
  return line === command || line.startsWith(`${command} `);
}

if (!existsSync(CLI) || !existsSync(ADAPTER_BIN)) {
  throw new Error(`${CLI} or ${ADAPTER_BIN} is missing: run npm run build first`);
}

// Discovery runs at collection time (top-level await) so that each verb gets its own test; the
// help of one level's verbs is read in parallel.
const topLevel = await cliInProcess(['--help']);
const verbs = new Map<string, HelpRun>();
let level: { readonly verb: readonly string[]; readonly text: string }[] = [
  { verb: [], text: topLevel.stdout },
];
for (let depth = 0; depth < 3 && level.length > 0; depth++) {
  const children = level.flatMap(({ verb, text }) => listedCommands(text).map((name) => [...verb, name]));
  const runs = await Promise.all(children.map((verb) => cliInProcess([...verb, '--help'])));
  level = children.map((verb, i) => {
    verbs.set(verb.join(' '), runs[i]!);
    return { verb, text: runs[i]!.stdout };
  });
}

describe('trustplane --help', () => {
  it('exits 0 and lists the verbs', () => {
    expect(topLevel.code).toBe(0);
    expect(topLevel.stdout).toMatch(/^Usage: trustplane /);
    const top = listedCommands(topLevel.stdout);
    expect(top).toEqual(
      expect.arrayContaining(['gen-key', 'issue', 'verify', 'sign', 'bundle', 'adapter', 'broker']),
    );
    // The walk reached the sub-verbs too.
    expect([...verbs.keys()]).toEqual(
      expect.arrayContaining([
        'bundle build',
        'bundle sign',
        'bundle verify',
        'bundle merge-source',
        'bundle remove-source',
        'broker serve',
        'broker issue',
      ]),
    );
  });

  it.each([...verbs.keys()])('trustplane %s --help exits 0 and shows an example of the verb', (verb) => {
    const run = verbs.get(verb)!;
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Usage: trustplane ${verb}`);
    const examples = exampleLines(run.stdout);
    expect(examples, `no Example section in:\n${run.stdout}`).not.toEqual([]);
    expect(
      examples.filter((line) => startsCommand(line, `trustplane ${verb}`)),
      `no example line starting with "trustplane ${verb}" in:\n${examples.join('\n')}`,
    ).not.toEqual([]);
  });
});

describe('trustplane-adapter --help', () => {
  it('exits 0 and shows an example of the trustplane-adapter command', async () => {
    const run = await help(ADAPTER_BIN, []);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: trustplane-adapter /);
    const examples = exampleLines(run.stdout);
    expect(examples, `no Example section in:\n${run.stdout}`).not.toEqual([]);
    expect(
      examples.filter((line) => startsCommand(line, 'trustplane-adapter')),
      `no example line starting with "trustplane-adapter" in:\n${examples.join('\n')}`,
    ).not.toEqual([]);
  });
});
