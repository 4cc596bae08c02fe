import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { verifyRequest } from '../../pkg/verifier/index.js';
import { startTestAdapter, sendSigned, type TestAdapter } from '../helpers/adapter.js';
import { cliInProcess as cli } from '../helpers/cli.js';
import { createWorld, NOW, ORIGIN, signed, toRequest, type World } from '../helpers/fixture.js';

/*
 * Issue 14, point 4: a request_binding_mismatch explains itself. The deny names the transcript
 * inputs the verifier used (origin and where it came from: publicOrigin, base_url or Host; method,
 * path, normalized query, covered header names, body digest), in the decision, in the adapter's
 * decision log and in `trustplane explain`, and never a secret.
 */

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** No proof material in a text: passport, proof, nonce. */
function expectNoSecrets(text: string, headers: Readonly<Record<string, string>>): void {
  for (const [name, value] of Object.entries(headers)) {
    if (/^(authorization|x-trustplane-(proof|nonce))$/i.test(name)) {
      expect(text).not.toContain(value.replace(/^Bearer /, ''));
    }
  }
}

let world: World;
beforeAll(async () => {
  world = await createWorld();
});

describe('the decision of a binding mismatch names the transcript inputs', () => {
  it('origin from base_url, normalized query, covered header names, body digest', async () => {
    const s = await signed(world, { target: '/v1/orders/search?b=2&a=1' });
    const decision = await verifyRequest(toRequest(s, { url: `${ORIGIN}/v1/orders/search?a=1&b=3` }), {
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
    });
    expect(decision).toMatchObject({ allowed: false, reason: 'request_binding_mismatch', stage: 'proof' });
    if (decision.allowed) return;
    expect(decision.details).toEqual({
      origin: ORIGIN,
      origin_from: 'base_url',
      method: 'GET',
      path: '/v1/orders/search',
      query: 'a=1&b=3',
      covered_headers: expect.any(String) as string,
      body_sha256: sha256(''),
    });
    expectNoSecrets(JSON.stringify(decision.details), s.headers);
  });

  it('attack: a caller that signed another origin: origin and origin_from publicOrigin', async () => {
    const s = await signed(world);
    const decision = await verifyRequest(toRequest(s), {
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
      publicOrigin: 'https://api.example',
    });
    expect(decision).toMatchObject({ allowed: false, reason: 'request_binding_mismatch' });
    if (decision.allowed) return;
    expect(decision.details).toMatchObject({ origin: 'https://api.example', origin_from: 'publicOrigin' });
  });
});

describe('the adapter logs it', () => {
  let running: TestAdapter | undefined;
  afterAll(async () => {
    await running?.adapter.close();
  });

  it('the decision line of a deny carries the message and detail_* fields', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('info', {
      write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>),
    });
    running = await startTestAdapter(world, { upstream: 'http://127.0.0.1:9' }, undefined, log);
    const s = await signed(world, { target: '/v1/orders/search?a=1' });
    const r = await sendSigned(running.base, s, { target: '/v1/orders/search?a=2' });
    expect(r.status).toBe(401);
    const decision = lines.find((l) => l.msg === 'decision' && l.reason === 'request_binding_mismatch');
    expect(decision).toMatchObject({
      message: 'request differs from the signed transcript',
      detail_origin: ORIGIN,
      detail_origin_from: 'base_url',
      detail_path: '/v1/orders/search',
      detail_query: 'a=2',
      detail_body_sha256: sha256(''),
    });
    expectNoSecrets(JSON.stringify(lines), s.headers);
  }, 60_000);
});

describe('trustplane explain', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'trustplane-explain-'));
  const f = (name: string) => path.join(dir, name);
  const URL = 'http://127.0.0.1:8080/v1/orders';
  const passportFlags = () => [
    '--private-key',
    `@${f('caller.key')}`,
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
  ];
  const bundleFlags = () => [
    '--trust-material',
    f('trust.json'),
    '--policy-bundle',
    f('policy.json'),
    '--bundle-public-key',
    `@${f('bundle-signer.pub')}`,
  ];
  let headers: Record<string, string>;

  beforeAll(async () => {
    expect((await cli(['init', dir])).code).toBe(0);
    const sign = [
      '--private-key',
      `@${f('bundle-signer.key')}`,
      '--issuer',
      'https://bundles.example',
      '--kid',
      'bundle-1',
    ];
    for (const args of [
      [
        'bundle',
        'build',
        '--kind',
        'trust-material',
        '--config',
        f('trust.config.json'),
        '--out',
        f('trust.json'),
      ],
      ['bundle', 'sign', '--bundle', f('trust.json'), ...sign, '--out', f('trust.json')],
      ['bundle', 'build', '--config', f('policy.config.json'), '--out', f('policy.json')],
      ['bundle', 'sign', '--bundle', f('policy.json'), ...sign, '--out', f('policy.json')],
    ]) {
      expect(await cli(args)).toMatchObject({ code: 0 });
    }
    const s = await cli([
      'sign',
      ...passportFlags(),
      '--method',
      'POST',
      '--url',
      URL,
      '--route-id',
      'orders.create',
      '--header',
      'Content-Type: application/json',
      '--body',
      '{"qty":2}',
      '--json',
    ]);
    expect(s.code).toBe(0);
    headers = JSON.parse(s.stdout) as Record<string, string>;
    writeFileSync(f('signed.json'), s.stdout);
  });

  const request = (body: string, extra: string[] = []) => [
    'explain',
    '--signed',
    `@${f('signed.json')}`,
    '--method',
    'POST',
    '--url',
    URL,
    '--header',
    'Content-Type: application/json',
    '--body',
    body,
    ...bundleFlags(),
    ...extra,
  ];

  it('the request as signed: every stage ok, allow, exit 0', async () => {
    const r = await cli(request('{"qty":2}'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const stages = r.stdout
      .split('\n')
      .slice(1, -2)
      .map((l) => l.split(/\s+/).slice(0, 2).join(' '));
    expect(stages).toEqual([
      'parse ok',
      'path ok',
      'route ok',
      'passport ok',
      'policy ok',
      'freshness ok',
      'proof ok',
      'replay ok',
    ]);
    expect(r.stdout).toMatch(/\ndecision {2}allow 200 \(service:orders-client on orders\.create\)\n$/);
  });

  it('a tampered body: proof FAIL with the inputs used, later stages not reached, exit 1, no secret', async () => {
    const r = await cli(request('{"qty":2000}'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('trustplane: request_binding_mismatch: denied at the proof stage (above)\n');
    expect(r.stdout).toMatch(/\nproof {5}FAIL {2}request_binding_mismatch: body digest mismatch\n/);
    expect(r.stdout).toMatch(/origin {12}http:\/\/127\.0\.0\.1:8080\n/);
    expect(r.stdout).toMatch(/origin taken from {1}base_url\n/);
    expect(r.stdout).toContain(`body sha256       ${sha256('{"qty":2000}')}`);
    expect(r.stdout).toMatch(/covered headers {3}\S*content-type/);
    expect(r.stdout).toMatch(/\nreplay {4}not reached\n/);
    expectNoSecrets(r.stdout + r.stderr, headers);
  });

  it('another public origin: the origin and that it came from publicOrigin', async () => {
    const r = await cli(request('{"qty":2}', ['--public-origin', 'https://orders.example']));
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/origin {12}https:\/\/orders\.example\n/);
    expect(r.stdout).toMatch(/origin taken from {1}publicOrigin\n/);
  });
});
