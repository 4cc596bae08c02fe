import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliInProcess as cli } from '../helpers/cli.js';

/*
 * Issue 14: `trustplane test <bundle> <cases.json>` runs a policy bundle against request cases with
 * their expected decisions, prints a table and exits non-zero on a difference (the `opa test` of
 * policy bundles, for CI pipelines that change policy).
 */

const dir = mkdtempSync(path.join(tmpdir(), 'trustplane-policy-test-'));
const f = (name: string) => path.join(dir, name);
const ISSUER = 'https://issuer.example/software-jwks';

beforeAll(async () => {
  expect((await cli(['init', dir])).code).toBe(0);
  const built = await cli([
    'bundle',
    'build',
    '--config',
    f('policy.config.json'),
    '--out',
    f('policy.json'),
  ]);
  expect(built).toMatchObject({ code: 0, stderr: '' });
  const signed = await cli([
    'bundle',
    'sign',
    '--bundle',
    f('policy.json'),
    '--private-key',
    `@${f('bundle-signer.key')}`,
    '--issuer',
    'https://bundles.example',
    '--kid',
    'bundle-1',
    '--out',
    f('policy.signed.json'),
  ]);
  expect(signed.code).toBe(0);
});

const cases = [
  {
    name: 'orders client may search',
    request: { method: 'GET', path: '/v1/orders/search?q=1' },
    caller: { issuer: ISSUER, subject: 'service:orders-client' },
    expect: { decision: 'allow' },
  },
  {
    name: 'orders client may create, with a body',
    request: {
      method: 'POST',
      path: '/v1/orders',
      headers: { 'Content-Type': 'application/json' },
      body: '{"sku":"A-1"}',
    },
    caller: { issuer: ISSUER, subject: 'service:orders-client' },
    expect: { decision: 'allow' },
  },
  {
    name: 'another subject is refused',
    request: { method: 'GET', path: '/v1/orders/search' },
    caller: { issuer: ISSUER, subject: 'service:intruder' },
    expect: { decision: 'deny', reason: 'source_subject_mismatch' },
  },
  {
    name: 'no route for DELETE',
    request: { method: 'DELETE', path: '/v1/orders' },
    caller: { issuer: ISSUER, subject: 'service:orders-client' },
    expect: { decision: 'deny', reason: 'bundle_route_missing' },
  },
  {
    name: 'another issuer is refused',
    request: { method: 'GET', path: '/v1/orders/search' },
    caller: { issuer: 'https://other.example', subject: 'service:orders-client' },
    expect: { decision: 'deny', reason: 'source_issuer_mismatch' },
  },
];

describe('trustplane test', () => {
  it('all cases as expected: a table, exit 0', async () => {
    writeFileSync(f('pass.json'), JSON.stringify({ cases }));
    const r = await cli(['test', f('policy.json'), f('pass.json')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^#\s+case\s+expected\s+got\s+result$/);
    expect(lines.slice(1, -1).map((l) => l.split(/\s{2,}/).slice(-2))).toEqual([
      ['allow', 'ok'],
      ['allow', 'ok'],
      ['deny source_subject_mismatch', 'ok'],
      ['deny bundle_route_missing', 'ok'],
      ['deny source_issuer_mismatch', 'ok'],
    ]);
    expect(lines.at(-1)).toBe('5 of 5 cases as expected');
  });

  it('a difference: DIFF in the table, exit 1 with policy_test_failed', async () => {
    const wrong = [
      ...cases,
      {
        name: 'intruder expected allowed (a policy change forgot it)',
        request: { method: 'GET', path: '/v1/orders/search' },
        caller: { issuer: ISSUER, subject: 'service:intruder' },
        expect: { decision: 'allow' },
      },
      {
        name: 'right decision, wrong reason',
        request: { method: 'GET', path: '/v1/orders/search' },
        caller: { issuer: ISSUER, subject: 'service:intruder' },
        expect: { decision: 'deny', reason: 'insufficient_key_binding' },
      },
    ];
    writeFileSync(f('fail.json'), JSON.stringify({ cases: wrong }));
    const r = await cli(['test', f('policy.json'), f('fail.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('trustplane: policy_test_failed: 2 of 7 cases did not get the expected decision\n');
    const diffs = r.stdout.split('\n').filter((l) => l.endsWith('DIFF'));
    expect(diffs).toHaveLength(2);
    expect(diffs[0]).toMatch(/allow\s+deny source_subject_mismatch\s+DIFF$/);
    const json = await cli(['test', f('policy.json'), f('fail.json'), '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ cases: 7, failed: 2 });
  });

  it('checks the signature when given --public-key (a wrong key is refused)', async () => {
    writeFileSync(f('pass.json'), JSON.stringify({ cases }));
    const ok = await cli([
      'test',
      f('policy.signed.json'),
      f('pass.json'),
      '--public-key',
      `@${f('bundle-signer.pub')}`,
    ]);
    expect(ok.code).toBe(0);
    const bad = await cli([
      'test',
      f('policy.signed.json'),
      f('pass.json'),
      '--public-key',
      `@${f('caller.pub')}`,
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^trustplane: bundle_signature_invalid: /);
  });

  it('a malformed cases file is a one-line usage error', async () => {
    writeFileSync(
      f('bad.json'),
      JSON.stringify({ cases: [{ request: {}, caller: {}, expect: { decision: 'maybe' } }] }),
    );
    const r = await cli(['test', f('policy.json'), f('bad.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('trustplane: usage: cases[0].expect.decision must be "allow" or "deny"\n');
  });
});
