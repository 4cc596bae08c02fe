import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/*
 * Issue 14, point 6: the package as a newcomer gets it. `npm pack` (of the built tree), installed
 * with hono and express into a brand-new project OUTSIDE the repository (so nothing resolves from
 * the repository's node_modules; dependencies come from the npm registry, as for a user). Then:
 * the CLI from the install writes and signs a working set, and the README's library, Hono and
 * Express snippets run verbatim (type-stripped by the repository's tsx) against it: allow, replay,
 * tamper. One install per run; its figures (packages, size, time) are printed.
 */

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const TSX = path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The fenced ```ts blocks of the README section that starts with `heading`. */
function tsBlocks(heading: string): string[] {
  const start = README.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`README has no "${heading}" section`);
  const end = README.indexOf('\n## ', start + 1);
  return [...README.slice(start, end).matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

let project: string;
const figures: Record<string, number> = {};

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += dirBytes(p);
    else if (entry.isFile()) total += statSync(p).size;
  }
  return total;
}

beforeAll(async () => {
  if (!existsSync(path.join(ROOT, 'dist/pkg/index.js'))) throw new Error('run npm run build first');
  project = mkdtempSync(path.join(tmpdir(), 'trustplane-newcomer-'));
  // --ignore-scripts: prepack would rebuild dist/ under the other tests' feet; the tree is built.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], {
    cwd: ROOT,
  });
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
  writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({ name: 'newcomer', private: true, type: 'module' }),
  );
  const started = Date.now();
  await run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${filename}`, 'hono', 'express'],
    {
      cwd: project,
      timeout: 240_000,
    },
  );
  figures.installSeconds = Math.round((Date.now() - started) / 100) / 10;
  const modules = path.join(project, 'node_modules');
  figures.packages = readdirSync(modules)
    .filter((n) => !n.startsWith('.'))
    .flatMap((n) => (n.startsWith('@') ? readdirSync(path.join(modules, n)) : [n])).length;
  figures.nodeModulesMB = Math.round(dirBytes(modules) / 1e5) / 10;
  figures.trustplaneMB = Math.round(dirBytes(path.join(modules, 'trustplane')) / 1e5) / 10;
  console.log(`newcomer install: ${JSON.stringify(figures)}`);
  // The working set, from the installed CLI: init, build and sign both documents.
  const cli = (...args: string[]) =>
    run(process.execPath, [path.join(modules, 'trustplane/dist/cmd/trustplane/main.js'), ...args], {
      cwd: project,
      timeout: 60_000,
    });
  await cli('init', '.');
  const sign = [
    '--private-key',
    '@bundle-signer.key',
    '--issuer',
    'https://bundles.example',
    '--kid',
    'bundle-1',
  ];
  await cli(
    'bundle',
    'build',
    '--kind',
    'trust-material',
    '--config',
    'trust.config.json',
    '--out',
    'trust.json',
  );
  await cli('bundle', 'sign', '--bundle', 'trust.json', ...sign, '--out', 'trust.json');
  await cli('bundle', 'build', '--config', 'policy.config.json', '--out', 'policy.json');
  await cli('bundle', 'sign', '--bundle', 'policy.json', ...sign, '--out', 'policy.json');
}, 300_000);

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

/** What every quick start needs beside the README's own lines: the texts it reads, and a caller. */
const PREAMBLE = `
import { readFileSync as tpReadFile } from 'node:fs';
import * as tpAuthcore from 'trustplane/authcore';
import * as tpProof from 'trustplane/proof';
const trustText = tpReadFile('trust.json', 'utf8');
const policyText = tpReadFile('policy.json', 'utf8');
const audit = undefined;
const tpCaller = await tpAuthcore.parsePrivateKey(tpReadFile('caller.key', 'utf8'));
/** Headers of one signed request, as a caller with caller.key sends it. */
async function tpSigned(method, url, routeId, body) {
  const now = Math.floor(Date.now() / 1000);
  const passport = await tpAuthcore.issuePassport(
    {
      iss: 'https://issuer.example/software-jwks', sub: 'service:orders-client', aud: 'orders-api',
      iat: now, exp: now + 120, jti: crypto.randomUUID(), trust_domain: 'example.local',
      cnf: { kid: 'caller-1', key_binding: 'software', public_key_b64url: tpCaller.publicKey.x },
    },
    tpCaller,
    { kid: 'caller-1' },
  );
  const headers = body === undefined ? {} : { 'content-type': 'application/json' };
  const signed = await tpProof.signRequest({ method, url, routeId, passport, requestKey: tpCaller, headers, ...(body === undefined ? {} : { body }) });
  return { ...headers, ...signed.headers };
}
async function tpOutcome(response) {
  const text = await response.text();
  return { status: response.status, body: text };
}
`;

async function runApp(
  name: string,
  source: string,
): Promise<Record<string, { status: number; body: string }>> {
  const file = path.join(project, `${name}.ts`);
  writeFileSync(file, source);
  const signer = readFileSync(path.join(project, 'bundle-signer.pub'), 'utf8').trim();
  const { stdout } = await run(process.execPath, [TSX, file], {
    cwd: project,
    timeout: 60_000,
    env: { ...process.env, BUNDLE_SIGNER_PUBLIC_KEY: signer },
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, { status: number; body: string }>;
}

describe('the package installed into a new project', () => {
  it('pulls in none of the heavy optional integrations', () => {
    const modules = path.join(project, 'node_modules');
    for (const name of ['pg', 'ioredis', '@grpc', 'protobufjs', 'sodium-native', 'fastify']) {
      expect(existsSync(path.join(modules, name)), name).toBe(false);
    }
    // Figures of the one install this run makes (the issue measured 147 packages, 95 MB before).
    expect(figures.packages).toBeLessThan(120);
    expect(figures.nodeModulesMB).toBeLessThan(60);
  });

  it('ships LICENSE, repository and homepage, and no sourcemaps', () => {
    const installed = path.join(project, 'node_modules', 'trustplane');
    expect(readFileSync(path.join(installed, 'LICENSE'), 'utf8')).toMatch(/Apache License/);
    const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(manifest.repository).toMatchObject({ type: 'git' });
    expect(manifest.homepage).toMatch(/^https:\/\//);
    const maps: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(dir, e.name));
        else if (
          e.name.endsWith('.map') ||
          readFileSync(path.join(dir, e.name), 'utf8').includes('sourceMappingURL=')
        )
          maps.push(e.name);
      }
    };
    walk(path.join(installed, 'dist'));
    expect(maps).toEqual([]);
  });

  it('every export loads without the optional peers; using one says which package to install', async () => {
    const script = `
      for (const sub of ['', '/authcore', '/proof', '/bundle', '/verifier', '/audit', '/replay', '/runtime', '/middleware/hono', '/middleware/node', '/adapter', '/broker', '/client']) {
        await import('trustplane' + sub);
      }
      const { PostgresLedgerSink } = await import('trustplane/audit');
      try { await PostgresLedgerSink.open({ url: 'postgresql://u@127.0.0.1:1/x', chainId: 'c' }); console.log('opened'); }
      catch (e) { console.log(JSON.stringify({ reason: e.reason, message: e.message })); }
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: project });
    expect(JSON.parse(stdout.trim())).toEqual({
      reason: 'dependency_missing',
      message: 'install "pg" to use the PostgreSQL audit ledger',
    });
    const cli = await run(process.execPath, [
      path.join(project, 'node_modules/trustplane/dist/cmd/trustplane/main.js'),
      'ledger',
      'migrate',
      '--postgres',
      'postgresql://u:pw@127.0.0.1:1/x',
    ]).catch((e: { code: number; stderr: string }) => e);
    expect(cli).toMatchObject({
      code: 1,
      stderr: 'trustplane: dependency_missing: install "pg" to use the PostgreSQL audit ledger\n',
    });
  }, 60_000);

  it("the README's Hono quick start: allow, replay, tamper", async () => {
    const [library] = tsBlocks('## Library use');
    const [hono] = tsBlocks('## Middleware: Hono and Express');
    const out = await runApp(
      'hono-app',
      `${PREAMBLE}\n${library}\n${hono}\n
const url = 'http://127.0.0.1:8080/v1/orders/search';
const headers = await tpSigned('GET', url, 'orders.search');
const allow = await tpOutcome(await app.request(url, { headers }));
const replay = await tpOutcome(await app.request(url, { headers }));
const tampered = await tpOutcome(await app.request(url + '?limit=1000', { headers: await tpSigned('GET', url, 'orders.search') }));
console.log(JSON.stringify({ allow, replay, tampered }));
`,
    );
    expect(out.allow).toEqual({ status: 200, body: '{"caller":"service:orders-client"}' });
    expect(out.replay).toMatchObject({ status: 401, body: '{"allowed":false,"reason":"jti_replay"}' });
    expect(out.tampered).toMatchObject({
      status: 401,
      body: '{"allowed":false,"reason":"request_binding_mismatch"}',
    });
  }, 60_000);

  it("the README's Express quick start: allow, replay, tamper (over loopback HTTP)", async () => {
    const [library] = tsBlocks('## Library use');
    const express = tsBlocks('## Middleware: Hono and Express')[1]!;
    const out = await runApp(
      'express-app',
      `${PREAMBLE}\n${library}\n${express}\n
const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const local = 'http://127.0.0.1:' + server.address().port + '/v1/orders';
// Signed for the API's public origin (the policy's base_url); the adapter-less app takes it from there.
const signedFor = 'http://127.0.0.1:8080/v1/orders';
const body = '{"sku":"A-1","qty":2}';
const headers = await tpSigned('POST', signedFor, 'orders.create', body);
const allow = await tpOutcome(await fetch(local, { method: 'POST', headers, body }));
const replay = await tpOutcome(await fetch(local, { method: 'POST', headers, body }));
const tampered = await tpOutcome(await fetch(local, { method: 'POST', headers: await tpSigned('POST', signedFor, 'orders.create', body), body: body.replace('2', '2000') }));
server.close();
console.log(JSON.stringify({ allow, replay, tampered }));
`,
    );
    expect(out.allow).toEqual({
      status: 200,
      body: '{"caller":"service:orders-client","order":{"sku":"A-1","qty":2}}',
    });
    expect(out.replay).toMatchObject({ status: 401, body: '{"allowed":false,"reason":"jti_replay"}' });
    expect(out.tampered).toMatchObject({
      status: 401,
      body: '{"allowed":false,"reason":"request_binding_mismatch"}',
    });
  }, 60_000);
});
