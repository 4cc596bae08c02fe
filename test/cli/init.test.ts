import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePrivateKey, parsePublicKey } from '../../pkg/authcore/index.js';
import { cliInProcess as cli } from '../helpers/cli.js';

/*
 * Issue 14, point 2: `trustplane init` writes a working set, and `gen-key --out` writes the .pub
 * file the help and the README use (`--public-key @bundle-signer.pub`).
 */

const root = mkdtempSync(path.join(tmpdir(), 'trustplane-cli-init-'));

describe('trustplane gen-key --out', () => {
  it('writes <name>.key (0600) and <name>.pub, the public half of the same key', async () => {
    const out = path.join(root, 'signer.key');
    const r = await cli(['gen-key', '--out', out, '--kid', 'k1']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const printed = JSON.parse(r.stdout) as { public_key: string; public_key_file: string };
    expect(printed.public_key_file).toBe(path.join(root, 'signer.pub'));
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const pub = readFileSync(path.join(root, 'signer.pub'), 'utf8');
    expect(pub).toBe(`${printed.public_key}\n`);
    const key = await parsePrivateKey(readFileSync(out, 'utf8'));
    expect((await parsePublicKey(pub)).x).toBe(key.publicKey.x);
    // Neither file is overwritten without --force.
    const again = await cli(['gen-key', '--out', out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`trustplane: io: ${out} exists (use --force)\n`);
  });
});

describe('trustplane init', () => {
  it('writes keys with .pub files, both configs and a source example, then prints the next step', async () => {
    const dir = path.join(root, 'tour');
    const r = await cli(['init', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\nNext: /);
    expect(r.stdout).toContain('trustplane bundle build --kind trust-material --config trust.config.json');
    for (const name of ['caller', 'bundle-signer']) {
      expect(statSync(path.join(dir, `${name}.key`)).mode & 0o777).toBe(0o600);
      const key = await parsePrivateKey(readFileSync(path.join(dir, `${name}.key`), 'utf8'));
      expect(readFileSync(path.join(dir, `${name}.pub`), 'utf8')).toBe(`${key.publicKey.x}\n`);
    }
    const caller = await parsePrivateKey(readFileSync(path.join(dir, 'caller.key'), 'utf8'));
    const trust = JSON.parse(readFileSync(path.join(dir, 'trust.config.json'), 'utf8')) as {
      issuers: { keys: { x: string; kid: string }[] }[];
    };
    expect(trust.issuers[0]!.keys[0]).toMatchObject({ x: caller.publicKey.x, kid: 'caller-1' });
    const policy = JSON.parse(readFileSync(path.join(dir, 'policy.config.json'), 'utf8')) as {
      apis: { base_url: string }[];
    };
    expect(policy.apis[0]!.base_url).toBe('http://127.0.0.1:8080');
    expect(JSON.parse(readFileSync(path.join(dir, 'source.json'), 'utf8'))).toMatchObject({
      source_type: 'software_jwks',
    });
    // The configs build: the set works as written.
    const built = await cli([
      'bundle',
      'build',
      '--config',
      path.join(dir, 'policy.config.json'),
      '--out',
      path.join(dir, 'policy.json'),
    ]);
    expect(built).toMatchObject({ code: 0, stderr: '' });
  });

  it('refuses to overwrite an existing set without --force', async () => {
    const dir = path.join(root, 'twice');
    expect((await cli(['init', dir])).code).toBe(0);
    const before = readFileSync(path.join(dir, 'caller.key'), 'utf8');
    const again = await cli(['init', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^trustplane: io: .*caller\.key.* exist \(use --force to overwrite\)\n$/);
    expect(readFileSync(path.join(dir, 'caller.key'), 'utf8')).toBe(before);
    expect((await cli(['init', dir, '--force'])).code).toBe(0);
    expect(readFileSync(path.join(dir, 'caller.key'), 'utf8')).not.toBe(before);
  });
});
