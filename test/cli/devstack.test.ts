import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../pkg/authcore/index.js';
import { auditEventSchema } from '../../pkg/audit/index.js';
import { CLI } from '../helpers/adapter-process.js';

// `trustplane up` and `trustplane demo` as a newcomer runs them: the built CLI, real processes,
// real loopback HTTP, a real Unix socket, the real clock.

function demo(dir: string) {
  return spawnSync(process.execPath, [CLI, 'demo', '--dir', dir], { encoding: 'utf8', timeout: 60_000 });
}

function lines(file: string) {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
}

async function until(check: () => boolean, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('trustplane demo', () => {
  it('starts its own stack, every step behaves as documented, exit 0, audit events on disk', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-demo-test-'));
    const out = demo(dir);
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('starting one for this demo');
    for (const row of [
      /allowed call .* 200 as service:demo-client \(software\)\s+ok/,
      /replay of that exact request .* 401 jti_replay\s+ok/,
      /tampered body .* 401 request_binding_mismatch\s+ok/,
      /route outside policy .* 403 bundle_route_missing\s+ok/,
      /insufficient signer class .* 403 insufficient_key_binding\s+ok/,
      /broker-issued call .* 200 as spiffe:\/\/demo\.trustplane\.local\/ns\/demo\/sa\/worker \(attested_workload\)\s+ok/,
      /MCP tool call allowed .* 200 transferred 50 to acct-7\s+ok/,
      /MCP argument over its limit .* 200 JSON-RPC error mcp_argument_denied\s+ok/,
      /audit events written .* adapter 8, broker 1\s+ok/,
    ]) {
      expect(out.stdout).toMatch(row);
    }
    expect(out.stdout).toContain('9/9 steps behaved as documented.');
    expect(out.stdout).not.toContain('UNEXPECTED');

    // The audit events the table points at: one per decision, valid, no credentials.
    const adapter = lines(path.join(dir, 'audit', 'adapter.jsonl')).map((l) =>
      auditEventSchema.parse(JSON.parse(l)),
    );
    expect(adapter.map((e) => e.reason ?? e.decision)).toEqual([
      'allow',
      'jti_replay',
      'request_binding_mismatch',
      'bundle_route_missing',
      'insufficient_key_binding',
      'allow',
      'allow',
      'mcp_argument_denied',
    ]);
    const broker = lines(path.join(dir, 'audit', 'broker.jsonl')).map((l) =>
      auditEventSchema.parse(JSON.parse(l)),
    );
    expect(broker).toHaveLength(1);
    expect(broker[0]).toMatchObject({
      event_type: 'passport_issued',
      sub: 'spiffe://demo.trustplane.local/ns/demo/sa/worker',
    });
    // Stopped at the end: nothing claims to be running any more.
    expect(existsSync(path.join(dir, 'stack.json'))).toBe(false);
    // Keys are owner-only.
    expect(readFileSync(path.join(dir, 'keys', 'caller.key'), 'utf8').length).toBeGreaterThan(40);
  }, 90_000);
});

describe('trustplane up', () => {
  it('runs the stack until SIGTERM; demo uses it; an unexpected outcome makes demo exit 1', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-up-test-'));
    const up = spawn(
      process.execPath,
      [
        CLI,
        'up',
        '--dir',
        dir,
        '--listen',
        '127.0.0.1:0',
        '--admin-listen',
        '127.0.0.1:0',
        '--upstream-listen',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    up.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    up.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => up.once('exit', (code) => r(code)));
    try {
      await until(() => stdout.includes('Ctrl-C stops everything.') || up.exitCode !== null, 30_000, 'up');
      expect(stderr).toBe('');
      const info = JSON.parse(readFileSync(path.join(dir, 'stack.json'), 'utf8')) as {
        adapter: string;
        admin: string;
        brokerSocket: string;
        callerKeyFile: string;
      };
      expect(stdout).toContain(info.adapter);
      expect(stdout).toContain(info.brokerSocket);
      expect(stdout).toContain(`trustplane demo --dir ${dir}`);
      expect((await fetch(`${info.admin}/readyz`)).status).toBe(200);

      const first = demo(dir);
      expect(first.status, first.stdout + first.stderr).toBe(0);
      expect(first.stdout).toContain(`Using the dev stack running for ${dir}`);
      expect(first.stdout).toContain('9/9 steps behaved as documented.');

      // Point the demo at a caller key the trust material does not list: the software steps can
      // no longer behave as documented, and the demo must say so and exit 1.
      const stranger = await generateSigningKey();
      const strangerFile = path.join(dir, 'stranger.key');
      writeFileSync(strangerFile, stranger.exportKeyText(), { mode: 0o600 });
      writeFileSync(path.join(dir, 'stack.json'), JSON.stringify({ ...info, callerKeyFile: strangerFile }));
      const broken = demo(dir);
      expect(broken.status, broken.stdout).toBe(1);
      expect(broken.stdout).toMatch(/allowed call .* 401 invalid_passport_signature\s+UNEXPECTED/);
      expect(broken.stdout).toMatch(/steps did NOT behave as documented/);
      expect(broken.stderr).toMatch(/^trustplane: demo_failed: 6 of 9 demo steps/);
    } finally {
      up.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
    expect(stdout).toContain('stopping');
    expect(existsSync(path.join(dir, 'stack.json'))).toBe(false);
  }, 120_000);
});
