import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI } from './helpers/adapter-process.js';

/*
 * The README's five-minute CLI tour, run as written (issue 14, point 2): every ```sh block of the
 * "Five-minute CLI tour" section, in order, in one bash in a new temp directory, against the built
 * CLI. A block whose first line is `# tour-test: skip (<why>)` is left out (it starts a server);
 * everything else must run with `set -euo pipefail`. So the tour cannot rot.
 */

const README = readFileSync(path.resolve('README.md'), 'utf8');

/** The fenced sh/bash blocks of one README section. */
function shellBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README has no "## ${heading}" section`);
  const end = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^```(?:sh|bash)\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

const blocks = shellBlocks(README, 'Five-minute CLI tour');
const SKIP = /^# tour-test: skip \(.+\)\n/;
const run = blocks.filter((b) => !SKIP.test(b));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}
let result: Result;
let work: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  work = mkdtempSync(path.join(tmpdir(), 'trustplane-readme-tour-'));
  const script = ['set -euo pipefail', ...run].join('\n');
  result = await new Promise<Result>((resolve) => {
    execFile(
      'bash',
      ['-c', script],
      {
        cwd: work,
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, TRUSTPLANE_CLI: CLI, NO_COLOR: '1' },
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}, 150_000);

describe('README five-minute CLI tour', () => {
  it('has runnable blocks, and the skipped ones say why', () => {
    expect(run.length).toBeGreaterThanOrEqual(5);
    for (const block of blocks.filter((b) => SKIP.test(b))) expect(block).toMatch(/^# tour-test: skip \(\w/);
    // No placeholders left for a newcomer to fill in.
    for (const block of run) expect(block).not.toMatch(/<[a-z][a-z -]*>/);
  });

  it('runs as written: exit 0, nothing on stderr but warnings', () => {
    expect(result.stderr.split('\n').filter((l) => l !== '' && !/WARNING/.test(l))).toEqual([]);
    expect(result.code).toBe(0);
  });

  it('leaves what it says: keys (0600) with .pub files, signed bundles, a runnable curl command', () => {
    const dir = path.join(work, 'tour');
    for (const name of ['caller', 'bundle-signer']) {
      expect(statSync(path.join(dir, `${name}.key`)).mode & 0o777).toBe(0o600);
      expect(readFileSync(path.join(dir, `${name}.pub`), 'utf8')).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    }
    for (const name of ['trust.json', 'policy.json']) {
      const doc = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as Record<string, unknown>;
      expect(doc.signed_by).toMatchObject({ issuer: 'https://bundles.example', kid: 'bundle-1' });
    }
    const policy = JSON.parse(readFileSync(path.join(dir, 'policy.json'), 'utf8')) as {
      apis: { base_url: string }[];
    };
    const curl = readFileSync(path.join(dir, 'create-order.sh'), 'utf8');
    // The request is signed for the origin the policy names, so the adapter of step 6 admits it.
    expect(curl).toMatch(new RegExp(`^curl .*'${policy.apis[0]!.base_url}/v1/orders'`));
    expect(curl).toContain("-H 'x-trustplane-proof: ");
  });

  it('prints the verification results the tour promises', () => {
    expect(result.stdout).toMatch(/"valid": true|"ok": true|verified/);
    expect(result.stdout).toContain('service:orders-client');
  });
});
