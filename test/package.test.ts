import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The package as a user installs it: `npm pack`, unpacked into a consumer's node_modules, then every
// subpath of the exports map imported by name. The consumer lives under .tmp/ inside the
// repository so that the package's own dependencies resolve from the repository's node_modules
// (no registry access in tests). Needs `npm run build` first (the test script runs it).

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, unknown>;
  bin: Record<string, string>;
};

/** One export each subpath must have (a smoke test that the entry is the right module). */
const EXPECTED: Record<string, string> = {
  '.': 'createEnforcementKernel',
  './authcore': 'verifyPassport',
  './proof': 'buildTranscript',
  './bundle': 'loadPolicyBundle',
  './verifier': 'verifyRequest',
  './audit': 'auditEventFromDecision',
  './replay': 'RedisReplayStore',
  './runtime': 'BundleManager',
  './middleware/hono': 'trustplane',
  './middleware/node': 'trustplane',
  './middleware/fastify': 'trustplane',
  './adapter': 'startAdapter',
  './broker': 'Broker',
  './client': 'ProtectedClient',
  './mcp': 'decideMcp',
};

let consumer: string;
let tarball: string;

beforeAll(async () => {
  mkdirSync(path.join(ROOT, '.tmp'), { recursive: true });
  consumer = mkdtempSync(path.join(ROOT, '.tmp', 'pack-consumer-'));
  expect(existsSync(path.join(ROOT, 'dist/pkg/index.js')), 'run npm run build first').toBe(true);
  // --ignore-scripts: prepack (npm run build) would delete dist/ under the other tests' feet.
  const { stdout } = await run(
    'npm',
    ['pack', '--ignore-scripts', '--json', '--pack-destination', consumer],
    {
      cwd: ROOT,
    },
  );
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
  tarball = path.join(consumer, filename);
  const installed = path.join(consumer, 'node_modules', manifest.name);
  mkdirSync(installed, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
}, 120_000);

afterAll(() => {
  if (consumer) rmSync(consumer, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('the test covers every subpath of the exports map', () => {
    const subpaths = Object.keys(manifest.exports).filter((k) => k !== './package.json');
    expect(subpaths.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it('imports every subpath by its package name, from the tarball', async () => {
    const checks = Object.entries(EXPECTED).map(([sub, name]) => [
      sub === '.' ? manifest.name : `${manifest.name}/${sub.slice(2)}`,
      name,
    ]);
    const script = `
      const checks = ${JSON.stringify(checks)};
      const out = {};
      for (const [spec, name] of checks) {
        const m = await import(spec);
        out[spec] = typeof m[name];
      }
      console.log(JSON.stringify(out));
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: consumer });
    const types = JSON.parse(stdout) as Record<string, string>;
    for (const [spec] of checks) expect(types[spec!], spec).toBe('function');
  }, 60_000);

  it('ships the CLI: trustplane --version answers from the tarball', async () => {
    const bin = path.join(consumer, 'node_modules', manifest.name, manifest.bin.trustplane!);
    const { stdout } = await run(process.execPath, [bin, '--version'], { cwd: consumer });
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('ships no sources, tests or keys: only dist, schemas, the vendored protos and the docs it lists', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball]);
    const files = stdout.trim().split('\n');
    expect(
      files.filter(
        (f) =>
          !/^package\/(dist\/(pkg|cmd)\/|schemas\/|protos\/|README\.md$|SECURITY\.md$|LICENSE$|package\.json$)/.test(
            f,
          ),
      ),
    ).toEqual([]);
    // The ext_authz gRPC listener loads these at run time, with their licences.
    expect(files).toEqual(
      expect.arrayContaining([
        'package/protos/envoy-ext-authz/envoy/service/auth/v3/external_auth.proto',
        'package/protos/envoy-ext-authz/LICENSE',
        'package/protos/grpc-health/grpc/health/v1/health.proto',
        'package/protos/grpc-health/LICENSE',
      ]),
    );
    expect(files.filter((f) => /\.(key|pem)$|\.test\.|\/test\//.test(f))).toEqual([]);
  });
});
