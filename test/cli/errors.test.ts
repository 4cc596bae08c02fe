import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, parsePrivateKey, parsePublicKey } from '../../pkg/authcore/index.js';
import { cliInProcess as cli, cliProcess } from '../helpers/cli.js';

/*
 * Issue 14, point 5: every CLI failure is one line `trustplane: <reason>: <message>` with a stable
 * reason, a hint where the user can act on one, and never a secret.
 */

const dir = mkdtempSync(path.join(tmpdir(), 'trustplane-cli-errors-'));
const f = (name: string) => path.join(dir, name);
let keyText: string;
let publicText: string;

beforeAll(async () => {
  const key = await generateSigningKey();
  keyText = key.exportKeyText();
  publicText = key.publicKey.x;
  writeFileSync(f('signer.key'), `${keyText}\n`, { mode: 0o600 });
  writeFileSync(f('signer.pub'), `${publicText}\n`);
  copyFileSync(path.resolve('bundles/example.policy-bundle.json'), f('bundle.json'));
});

/** The run printed exactly one error line with this reason, and nothing on stdout. */
function oneLine(r: { code: number | null; stdout: string; stderr: string }, reason: string, code = 1) {
  expect(r.stderr.split('\n').filter(Boolean), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(new RegExp(`^trustplane: ${reason}: `));
  expect(r.stdout).toBe('');
  expect(r.code).toBe(code);
}

describe('a key of the wrong kind is refused with a hint', () => {
  it('a public key given as --private-key (file or text): wrong_key_kind, never echoed', async () => {
    const signArgs = ['--issuer', 'https://bundles.example', '--kid', 'b1', '--out', f('out.json')];
    for (const value of [`@${f('signer.pub')}`, publicText]) {
      const r = await cli([
        'bundle',
        'sign',
        '--bundle',
        f('bundle.json'),
        '--private-key',
        value,
        ...signArgs,
      ]);
      oneLine(r, 'wrong_key_kind');
      expect(r.stderr).toMatch(/public key/);
      expect(r.stderr).toMatch(/gen-key/);
      expect(r.stderr).not.toContain(publicText);
    }
  });

  it('a private key given as --public-key: wrong_key_kind naming the .pub file, never echoed', async () => {
    const r = await cli([
      'bundle',
      'verify',
      '--bundle',
      f('bundle.json'),
      '--public-key',
      `@${f('signer.key')}`,
    ]);
    oneLine(r, 'wrong_key_kind');
    expect(r.stderr).toMatch(/private key/);
    expect(r.stderr).toMatch(/\.pub/);
    expect(r.stderr).not.toContain(keyText);
    expect(r.stderr).not.toContain(keyText.slice(0, 43));
  });

  it('the library says the same: parsePublicKey(private) and parsePrivateKey(public PEM/JWK)', async () => {
    const key = await parsePrivateKey(keyText);
    await expect(parsePublicKey(keyText)).rejects.toMatchObject({ reason: 'wrong_key_kind' });
    await expect(parsePublicKey(key.exportPkcs8Pem())).rejects.toMatchObject({ reason: 'wrong_key_kind' });
    await expect(parsePublicKey(key.exportPrivateJwk())).rejects.toMatchObject({ reason: 'wrong_key_kind' });
    await expect(parsePrivateKey({ kty: 'OKP', crv: 'Ed25519', x: publicText })).rejects.toMatchObject({
      reason: 'wrong_key_kind',
    });
    // A plain bad value stays invalid_key.
    await expect(parsePublicKey('not-a-key')).rejects.toMatchObject({ reason: 'invalid_key' });
  });
});

describe('files and ports', () => {
  it('a missing file is file_not_found, wherever it is named (not io, not "not valid JSON")', async () => {
    const missing = f('missing.json');
    oneLine(
      await cli(['bundle', 'verify', '--bundle', missing, '--public-key', publicText]),
      'file_not_found',
    );
    const merge = await cli([
      'bundle',
      'merge-source',
      '--bundle',
      f('bundle.json'),
      '--route-id',
      'orders.search',
      '--source',
      `@${f('source.json')}`,
    ]);
    oneLine(merge, 'file_not_found');
    expect(merge.stderr).toContain(f('source.json'));
    oneLine(await cli(['bundle', 'build', '--config', missing, '--out', f('x.json')]), 'file_not_found');
  });

  it('a bad JSON config names the line and column, without echoing its content', async () => {
    writeFileSync(f('bad.config.json'), '{\n  "trust_domain": "example.local",\n  "secret": "s3cr3t",\n}\n');
    const r = await cli(['bundle', 'build', '--config', f('bad.config.json'), '--out', f('x.json')]);
    oneLine(r, 'invalid_json');
    expect(r.stderr).toContain(`${f('bad.config.json')} is not valid JSON: line 4, column 1`);
    expect(r.stderr).not.toContain('s3cr3t');
    writeFileSync(f('cut.json'), '{"a": [1, 2');
    const cut = await cli(['bundle', 'build', '--config', f('cut.json'), '--out', f('x.json')]);
    oneLine(cut, 'invalid_json');
    expect(cut.stderr).toMatch(/line 1, column 12/);
  });

  it('a bad adapter config file and a bad bundle file name the line and column too', async () => {
    writeFileSync(
      f('adapter.json'),
      '{\n  "upstream": "http://127.0.0.1:3000",\n  "listen": "127.0.0.1:0"\n  "oops": 1\n}\n',
    );
    const config = await cli(['adapter', '--config', f('adapter.json')]);
    expect(config.code).toBe(2);
    expect(config.stderr).toContain(`config file ${f('adapter.json')}: invalid JSON at line 4, column 3`);
    writeFileSync(f('broken-bundle.json'), '{"version": "trustplane-bundle-v1",\n "kind": }');
    const bundle = await cli([
      'bundle',
      'verify',
      '--bundle',
      f('broken-bundle.json'),
      '--dev-allow-unsigned',
    ]);
    expect(bundle.code).toBe(1);
    expect(bundle.stderr).toMatch(/^trustplane: invalid_\w+: .*is not valid JSON.*line 2, column 10/);
  });

  describe('an address in use', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      // Fresh documents of our own (the examples' issued_at may be ahead of this machine's clock).
      const set = f('set');
      expect((await cli(['init', set])).code).toBe(0);
      for (const args of [
        [
          '--kind',
          'trust-material',
          '--config',
          path.join(set, 'trust.config.json'),
          '--out',
          f('trust.json'),
        ],
        ['--config', path.join(set, 'policy.config.json'), '--out', f('policy.json')],
      ]) {
        expect((await cli(['bundle', 'build', ...args])).code).toBe(0);
      }
      server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('the adapter on a taken port: address_in_use naming it, exit 1 (a process: it is the point)', async () => {
      const r = await cliProcess([
        'adapter',
        '--upstream',
        'http://127.0.0.1:9',
        '--listen',
        `127.0.0.1:${port}`,
        '--admin-listen',
        '127.0.0.1:0',
        '--dev-allow-unsigned',
        '--trust-material',
        f('trust.json'),
        '--policy-bundle',
        f('policy.json'),
        '--replay-journal',
        f('replay.journal'),
      ]);
      expect(r.code).toBe(1);
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('trustplane: '));
      expect(errors).toEqual([
        expect.stringMatching(new RegExp(`^trustplane: address_in_use: 127\\.0\\.0\\.1:${port} `)),
      ]);
    }, 60_000);
  });
});

describe('usage errors are one line, not the whole help', () => {
  it('trustplane-adapter too (a process: its own binary)', async () => {
    const bin = path.resolve('dist/cmd/trustplane-adapter/main.js');
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [bin, '--bogus'],
        { encoding: 'utf8', timeout: 60_000 },
        (error, _out, stderr) =>
          resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stderr }),
      );
    });
    expect(r).toEqual({
      code: 2,
      stderr: "trustplane-adapter: usage: unknown option '--bogus' (see trustplane-adapter --help)\n",
    });
  }, 60_000);

  it.each([
    [
      ['gen-key', '--bogus'],
      /^trustplane: usage: unknown option '--bogus' \(see trustplane gen-key --help\)\n$/,
    ],
    [
      ['bundle', 'verify'],
      /^trustplane: usage: required option '--bundle <file>' not specified \(see trustplane bundle verify --help\)\n$/,
    ],
    [['no-such-verb'], /^trustplane: usage: unknown command 'no-such-verb' \(see trustplane --help\)\n$/],
  ])('%j', async (args, line) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(line);
  });
});
