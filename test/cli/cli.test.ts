import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import {
  loadPolicyBundle,
  loadTrustMaterial,
  type LoadedPolicy,
  type LoadedTrustMaterial,
} from '../../pkg/bundle/index.js';
import { verifyRequest, type Decision } from '../../pkg/verifier/index.js';
import { cliInProcess } from '../helpers/cli.js';
import { DEV_ISSUER, devPolicyConfig, devTrustConfig } from '../../scripts/dev-configs.js';

const dir = mkdtempSync(path.join(tmpdir(), 'trustplane-cli-'));
const f = (name: string) => path.join(dir, name);

/** Verbs run in-process (test/helpers/cli.ts): ~40 processes were slow on a loaded 2-core machine. */
async function cli(args: string[]) {
  return cliInProcess(args);
}
async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  expect(r.stderr, r.stderr).not.toMatch(/trustplane: (?!WARNING)/);
  expect(r.code).toBe(0);
  return r.stdout;
}

const ISSUER = DEV_ISSUER;
const passportFlags = [
  '--private-key',
  `@${f('caller.key')}`,
  '--issuer',
  ISSUER,
  '--subject',
  'service:orders-client',
  '--audience',
  'orders-api',
  '--trust-domain',
  'example.local',
  '--kid',
  'caller-1',
];
let callerPub: string;
let signerPub: string;
let trust: LoadedTrustMaterial;
let policy: LoadedPolicy;
const NOW = Math.floor(Date.now() / 1000);

beforeAll(async () => {
  const caller = JSON.parse(await ok(['gen-key', '--out', f('caller.key'), '--kid', 'caller-1'])) as {
    public_key: string;
  };
  callerPub = caller.public_key;
  const signer = JSON.parse(await ok(['gen-key', '--out', f('signer.key')])) as { public_key: string };
  signerPub = signer.public_key;
  writeFileSync(f('trust.config.json'), JSON.stringify(devTrustConfig(callerPub)));
  writeFileSync(f('policy.config.json'), JSON.stringify(devPolicyConfig()));
  await ok([
    'bundle',
    'build',
    '--kind',
    'trust-material',
    '--config',
    f('trust.config.json'),
    '--out',
    f('trust.json'),
  ]);
  await ok(['bundle', 'build', '--config', f('policy.config.json'), '--out', f('policy.json')]);
  const signFlags = [
    '--private-key',
    `@${f('signer.key')}`,
    '--issuer',
    'https://bundles.example',
    '--kid',
    'bundle-1',
  ];
  await ok(['bundle', 'sign', '--bundle', f('trust.json'), ...signFlags, '--out', f('trust.signed.json')]);
  await ok(['bundle', 'sign', '--bundle', f('policy.json'), ...signFlags, '--out', f('policy.signed.json')]);
  const signers = [
    { kid: 'bundle-1', key: await (await import('../../pkg/authcore/index.js')).parsePublicKey(signerPub) },
  ];
  trust = await loadTrustMaterial(JSON.parse(readFileSync(f('trust.signed.json'), 'utf8')), { signers });
  policy = await loadPolicyBundle(JSON.parse(readFileSync(f('policy.signed.json'), 'utf8')), { signers });
});

async function signJson(extra: string[]): Promise<Record<string, string>> {
  return JSON.parse(await ok(['sign', ...passportFlags, ...extra, '--json'])) as Record<string, string>;
}

async function verify(
  headers: Record<string, string>,
  req: { method?: string; url?: string; body?: string } = {},
): Promise<Decision> {
  const method = req.method ?? 'GET';
  return verifyRequest(
    new Request(req.url ?? 'https://orders.example/v1/orders/search', {
      method,
      headers,
      ...(req.body !== undefined ? { body: req.body } : {}),
    }),
    { trust, policy, replayStore: new MemoryReplayStore() },
  );
}

describe('trustplane CLI', () => {
  it('gen-key writes an owner-only key file', async () => {
    expect(statSync(f('caller.key')).mode & 0o777).toBe(0o600);
    expect(callerPub).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('bundle verify accepts the signed documents and reports a summary', async () => {
    const p = JSON.parse(
      await ok(['bundle', 'verify', '--bundle', f('policy.signed.json'), '--public-key', signerPub]),
    );
    expect(p).toMatchObject({
      valid: true,
      kind: 'policy_runtime_bundle',
      signed: true,
      signer_kid: 'bundle-1',
      routes: 3,
    });
    const t = JSON.parse(
      await ok(['bundle', 'verify', '--bundle', f('trust.signed.json'), '--public-key', signerPub]),
    );
    expect(t).toMatchObject({ valid: true, kind: 'trust_material', issuers: [ISSUER] });
  });

  it('bundle verify refuses a tampered document, an unsigned one without the dev flag, and a wrong key', async () => {
    const doc = JSON.parse(readFileSync(f('policy.signed.json'), 'utf8'));
    doc.route_groups[0].routes[0].path_template = '/v1/orders/everything';
    writeFileSync(f('tampered.json'), JSON.stringify(doc));
    const tampered = await cli([
      'bundle',
      'verify',
      '--bundle',
      f('tampered.json'),
      '--public-key',
      signerPub,
    ]);
    expect(tampered.code).toBe(1);
    expect(tampered.stderr.trim().split('\n')).toEqual([
      'trustplane: bundle_signature_invalid: signature verification failed',
    ]);
    const unsigned = await cli(['bundle', 'verify', '--bundle', f('policy.json'), '--public-key', signerPub]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toMatch(/^trustplane: unsigned_bundle_rejected: /);
    const dev = await cli(['bundle', 'verify', '--bundle', f('policy.json'), '--dev-allow-unsigned']);
    expect(dev.code).toBe(0);
    expect(dev.stderr).toMatch(/WARNING: .* is UNSIGNED/);
    const wrong = await cli([
      'bundle',
      'verify',
      '--bundle',
      f('policy.signed.json'),
      '--public-key',
      callerPub,
    ]);
    expect(wrong.stderr).toMatch(/^trustplane: bundle_signature_invalid: /);
  });

  it('issue + verify round trip (public key and trust material)', async () => {
    const token = (await ok(['issue', ...passportFlags, '--ttl', '120'])).trim();
    const byKey = JSON.parse(
      await ok([
        'verify',
        '--token',
        token,
        '--audience',
        'orders-api',
        '--public-key',
        callerPub,
        '--issuer',
        ISSUER,
        '--trust-domain',
        'example.local',
        '--kid',
        'caller-1',
      ]),
    );
    expect(byKey).toMatchObject({ valid: true, claims: { sub: 'service:orders-client', aud: 'orders-api' } });
    const byTrust = JSON.parse(
      await ok([
        'verify',
        '--token',
        token,
        '--audience',
        'orders-api',
        '--trust-material',
        f('trust.signed.json'),
        '--trust-material-public-key',
        signerPub,
      ]),
    );
    expect(byTrust.claims.iss).toBe(ISSUER);
    const wrongAud = await cli([
      'verify',
      '--token',
      token,
      '--audience',
      'payments-api',
      '--trust-material',
      f('trust.signed.json'),
      '--trust-material-public-key',
      signerPub,
    ]);
    expect(wrongAud.code).toBe(1);
    expect(wrongAud.stderr).toBe('trustplane: audience_mismatch: passport audience mismatch\n');
    const expired = (
      await ok(['issue', ...passportFlags, '--iat', String(NOW - 1000), '--ttl', '60'])
    ).trim();
    const exp = await cli([
      'verify',
      '--token',
      expired,
      '--audience',
      'orders-api',
      '--trust-material',
      f('trust.signed.json'),
      '--trust-material-public-key',
      signerPub,
    ]);
    expect(exp.stderr).toMatch(/^trustplane: passport_expired: /);
    expect(exp.stderr).not.toContain(expired.slice(0, 20));
  });

  it('verify --policy-bundle --route-id applies the route policy (audience from the route)', async () => {
    const policyFlags = [
      '--trust-material',
      f('trust.signed.json'),
      '--trust-material-public-key',
      signerPub,
      '--policy-bundle',
      f('policy.signed.json'),
      '--policy-bundle-public-key',
      signerPub,
    ];
    const token = (await ok(['issue', ...passportFlags])).trim();
    const allowed = JSON.parse(
      await ok(['verify', '--token', token, ...policyFlags, '--route-id', 'orders.search']),
    );
    expect(allowed.policy).toEqual({
      route_id: 'orders.search',
      allowed: true,
      source_type: 'software_jwks',
      freshness_class: 'bounded',
    });
    const intruder = (
      await ok([
        'issue',
        ...passportFlags.map((v) => (v === 'service:orders-client' ? 'service:intruder' : v)),
      ])
    ).trim();
    const denied = await cli(['verify', '--token', intruder, ...policyFlags, '--route-id', 'orders.search']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^trustplane: source_subject_mismatch: /);
    const missing = await cli(['verify', '--token', token, ...policyFlags, '--route-id', 'orders.nope']);
    expect(missing.stderr).toMatch(/^trustplane: bundle_route_missing: /);
    const alone = await cli([
      'verify',
      '--token',
      token,
      '--trust-material',
      f('trust.signed.json'),
      '--trust-material-public-key',
      signerPub,
      '--route-id',
      'orders.search',
    ]);
    expect(alone.code).toBe(2);
  });

  it('sign is reproducible with --iat, --jti and --nonce', async () => {
    const fixed = [
      '--url',
      'https://orders.example/v1/orders/search?b=2&a=1',
      '--route-id',
      'orders.search',
      '--iat',
      String(NOW),
      '--jti',
      'jti-fixed',
      '--nonce',
      'nonce-fixed',
    ];
    expect(await signJson(fixed)).toEqual(await signJson(fixed));
    const curl = await ok(['sign', ...passportFlags, ...fixed, '--curl']);
    expect(curl).toMatch(
      /^curl -sS --path-as-is -X GET 'https:\/\/orders\.example\/v1\/orders\/search\?b=2&a=1' -H 'x-trustplane-nonce: nonce-fixed'/,
    );
  });

  it('a request produced by trustplane sign is accepted by the verifier; a one-byte change of any covered part is denied', async () => {
    const body = '{"order_id":"ord_123","amount":"42.00"}';
    const target = { method: 'POST', url: 'https://orders.example/v1/orders?currency=USD', body };
    const make = async () =>
      await signJson([
        '--method',
        'POST',
        '--path',
        '/v1/orders?currency=USD',
        '--base-url',
        'https://orders.example',
        '--route-id',
        'orders.create',
        '--header',
        'Content-Type: application/json',
        '--body',
        body,
      ]);
    expect(await verify(await make(), target)).toMatchObject({
      allowed: true,
      routeId: 'orders.create',
      subject: 'service:orders-client',
    });

    const cases: [string, (h: Record<string, string>) => [Record<string, string>, typeof target]][] = [
      ['body', (h) => [h, { ...target, body: body.replace('42', '43') }]],
      ['query', (h) => [h, { ...target, url: 'https://orders.example/v1/orders?currency=USE' }]],
      ['path', (h) => [h, { ...target, url: 'https://orders.example/v1/orderz?currency=USD' }]],
      ['content-type', (h) => [{ ...h, 'content-type': 'application/jsoN' }, target]],
      [
        'nonce',
        (h) => [
          {
            ...h,
            'x-trustplane-nonce': h['x-trustplane-nonce']!.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
          },
          target,
        ],
      ],
    ];
    const expected: Record<string, string> = {
      body: 'request_binding_mismatch',
      query: 'request_binding_mismatch',
      path: 'bundle_route_missing',
      'content-type': 'request_binding_mismatch',
      nonce: 'request_binding_mismatch',
    };
    for (const [name, mutate] of cases) {
      const [headers, req] = mutate(await make());
      const d = await verify(headers, req);
      expect({ name, reason: d.allowed ? 'allowed' : d.reason }).toEqual({ name, reason: expected[name] });
    }
    // The same changes without the advisory digest headers are caught by the proof itself.
    const strip = (h: Record<string, string>) => {
      const { ['x-trustplane-transcript-sha256']: _t, ['x-trustplane-body-sha256']: _b, ...rest } = h;
      return rest;
    };
    const d = await verify(strip(await make()), { ...target, body: body.replace('42', '43') });
    expect(d.allowed ? 'allowed' : d.reason).toBe('invalid_request_proof');
    const passport = await make();
    const flipped = passport.authorization!.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
    const p = await verify({ ...passport, authorization: flipped }, target);
    expect(p.allowed ? 'allowed' : p.reason).toMatch(/^(invalid_passport_signature|malformed_passport)$/);
  });

  it('merge-source and remove-source are non-destructive and guarded', async () => {
    const extra = {
      source_type: 'software_jwks',
      issuer: ISSUER,
      trust_domain: 'example.local',
      subject_prefix: 'service:batch-',
    };
    writeFileSync(f('source.json'), JSON.stringify(extra));
    const merged = JSON.parse(
      await ok([
        'bundle',
        'merge-source',
        '--bundle',
        f('policy.signed.json'),
        '--route-id',
        'orders.search',
        '--source',
        `@${f('source.json')}`,
      ]),
    );
    expect(merged.route_groups[0].routes[0].allowed_sources).toHaveLength(2);
    expect(merged.signature).toBeUndefined();
    writeFileSync(f('merged.json'), JSON.stringify(merged));
    const dup = await cli([
      'bundle',
      'merge-source',
      '--bundle',
      f('merged.json'),
      '--route-id',
      'orders.search',
      '--source',
      `@${f('source.json')}`,
    ]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/^trustplane: bundle_conflict: /);
    await ok([
      'bundle',
      'merge-source',
      '--bundle',
      f('merged.json'),
      '--route-id',
      'orders.search',
      '--source',
      `@${f('source.json')}`,
      '--replace-existing',
    ]);
    const unconfirmed = await cli([
      'bundle',
      'remove-source',
      '--bundle',
      f('merged.json'),
      '--route-id',
      'orders.search',
      '--source',
      `@${f('source.json')}`,
    ]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stdout).toBe('');
    const removed = JSON.parse(
      await ok([
        'bundle',
        'remove-source',
        '--bundle',
        f('merged.json'),
        '--route-id',
        'orders.search',
        '--source',
        `@${f('source.json')}`,
        '--confirm-remove',
      ]),
    );
    expect(removed.route_groups[0].routes[0].allowed_sources).toHaveLength(1);
    const missing = await cli([
      'bundle',
      'remove-source',
      '--bundle',
      f('trust.json'),
      '--issuer',
      'https://nobody.example',
      '--confirm-remove',
    ]);
    expect(missing.stderr).toMatch(/^trustplane: bundle_source_not_found: /);
  });

  it('errors are one line with a reason code and a non-zero exit; secrets never echoed', async () => {
    const bad = await cli(['issue', ...passportFlags.slice(2), '--private-key', 'not-a-key-SECRET']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('trustplane: invalid_key: invalid Ed25519 private key\n');
    const usage = await cli(['sign', ...passportFlags, '--route-id', 'x']);
    expect(usage.code).toBe(2);
    expect(usage.stderr.trim().split('\n')).toHaveLength(1);
    const unsafe = await cli([
      'sign',
      ...passportFlags,
      '--route-id',
      'x',
      '--url',
      'https://orders.example/v1/../admin',
    ]);
    expect(unsafe.stderr).toMatch(/^trustplane: unsafe_request_path: /);
  });

  it('--help on every verb, with an example', async () => {
    const verbs = [
      ['gen-key'],
      ['issue'],
      ['verify'],
      ['sign'],
      ['bundle'],
      ['bundle', 'build'],
      ['bundle', 'sign'],
      ['bundle', 'verify'],
      ['bundle', 'merge-source'],
      ['bundle', 'remove-source'],
    ];
    for (const verb of verbs) {
      const r = await cli([...verb, '--help']);
      expect(r.code, verb.join(' ')).toBe(0);
      expect(r.stdout, verb.join(' ')).toMatch(/Usage: trustplane/);
      expect(r.stdout, verb.join(' ')).toMatch(/Example/);
    }
  });
});
