import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, type SigningKey } from '../../pkg/authcore/index.js';
import { loadPolicyBundle } from '../../pkg/bundle/index.js';
import { CLI } from '../helpers/adapter-process.js';
import { createWorld, type World } from '../helpers/fixture.js';
import { freePort } from '../helpers/redis.js';

// `trustplane bundle serve` as a process: bearer auth, strong ETags, 304, long-poll answered at
// once on a config change, re-signing on its schedule, a bad edit that keeps the last good document.

const TOKEN = 'test-token-0123456789abcdef';
let world: World;
let signer: SigningKey;
let dir: string;
let policyConfig: string;
let child: ChildProcess;
let stderr = '';
let base: string;

function policyConfigDoc(revocations: unknown[] = []) {
  return {
    trust_domain: 'example.local',
    apis: world.policyDoc.apis,
    route_groups: world.policyDoc.route_groups,
    // 3 s limit: re-signed every second.
    defaults: { required_key_binding: 'software', freshness_class: 'bounded', max_staleness_seconds: 3 },
    revocations,
  };
}

function writeAtomic(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

const get = (p: string, headers: Record<string, string> = {}) =>
  fetch(`${base}${p}`, { headers: { authorization: `Bearer ${TOKEN}`, ...headers } });

beforeAll(async () => {
  world = await createWorld();
  signer = await generateSigningKey();
  dir = mkdtempSync(path.join(tmpdir(), 'tp-bundle-serve-'));
  const trustConfig = path.join(dir, 'trust.config.json');
  policyConfig = path.join(dir, 'policy.config.json');
  writeFileSync(
    trustConfig,
    JSON.stringify({ trust_domain: 'example.local', issuers: world.trustDoc.issuers }),
  );
  writeFileSync(policyConfig, JSON.stringify(policyConfigDoc()));
  writeFileSync(path.join(dir, 'signer.key'), signer.exportKeyText(), { mode: 0o600 });
  writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(
    process.execPath,
    [
      CLI,
      'bundle',
      'serve',
      '--trust-config',
      trustConfig,
      '--policy-config',
      policyConfig,
      '--private-key',
      `@${path.join(dir, 'signer.key')}`,
      '--issuer',
      'https://bundles.example',
      '--kid',
      'bundle-signer-1',
      '--listen',
      `127.0.0.1:${port}`,
      '--token',
      `@${path.join(dir, 'token')}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`bundle serve exited: ${stderr}`);
    try {
      if ((await fetch(`${base}/healthz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`bundle serve did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 30_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});

describe('trustplane bundle serve', () => {
  it('serves signed documents behind a bearer token, with a strong ETag and 304', async () => {
    expect((await fetch(`${base}/policy-bundle.json`)).status).toBe(401);
    const wrong = await fetch(`${base}/policy-bundle.json`, {
      headers: { authorization: 'Bearer nope-nope-nope-nope' },
    });
    expect([wrong.status, wrong.headers.get('www-authenticate')]).toEqual([
      401,
      'Bearer realm="trustplane-bundles"',
    ]);
    const res = await get('/policy-bundle.json');
    expect(res.status).toBe(200);
    const bytes = Buffer.from(await res.arrayBuffer());
    const etag = res.headers.get('etag')!;
    expect(etag).toBe(`"sha256-${createHash('sha256').update(bytes).digest('hex')}"`);
    const policy = await loadPolicyBundle(JSON.parse(bytes.toString()), {
      signers: [{ kid: 'bundle-signer-1', key: signer.publicKey }],
    });
    expect(Math.abs(policy.issuedAt! - Date.now() / 1000)).toBeLessThan(5);
    expect((await get('/policy-bundle.json', { 'if-none-match': etag })).status).toBe(304);
    expect((await get('/trust-material.json')).status).toBe(200);
    expect((await get('/nope.json')).status).toBe(404);
    expect(stderr).not.toContain(TOKEN);
  });

  it('re-signs on its schedule: a third of the 3 s limit', async () => {
    const first = (await (await get('/policy-bundle.json')).json()) as { issued_at: number };
    await new Promise((r) => setTimeout(r, 2_200));
    const second = (await (await get('/policy-bundle.json')).json()) as { issued_at: number };
    expect(second.issued_at).toBeGreaterThan(first.issued_at);
  });

  it('a long-poll returns 304 at the end of its wait, and at once with the new document on a config change', async () => {
    let etag = (await get('/policy-bundle.json')).headers.get('etag')!;
    // Re-signing every second changes the ETag: wait for the one just published.
    const idle = await get('/policy-bundle.json?wait=1', { 'if-none-match': etag });
    expect([200, 304]).toContain(idle.status);
    expect(idle.headers.get('preference-applied')).toBe('wait=1');
    etag = idle.headers.get('etag')!;
    const started = Date.now();
    const pending = get('/policy-bundle.json', { 'if-none-match': etag, prefer: 'wait=20' });
    setTimeout(
      () =>
        writeAtomic(policyConfig, JSON.stringify(policyConfigDoc([{ kind: 'subject', value: 'service:x' }]))),
      100,
    );
    let res = await pending;
    // A scheduled re-sign may answer first; the change is published within the next long-poll.
    let body = (await res.json()) as { revocations: unknown[] };
    for (let i = 0; i < 3 && body.revocations.length === 0; i++) {
      res = await get('/policy-bundle.json', {
        'if-none-match': res.headers.get('etag')!,
        prefer: 'wait=20',
      });
      body = (await res.json()) as { revocations: unknown[] };
    }
    expect(res.status).toBe(200);
    expect(body.revocations).toEqual([{ kind: 'subject', value: 'service:x' }]);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('a bad config edit keeps the last good document and is counted', async () => {
    const before = (await (await get('/policy-bundle.json')).json()) as { revocations: unknown[] };
    writeAtomic(policyConfig, '{ not json');
    await new Promise((r) => setTimeout(r, 1_500));
    const res = await get('/policy-bundle.json');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { revocations: unknown[] }).revocations).toEqual(before.revocations);
    const metrics = await (await get('/metrics')).text();
    expect(metrics).toMatch(
      /trustplane_bundle_server_publications_total\{trigger="watch",result="failure"\} [1-9]/,
    );
    expect(stderr).toContain('publication failed; serving the last good documents');
    writeAtomic(policyConfig, JSON.stringify(policyConfigDoc()));
  });
});
