import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RECEIPT_VERSION, signReceipt, type ReceiptPayload } from '../../pkg/audit/index.js';
import { generateSigningKey, type SigningKey } from '../../pkg/authcore/signing-key.js';
import { signDocument, type TrustMaterial } from '../../pkg/bundle/index.js';
import { CLI } from '../helpers/adapter-process.js';
import { cliInProcess } from '../helpers/cli.js';

/*
 * `trustplane receipt verify` against signed trust material: in-process, and once as the BUILT CLI
 * (`npm run build` first) for stdin.
 */

const dir = mkdtempSync(path.join(tmpdir(), 'trustplane-receipt-'));
const f = (name: string) => path.join(dir, name);
const KID = 'receipt-2026-01';
const ADAPTER = 'edge-1';
/** 2026-01-01T00:00:00Z. */
const T0 = 1_767_225_600;
const DAY = 86_400;

/** The verb in-process (test/helpers/cli.ts); with stdin input, the built CLI as a process. */
async function cli(args: string[], input?: string) {
  if (input === undefined) return cliInProcess(args);
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    input,
    timeout: 60_000,
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const payload = (extra: Partial<ReceiptPayload> = {}): ReceiptPayload => ({
  v: RECEIPT_VERSION,
  adapter: ADAPTER,
  iat: T0,
  request: {
    transcript_sha256: 'a'.repeat(64),
    method: 'POST',
    authority: 'orders.example',
    path: '/v1/orders/42',
    route_id: 'orders.update',
  },
  identity: {
    iss: 'https://issuer.example',
    sub: 'service:orders-client',
    aud: 'orders-api',
    jti: 'jti-cli-1',
    trust_domain: 'example.local',
    key_binding: 'software',
  },
  decision: 'allow',
  response: { status: 201, body_sha256: 'b'.repeat(64) },
  policy_version: '2026-01-01.1',
  ...extra,
});

let receiptKey: SigningKey;
let receipt: string;
let trustFlags: string[];

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const signer = await generateSigningKey();
  const otherSigner = await generateSigningKey();
  receiptKey = await generateSigningKey();
  // The receipt key was rotated out 30 days after T0 (exp is in the past): its receipts still verify.
  const doc: TrustMaterial = {
    version: 'trustplane-trust-material-v1',
    kind: 'trust_material',
    trust_domain: 'example.local',
    issuers: [],
    receipt_keys: [
      {
        kid: KID,
        kty: 'OKP',
        crv: 'Ed25519',
        x: receiptKey.publicKey.x,
        adapter: ADAPTER,
        nbf: T0 - DAY,
        exp: T0 + 30 * DAY,
      },
    ],
  };
  const signedBy = { issuer: 'ops@example.local', kid: 'bundle-1' };
  writeFileSync(f('trust.json'), JSON.stringify(await signDocument(doc, signer, signedBy)));
  writeFileSync(f('trust.other.json'), JSON.stringify(await signDocument(doc, otherSigner, signedBy)));
  writeFileSync(f('signer.pub'), signer.publicKey.x);
  receipt = await signReceipt(payload(), receiptKey, KID);
  writeFileSync(f('receipt.jws'), `${receipt}\n`);
  trustFlags = ['--trust-material', f('trust.json'), '--trust-material-public-key', `@${f('signer.pub')}`];
});

describe('trustplane receipt verify', () => {
  it('verifies a receipt from a file and prints its summary (exit 0)', async () => {
    const r = await cli(['receipt', 'verify', '--receipt', `@${f('receipt.jws')}`, ...trustFlags]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('receipt valid');
    expect(r.stdout).toContain('service:orders-client');
    expect(r.stdout).toContain(ADAPTER);
    expect(r.stdout).toContain('2026-01-01T00:00:00.000Z');
    expect(r.stdout).toContain('jti-cli-1');
    expect(r.stdout).toContain(`sha256:${'a'.repeat(64)}`);
    expect(r.stdout).toContain(`sha256:${'b'.repeat(64)}`);
    expect(r.stdout).toMatch(/status:\s+201/);
    expect(r.stdout).toMatch(/route:\s+orders\.update \(POST orders\.example\/v1\/orders\/42\)/);
    expect(r.stdout).toContain(KID);
    expect(r.stdout).toContain('2026-01-31T00:00:00.000Z');
  });

  it('takes the receipt literally or on stdin, the key as --bundle-public-key, and prints JSON', async () => {
    const literal = await cli(['receipt', 'verify', '--receipt', receipt, ...trustFlags]);
    expect(literal.code).toBe(0);
    const r = await cli(
      [
        'receipt',
        'verify',
        '--receipt',
        '-',
        '--trust-material',
        f('trust.json'),
        '--bundle-public-key',
        `@${f('signer.pub')}`,
        '--expect-adapter',
        ADAPTER,
        '--json',
      ],
      `${receipt}\n`,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toEqual({
      valid: true,
      header: { alg: 'EdDSA', kid: KID, typ: RECEIPT_VERSION },
      payload: payload(),
      key: { kid: KID, adapter: ADAPTER, nbf: T0 - DAY, exp: T0 + 30 * DAY },
      trust_material: { signed: true, signer_kid: 'bundle-1' },
    });
  });

  it('a tampered receipt exits 1 with receipt_signature_invalid', async () => {
    const [h, p, s] = receipt.split('.') as [string, string, string];
    const flipped = `${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    const r = await cli(['receipt', 'verify', '--receipt', `${h}.${p}.${flipped}`, ...trustFlags]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('trustplane: receipt_signature_invalid: signature verification failed\n');
  });

  const failures: readonly (readonly [string, () => Promise<string>, readonly string[]])[] = [
    ['receipt_unknown_key', () => signReceipt(payload(), receiptKey, 'receipt-unknown'), []],
    ['receipt_key_not_valid_at_iat', () => signReceipt(payload({ iat: T0 + 31 * DAY }), receiptKey, KID), []],
    ['receipt_adapter_mismatch', () => Promise.resolve(receipt), ['--expect-adapter', 'edge-2']],
    ['receipt_malformed', () => Promise.resolve('not-a-receipt'), []],
  ];
  it.each(failures)('exits 1 with %s', async (code, make, extra) => {
    const r = await cli(['receipt', 'verify', '--receipt', await make(), ...trustFlags, ...extra]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^trustplane: ${code}: `));
  });

  it('refuses trust material signed by another key, and needs a trust-material key', async () => {
    const other = await cli([
      'receipt',
      'verify',
      '--receipt',
      receipt,
      '--trust-material',
      f('trust.other.json'),
      '--trust-material-public-key',
      `@${f('signer.pub')}`,
    ]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^trustplane: bundle_signature_invalid: /);
    const missing = await cli([
      'receipt',
      'verify',
      '--receipt',
      receipt,
      '--trust-material',
      f('trust.json'),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^trustplane: usage: .*--trust-material-public-key/);
  });

  it('--help shows an example of the verb', async () => {
    for (const verb of [['receipt'], ['receipt', 'verify']]) {
      const r = await cli([...verb, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Examples?:$/m);
      expect(r.stdout).toMatch(new RegExp(`^ {2}trustplane ${verb.join(' ')} `, 'm'));
    }
  });
});
