/**
 * A five-minute tour of the core: the CLI generates keys, builds and signs trust material and a
 * policy bundle, signs requests; the verifier pipeline decides. Every step checks its expected
 * outcome and the tour exits non-zero if one differs, so it doubles as a smoke test.
 *
 * Run: npm run tour   (needs no server; works in a temp directory, never in the repo)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryReplayStore, parsePublicKey } from '../pkg/authcore/index.js';
import { loadPolicyBundle, loadTrustMaterial } from '../pkg/bundle/index.js';
import { verifyRequest, type Decision } from '../pkg/verifier/index.js';
import { DEV_ISSUER, devPolicyConfig, devTrustConfig } from './dev-configs.js';

const BIN = path.resolve('dist/cmd/trustplane/main.js');
const dir = mkdtempSync(path.join(tmpdir(), 'trustplane-tour-'));
const at = (name: string) => path.join(dir, name);

function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`trustplane ${args[0]} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

const ISSUER = DEV_ISSUER;

console.log(`working directory: ${dir}\n`);
const caller = JSON.parse(cli(['gen-key', '--out', at('caller.key'), '--kid', 'caller-1'])) as {
  public_key: string;
};
const signer = JSON.parse(cli(['gen-key', '--out', at('bundle-signer.key')])) as { public_key: string };
writeFileSync(at('trust.config.json'), JSON.stringify(devTrustConfig(caller.public_key)));
writeFileSync(at('policy.config.json'), JSON.stringify(devPolicyConfig()));
const signFlags = [
  '--private-key',
  `@${at('bundle-signer.key')}`,
  '--issuer',
  'https://bundles.example',
  '--kid',
  'bundle-1',
];
cli([
  'bundle',
  'build',
  '--kind',
  'trust-material',
  '--config',
  at('trust.config.json'),
  '--out',
  at('trust.json'),
]);
cli(['bundle', 'sign', '--bundle', at('trust.json'), ...signFlags, '--out', at('trust.json')]);
cli(['bundle', 'build', '--config', at('policy.config.json'), '--out', at('policy.json')]);
cli(['bundle', 'sign', '--bundle', at('policy.json'), ...signFlags, '--out', at('policy.json')]);
cli(['bundle', 'verify', '--bundle', at('policy.json'), '--public-key', signer.public_key]);

const signers = [{ kid: 'bundle-1', key: await parsePublicKey(signer.public_key) }];
const trust = await loadTrustMaterial(JSON.parse(readFileSync(at('trust.json'), 'utf8')), { signers });
const policy = await loadPolicyBundle(JSON.parse(readFileSync(at('policy.json'), 'utf8')), { signers });
const context = { trust, policy, replayStore: new MemoryReplayStore() };

const passportFlags = [
  '--private-key',
  `@${at('caller.key')}`,
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
function sign(method: string, target: string, routeId: string, body?: string): Record<string, string> {
  const extra = body === undefined ? [] : ['--header', 'Content-Type: application/json', '--body', body];
  return JSON.parse(
    cli([
      'sign',
      ...passportFlags,
      '--method',
      method,
      '--url',
      `https://orders.example${target}`,
      '--route-id',
      routeId,
      ...extra,
      '--json',
    ]),
  ) as Record<string, string>;
}
function send(
  method: string,
  target: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Decision> {
  return verifyRequest(
    new Request(`https://orders.example${target}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    }),
    context,
  );
}

const search = sign('GET', '/v1/orders/search?limit=10', 'orders.search');
const order = '{"order_id":"ord_123","amount":"42.00"}';
const create = sign('POST', '/v1/orders', 'orders.create', order);
const steps: [string, string, () => Promise<Decision>][] = [
  ['signed GET /v1/orders/search', 'allow', () => send('GET', '/v1/orders/search?limit=10', search)],
  ['the same request again', 'jti_replay', () => send('GET', '/v1/orders/search?limit=10', search)],
  [
    'POST /v1/orders, body changed in flight',
    'request_binding_mismatch',
    () => send('POST', '/v1/orders', create, order.replace('42', '4200')),
  ],
  [
    'the untampered POST (jti not burnt by the deny)',
    'allow',
    () => send('POST', '/v1/orders', create, order),
  ],
  [
    'GET /v1/admin (outside policy)',
    'bundle_route_missing',
    () => send('GET', '/v1/admin', sign('GET', '/v1/admin', 'admin')),
  ],
  [
    'POST /v1/orders/o1/approve with a software key',
    'insufficient_key_binding',
    () =>
      send(
        'POST',
        '/v1/orders/o1/approve',
        sign('POST', '/v1/orders/o1/approve', 'orders.approve', '{}'),
        '{}',
      ),
  ],
  [
    'path confusion /v1/orders%2Fsearch',
    'unsafe_request_path',
    () => send('GET', '/v1/orders%2Fsearch', search),
  ],
];

let failed = 0;
const rows: string[][] = [['step', 'expected', 'got', 'status', 'identity']];
for (const [name, expected, run] of steps) {
  const d = await run();
  const got = d.allowed ? 'allow' : d.reason;
  if (got !== expected) failed++;
  rows.push([
    name,
    expected,
    got === expected ? got : `${got}  <-- UNEXPECTED`,
    String(d.status),
    d.allowed ? `${d.subject} via ${d.routeId}` : '',
  ]);
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const [i, r] of rows.entries()) {
  console.log(r.map((c, j) => c.padEnd(widths[j]!)).join('  '));
  if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
}
console.log(`\n${steps.length - failed}/${steps.length} steps behaved as documented. Files: ${dir}`);
process.exitCode = failed === 0 ? 0 : 1;
