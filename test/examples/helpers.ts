import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEventSchema } from '../../pkg/audit/index.js';
import { generateSigningKey } from '../../pkg/authcore/index.js';
import { sendSigned } from '../helpers/adapter.js';
import { ORIGIN, createWorld, signed, signedJson, type World } from '../helpers/fixture.js';
import { freePort } from '../helpers/redis.js';

const run = promisify(execFile);

/** The built CLI (the examples import `trustplane/...`, which resolves to dist/ too). */
export const CLI = path.resolve('dist/cmd/trustplane/main.js');

/** Epoch seconds, real clock: the example servers use the system clock. */
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** An example server running as its own OS process (`node --import tsx <script>`). */
export interface ExampleProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:<port>` once listening. */
  readonly base: string;
  /** Everything written to stdout so far (audit events). */
  stdout(): string;
  /** Everything written to stderr so far (logs). */
  stderr(): string;
  /** SIGTERM, SIGKILL after `ms`; resolves with the exit code or signal. Idempotent. */
  stop(ms?: number): Promise<number | string | null>;
}

/** The outcome of a process that was expected to exit by itself. */
export interface ExitedProcess {
  readonly code: number | string | null;
  readonly stdout: string;
  readonly stderr: string;
}

function spawnScript(script: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(script)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production', ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout = (stdout + c.toString()).slice(-200_000)));
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/**
 * Start an example server on a loopback port (PORT=0 unless `env.PORT` is given) and wait, at most
 * `timeoutMs`, for its `listening` log line.
 */
export async function startExample(
  script: string,
  env: Record<string, string>,
  timeoutMs = 20_000,
): Promise<ExampleProcess> {
  const p = spawnScript(script, { HOST: '127.0.0.1', PORT: '0', ...env });
  const stop = async (ms = 5_000) => {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    const timer = setTimeout(() => p.child.kill('SIGKILL'), ms);
    const result = await p.exited;
    clearTimeout(timer);
    return result;
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = p
      .stderr()
      .split('\n')
      .find((l) => l.includes('"msg":"listening"'));
    if (line !== undefined) {
      const { url } = JSON.parse(line) as { url: string };
      return { child: p.child, base: url, stdout: p.stdout, stderr: p.stderr, stop };
    }
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`${script} exited before listening: ${p.stderr()}`);
    }
    if (Date.now() > deadline) {
      await stop(0);
      throw new Error(`${script} did not listen within ${timeoutMs} ms: ${p.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Run an example script that should exit by itself (SIGKILL after `timeoutMs`). */
export async function runToExit(
  script: string,
  env: Record<string, string>,
  timeoutMs = 20_000,
): Promise<ExitedProcess> {
  const p = spawnScript(script, { HOST: '127.0.0.1', PORT: '0', ...env });
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** Wait (bounded) until `check` returns (or resolves to) a value other than undefined. */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A world's signed bundles and the signer's public key, written to a fresh temp dir. */
export function writeBundles(world: World) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tp-example-'));
  const trustMaterial = path.join(dir, 'trust.json');
  const policyBundle = path.join(dir, 'policy.json');
  const publicKey = path.join(dir, 'bundle-signer.pub');
  writeFileSync(trustMaterial, JSON.stringify(world.trustDoc));
  writeFileSync(policyBundle, JSON.stringify(world.policyDoc));
  writeFileSync(publicKey, `${world.bundleSigner.publicKey.x}\n`);
  return {
    dir,
    env: {
      TRUSTPLANE_TRUST_MATERIAL: trustMaterial,
      TRUSTPLANE_POLICY_BUNDLE: policyBundle,
      TRUSTPLANE_BUNDLE_PUBLIC_KEY: `@${publicKey}`,
    },
  };
}

type Signed = Awaited<ReturnType<typeof signed>>;

/** Send a fixture-signed request (signed for ORIGIN) to a server at `base`, with overrides. */
export function send(
  base: string,
  s: Signed,
  override: { body?: string; headers?: Record<string, string | null> } = {},
  body?: string,
): Promise<Response> {
  const headers = new Headers(s.headers);
  for (const [k, v] of Object.entries(override.headers ?? {})) {
    if (v === null) headers.delete(k);
    else headers.set(k, v);
  }
  const payload = override.body ?? body;
  return fetch(base + s.url.slice(ORIGIN.length), {
    method: s.method,
    headers,
    ...(payload !== undefined ? { body: payload } : {}),
    signal: AbortSignal.timeout(10_000),
  });
}

/** Audit events (JSON lines) an example wrote to stdout, each checked against the schema. */
export function auditEvents(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => auditEventSchema.parse(JSON.parse(line)) as Record<string, unknown>);
}

const CALLER = {
  subject: 'service:orders-client',
  issuer: 'https://issuer.example/software-jwks',
  trustDomain: 'example.local',
  keyBinding: 'software',
};

/**
 * The behaviour every protected example server must show, run against the real process:
 * identity on allow, 401 `jti_replay`, `request_binding_mismatch`, `missing_passport`, one audit
 * line per decision on stdout, refusal of bundles not signed by the configured key, and the
 * README's own steps (dev-bundles.ts + `trustplane sign`).
 */
export function exampleServerSuite(options: { name: string; script: string; component: string }): void {
  const { script, component } = options;

  describe(`${options.name}: protected routes over real HTTP (child process)`, () => {
    let world: World;
    let files: ReturnType<typeof writeBundles>;
    let server: ExampleProcess;
    /** Decisions sent so far, in order (the audit log must match). */
    const expected: { decision: 'allow' | 'deny'; reason?: string; route_id?: string }[] = [];
    const tokens: string[] = [];

    beforeAll(async () => {
      world = await createWorld({ issuedAt: nowSeconds() - 60 });
      files = writeBundles(world);
      server = await startExample(script, files.env);
    }, 30_000);

    afterAll(async () => {
      await server?.stop();
      if (files) rmSync(files.dir, { recursive: true, force: true });
    });

    const get = (id: string) =>
      signed(world, { target: `/v1/orders/${id}`, routeId: 'orders.get', claims: { iat: nowSeconds() } });
    const post = (body: string) => signedJson(world, body, { claims: { iat: nowSeconds() } });
    const remember = (s: Signed) => tokens.push(s.passport, s.headers['x-trustplane-proof']!);

    it('an allowed GET /v1/orders/:id answers with the verified caller identity', async () => {
      const s = await get('ord_42');
      remember(s);
      const res = await send(server.base, s);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        order: { id: 'ord_42' },
        caller: { ...CALLER, routeId: 'orders.get' },
      });
      expected.push({ decision: 'allow', route_id: 'orders.get' });
    });

    it('an allowed POST /v1/orders: the handler parses the exact verified body', async () => {
      const body = '{"sku":"A-1","quantity":2,"note":"é ✓"}';
      const s = await post(body);
      remember(s);
      const res = await send(server.base, s, {}, body);
      expect(res.status).toBe(201);
      expect(await res.json()).toEqual({
        order: JSON.parse(body),
        caller: { ...CALLER, routeId: 'orders.create' },
      });
      expected.push({ decision: 'allow', route_id: 'orders.create' });
    });

    it('attack: replay: the same signed request twice is 401 jti_replay the second time', async () => {
      const body = '{"sku":"B-2"}';
      const s = await post(body);
      remember(s);
      expect((await send(server.base, s, {}, body)).status).toBe(201);
      const replay = await send(server.base, s, {}, body);
      expect(replay.status).toBe(401);
      expect(await replay.json()).toEqual({ allowed: false, reason: 'jti_replay' });
      expect(replay.headers.get('www-authenticate')).toBe('Bearer realm="trustplane", error="invalid_token"');
      expected.push(
        { decision: 'allow', route_id: 'orders.create' },
        { decision: 'deny', reason: 'jti_replay', route_id: 'orders.create' },
      );
    });

    it('attack: tampered body: 401 request_binding_mismatch, and the jti stays unused', async () => {
      const s = await post('{"sku":"C-3","amount":"1.00"}');
      remember(s);
      const res = await send(server.base, s, {}, '{"sku":"C-3","amount":"9999.00"}');
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ allowed: false, reason: 'request_binding_mismatch' });
      // Nothing before the proof check consumes the jti: the genuine request still goes through.
      const genuine = await send(server.base, s, {}, '{"sku":"C-3","amount":"1.00"}');
      expect(genuine.status).toBe(201);
      expected.push(
        { decision: 'deny', reason: 'request_binding_mismatch', route_id: 'orders.create' },
        { decision: 'allow', route_id: 'orders.create' },
      );
    });

    it('a request without a passport is 401 missing_passport with a Bearer challenge', async () => {
      const s = await get('ord_7');
      remember(s);
      const res = await send(server.base, s, { headers: { authorization: null } });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ allowed: false, reason: 'missing_passport' });
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="trustplane"');
      const bare = await fetch(`${server.base}/v1/orders/ord_7`, { signal: AbortSignal.timeout(10_000) });
      expect(bare.status).toBe(401);
      expect(await bare.json()).toEqual({ allowed: false, reason: 'missing_passport' });
      expected.push(
        { decision: 'deny', reason: 'missing_passport' },
        { decision: 'deny', reason: 'missing_passport' },
      );
    });

    it('writes one schema-valid audit event per decision to stdout, never a passport or proof', async () => {
      const events = await eventually(() => {
        const all = auditEvents(server.stdout());
        return all.length >= expected.length ? all : undefined;
      });
      expect(events).toHaveLength(expected.length);
      events.forEach((event, i) => {
        expect(event).toMatchObject({ component, ...expected[i] });
        if (event.decision === 'allow') expect(event).toMatchObject({ sub: CALLER.subject, status: 200 });
      });
      for (const token of tokens) expect(server.stdout()).not.toContain(token);
    });

    it.each([
      ['dot segments', '/v1/orders/x/../ord_9'],
      ['encoded separator %2F', '/v1/orders/x%2F..%2Ford_9'],
      ['encoded dot segment %2E', '/v1/orders/x/%2E%2E/ord_9'],
    ])('attack: path confusion (%s): 400 unsafe_request_path, handler not run', async (_name, target) => {
      const s = await get('ord_9');
      const res = await sendSigned(server.base, s, { target });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toEqual({ allowed: false, reason: 'unsafe_request_path' });
      // The signed request itself is still unused.
      expect((await send(server.base, s)).status).toBe(200);
    });
  });

  describe(`${options.name}: refuses bundles it cannot verify (never listens)`, () => {
    let world: World;
    let files: ReturnType<typeof writeBundles>;

    beforeAll(async () => {
      world = await createWorld({ issuedAt: nowSeconds() - 60 });
      files = writeBundles(world);
    });
    afterAll(() => rmSync(files.dir, { recursive: true, force: true }));

    it('bundles signed by another key: exit 1, bundle_signature_invalid', async () => {
      const other = await generateSigningKey();
      const result = await runToExit(script, {
        ...files.env,
        TRUSTPLANE_BUNDLE_PUBLIC_KEY: other.publicKey.x,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('bundle_signature_invalid');
      expect(result.stderr).not.toContain('"msg":"listening"');
    });

    it('a policy bundle edited after signing: exit 1, bundle_signature_invalid', async () => {
      // Widen a route to another subject, keeping the original signature.
      const doc = JSON.parse(readFileSync(files.env.TRUSTPLANE_POLICY_BUNDLE, 'utf8')) as {
        route_groups: { routes: { allowed_sources: { subject_exact?: string }[] }[] }[];
      };
      doc.route_groups[0]!.routes[0]!.allowed_sources[0]!.subject_exact = 'service:attacker';
      const tampered = path.join(files.dir, 'tampered-policy.json');
      writeFileSync(tampered, JSON.stringify(doc));
      const result = await runToExit(script, { ...files.env, TRUSTPLANE_POLICY_BUNDLE: tampered });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('bundle_signature_invalid');
    });

    it('a missing setting: exit 1 naming the variable', async () => {
      const result = await runToExit(script, { ...files.env, TRUSTPLANE_BUNDLE_PUBLIC_KEY: '' });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('TRUSTPLANE_BUNDLE_PUBLIC_KEY is not set');
    });
  });

  describe(`${options.name}: the README steps`, () => {
    let dir: string;
    let server: ExampleProcess | undefined;

    beforeAll(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'tp-example-readme-'));
    });
    afterAll(async () => {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('dev-bundles.ts, the server, and a request signed with `trustplane sign --json`', async () => {
      const port = await freePort();
      const origin = `http://127.0.0.1:${port}`;
      const made = await run(
        process.execPath,
        ['--import', 'tsx', path.resolve('examples/dev-bundles.ts'), path.join(dir, 'dev'), origin],
        { timeout: 20_000 },
      );
      const env: Record<string, string> = {};
      for (const m of made.stdout.matchAll(/^export (TRUSTPLANE_[A-Z_]+)=(.+)$/gm)) env[m[1]!] = m[2]!;
      expect(Object.keys(env).sort()).toEqual([
        'TRUSTPLANE_BUNDLE_PUBLIC_KEY',
        'TRUSTPLANE_POLICY_BUNDLE',
        'TRUSTPLANE_TRUST_MATERIAL',
      ]);
      server = await startExample(script, { ...env, PORT: String(port) });
      const body = '{"sku":"A-1"}';
      const sign = await run(
        process.execPath,
        [
          CLI,
          'sign',
          '--private-key',
          `@${path.join(dir, 'dev', 'caller.key')}`,
          '--issuer',
          'https://issuer.example/software-jwks',
          '--subject',
          'service:orders-client',
          '--audience',
          'orders-api',
          '--trust-domain',
          'example.local',
          '--kid',
          'caller-1',
          '--method',
          'POST',
          '--url',
          `${origin}/v1/orders`,
          '--route-id',
          'orders.create',
          '--header',
          'Content-Type: application/json',
          '--body',
          body,
          '--json',
        ],
        { timeout: 20_000 },
      );
      const headers = JSON.parse(sign.stdout) as Record<string, string>;
      const res = await fetch(`${origin}/v1/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status).toBe(201);
      expect(await res.json()).toEqual({
        order: { sku: 'A-1' },
        caller: { ...CALLER, routeId: 'orders.create' },
      });
    });
  });
}
