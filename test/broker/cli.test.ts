import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePassportUnverified, MemoryReplayStore } from '../../pkg/authcore/index.js';
import { auditEventSchema } from '../../pkg/audit/index.js';
import { verifyRequest } from '../../pkg/verifier/index.js';
import { writeWorld } from '../helpers/adapter.js';
import { CLI } from '../helpers/adapter-process.js';
import {
  BROKER_ISSUER,
  ORIGIN,
  TRUST_DOMAIN,
  allowBrokerOn,
  createWorld,
  type World,
} from '../helpers/fixture.js';
import { mintSpiffeChain } from '../helpers/x509.js';

// The built CLI runs as a real process: real clock, real Unix socket, real SVID files.
const now = () => Math.floor(Date.now() / 1000);
const WORKER = 'spiffe://example.local/ns/orders/sa/worker';
const REMOTE = 'spiffe://example.local/ns/orders/sa/remote-caller';
let callerDir: string;

let world: World;
let files: ReturnType<typeof writeWorld>;
let socket: string;
let auditFile: string;
let broker: ChildProcess;
let brokerStderr = '';

function run(args: readonly string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
}

beforeAll(async () => {
  world = await createWorld({
    issuedAt: now() - 60,
    policyPatch: allowBrokerOn(['orders.create'], { required_key_binding: 'attested_workload' }),
  });
  files = writeWorld(world);
  const keyFile = path.join(files.dir, 'broker.key');
  writeFileSync(keyFile, world.broker.exportKeyText(), { mode: 0o600 });
  const svidDir = mkdtempSync(path.join(files.dir, 'svid-'));
  const chain = mintSpiffeChain({ trustDomain: TRUST_DOMAIN, spiffeId: WORKER });
  // A remote caller's SVID under the same root, for network mode.
  callerDir = mkdtempSync(path.join(files.dir, 'caller-'));
  const caller = mintSpiffeChain({ trustDomain: TRUST_DOMAIN, spiffeId: REMOTE, root: chain.root });
  writeFileSync(path.join(callerDir, 'svid.pem'), caller.chainPem);
  writeFileSync(path.join(callerDir, 'svid_key.pem'), caller.leafKey.pkcs8Pem, { mode: 0o600 });
  writeFileSync(path.join(callerDir, 'svid_bundle.pem'), caller.bundlePem);
  writeFileSync(path.join(svidDir, 'svid.pem'), chain.chainPem);
  writeFileSync(path.join(svidDir, 'svid_key.pem'), chain.leafKey.pkcs8Pem, { mode: 0o600 });
  writeFileSync(path.join(svidDir, 'svid_bundle.pem'), chain.bundlePem);
  socket = path.join(files.dir, 'broker.sock');
  auditFile = path.join(files.dir, 'broker-audit.jsonl');
  broker = spawn(
    process.execPath,
    [
      CLI,
      'broker',
      'serve',
      '--socket',
      socket,
      '--issuer',
      BROKER_ISSUER,
      '--kid',
      'broker-1',
      '--private-key',
      `@${keyFile}`,
      '--identity',
      'spiffe-files',
      '--svid-dir',
      svidDir,
      '--trust-material',
      files.trustMaterial,
      '--policy-bundle',
      files.policyBundle,
      '--bundle-public-key',
      files.signerKey,
      '--audit',
      auditFile,
      '--reload-interval-ms',
      '0',
      '--tls-listen',
      '127.0.0.1:0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  broker.stderr!.on('data', (c: Buffer) => (brokerStderr += c.toString()));
  const deadline = Date.now() + 15_000;
  while (!existsSync(socket) || !brokerStderr.includes('broker TLS listening')) {
    if (broker.exitCode !== null) throw new Error(`broker exited: ${brokerStderr}`);
    if (Date.now() > deadline) throw new Error(`broker did not start: ${brokerStderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(() => {
  if (broker.exitCode === null) broker.kill('SIGKILL');
});

const BODY = '{"sku":"A-1","qty":2}';
const URL_ = `${ORIGIN}/v1/orders?b=2&a=1`;

function issue(extra: readonly string[] = []) {
  return run([
    'broker',
    'issue',
    '--socket',
    socket,
    '--audience',
    'orders-api',
    '--method',
    'POST',
    '--url',
    URL_,
    '--route-id',
    'orders.create',
    '--header',
    'Content-Type: application/json',
    '--body',
    BODY,
    '--ctx',
    'purpose=create_order',
    '--json',
    ...extra,
  ]);
}

function request(headers: Record<string, string>, override: { url?: string; body?: string } = {}) {
  return new Request(override.url ?? URL_, { method: 'POST', headers, body: override.body ?? BODY });
}

const verifier = () => ({
  trust: world.trust,
  policy: world.policy,
  replayStore: new MemoryReplayStore(),
  clock: now,
});

describe('trustplane broker over a real Unix socket', () => {
  it('serves on an owner-only socket', () => {
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(brokerStderr).toContain('broker listening');
    expect(brokerStderr).toContain(WORKER);
  });

  it('`broker issue` gets a passport + stamp the verifier accepts for that exact request only', async () => {
    const out = issue();
    expect(out.status, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout) as { passport: string; headers: Record<string, string> };
    const claims = decodePassportUnverified(result.passport).payload;
    expect(claims).toMatchObject({
      iss: BROKER_ISSUER,
      sub: WORKER,
      aud: 'orders-api',
      cnf: { key_binding: 'attested_workload' },
      provenance: { posture: 'spiffe_svid_verified', spiffe_id: WORKER },
      ctx: { purpose: 'create_order' },
    });
    const allowed = await verifyRequest(request(result.headers), verifier());
    expect(allowed).toMatchObject({ allowed: true, subject: WORKER, keyBinding: 'attested_workload' });

    for (const other of [
      request(result.headers, { body: '{"sku":"A-1","qty":3}' }),
      request(result.headers, { url: `${ORIGIN}/v1/orders?b=2&a=2` }),
      request({ ...result.headers, 'content-type': 'text/plain' }),
    ]) {
      expect(await verifyRequest(other, verifier())).toMatchObject({
        allowed: false,
        reason: 'request_binding_mismatch',
      });
    }
    // The same request a second time is a replay for one verifier.
    const store = new MemoryReplayStore();
    const first = await verifyRequest(request(result.headers), { ...verifier(), replayStore: store });
    const second = await verifyRequest(request(result.headers), { ...verifier(), replayStore: store });
    expect([first.allowed, second.allowed]).toEqual([true, false]);
  });

  it('network mode: `broker issue --connect` over mutual TLS gets a passport for the caller SPIFFE ID', async () => {
    const address = /"msg":"broker TLS listening","address":"([0-9.]+:\d+)"/.exec(brokerStderr)?.[1];
    expect(address).toBeDefined();
    const out = issue(['--connect', address!, '--broker-spiffe-id', WORKER, '--svid-dir', callerDir]);
    expect(out.status, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout) as { passport: string; headers: Record<string, string> };
    expect(decodePassportUnverified(result.passport).payload).toMatchObject({
      sub: REMOTE,
      provenance: { spiffe_id: REMOTE, peer: REMOTE },
    });
    expect(await verifyRequest(request(result.headers), verifier())).toMatchObject({
      allowed: true,
      subject: REMOTE,
    });
    const impostor = issue([
      '--connect',
      address!,
      '--broker-spiffe-id',
      'spiffe://example.local/other',
      '--svid-dir',
      callerDir,
    ]);
    expect(impostor.status).toBe(1);
    expect(impostor.stderr).toMatch(/broker_unreachable: .*another SPIFFE ID/);
  });

  it('prints curl and header forms', () => {
    const curl = run([
      'broker',
      'issue',
      '--socket',
      socket,
      '--audience',
      'orders-api',
      '--method',
      'POST',
      '--url',
      URL_,
      '--route-id',
      'orders.create',
      '--body',
      BODY,
      '--header',
      'Content-Type: application/json',
      '--curl',
    ]);
    expect(curl.status, curl.stderr).toBe(0);
    expect(curl.stdout).toMatch(
      /^curl -sS --path-as-is -X POST 'https:\/\/orders\.example\/v1\/orders\?b=2&a=1'/,
    );
    expect(curl.stdout).toContain("-H 'x-trustplane-proof: ");
  });

  it('exits 1 with the reason code when the broker refuses', () => {
    const out = run([
      'broker',
      'issue',
      '--socket',
      socket,
      '--audience',
      'orders-api',
      '--method',
      'POST',
      '--url',
      `${ORIGIN}/v1/orders/o-1/approve`,
      '--route-id',
      'orders.secure',
    ]);
    expect(out.status).toBe(1);
    expect(out.stderr).toMatch(/^trustplane: source_issuer_mismatch: /);
    const unsafe = run([
      'broker',
      'issue',
      '--socket',
      socket,
      '--audience',
      'orders-api',
      '--url',
      `${ORIGIN}/v1/orders/../admin`,
      '--route-id',
      'orders.search',
    ]);
    expect(unsafe.status).toBe(1);
    expect(unsafe.stderr).toMatch(/unsafe_request_path/);
    const missing = run([
      'broker',
      'issue',
      '--socket',
      path.join(files.dir, 'nobody.sock'),
      '--audience',
      'orders-api',
      '--url',
      `${ORIGIN}/v1/orders/search`,
      '--route-id',
      'orders.search',
    ]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^trustplane: broker_unreachable: /);
  });

  it('writes one audit event per decision, without credentials', () => {
    const lines = readFileSync(auditFile, 'utf8').trim().split('\n');
    const events = lines.map((l) => auditEventSchema.parse(JSON.parse(l)));
    expect(events.filter((e) => e.event_type === 'passport_issued').length).toBeGreaterThanOrEqual(2);
    expect(events.find((e) => e.event_type === 'passport_denied')).toMatchObject({
      component: 'broker',
      decision: 'deny',
      reason: 'source_issuer_mismatch',
      route_id: 'orders.secure',
    });
    expect(lines.join('\n')).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\./);
  });

  it('reports every config problem on its own line, exit 2', () => {
    const out = run(['broker', 'serve', '--identity', 'spiffe-files']);
    expect(out.status).toBe(2);
    const problems = out.stderr.trim().split('\n');
    expect(problems.length).toBeGreaterThanOrEqual(5);
    for (const line of problems) expect(line).toMatch(/^trustplane: config: /);
    expect(out.stderr).toContain('--issuer is required');
    expect(out.stderr).toContain('--svid-cert or --svid-dir is required');
  });

  it('has --help with an example for serve and issue', () => {
    for (const verb of ['serve', 'issue']) {
      const out = run(['broker', verb, '--help']);
      expect(out.status).toBe(0);
      expect(out.stdout).toContain('Example:');
      expect(out.stdout).toContain(`trustplane broker ${verb}`);
    }
  });

  it('stops on SIGTERM with exit 0 and removes its socket', async () => {
    const exited = new Promise<number | null>((r) => broker.once('exit', (code) => r(code)));
    broker.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });
});
