import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import {
  generateSigningKey,
  parsePrivateKey,
  toPublicJwk,
  type SigningKey,
} from '../../../pkg/authcore/index.js';
import { CliError, readValue, writeJson } from '../io.js';
import { publicKeyFileFor, writeKeyPair } from './init.js';

/** Load `--private-key` (value, `@file`, or the TRUSTPLANE_PRIVATE_KEY environment variable). */
export async function loadPrivateKey(value: string | undefined): Promise<SigningKey> {
  const text = value ?? process.env.TRUSTPLANE_PRIVATE_KEY;
  if (text === undefined || text === '') {
    throw new CliError('--private-key (or TRUSTPLANE_PRIVATE_KEY) is required', 'usage', 2);
  }
  const keyText = readValue(text);
  // A bare 32-byte value is what a public key looks like (the library also takes it as a seed);
  // the CLI only takes its own 64-byte key text, PKCS#8 PEM or a private JWK, so that a .pub file
  // or a copied public_key is refused instead of silently becoming another key.
  if (/^[A-Za-z0-9_-]{43}$/.test(keyText.trim()) || /\.pub$/.test(text)) {
    throw new CliError(
      'this is a public key where a private key is needed: give the private key file trustplane gen-key wrote (<name>.key, not <name>.pub)',
      'wrong_key_kind',
    );
  }
  return parsePrivateKey(keyText);
}

/** `trustplane gen-key` */
export function registerGenKey(program: Command): void {
  program
    .command('gen-key')
    .description('Generate an Ed25519 key pair (CLI key text = base64url(seed || public key)).')
    .option(
      '--out <file>',
      'write the private key text to this file (mode 0600) and the public key to <name>.pub, instead of stdout',
    )
    .option('--kid <kid>', 'key id to put in the printed public JWK')
    .option('--force', 'overwrite --out if it exists')
    .addHelpText(
      'after',
      '\n--private-key takes the .key file (key text, PKCS#8 PEM or a private JWK), --public-key the .pub file.\n\nExamples:\n  trustplane gen-key --out caller.key --kid caller-2026-01   # caller.key and caller.pub\n  trustplane gen-key > key.json',
    )
    .action(async (opts: { out?: string; kid?: string; force?: boolean }) => {
      const key = await generateSigningKey();
      const pub = {
        public_key: key.publicKey.x,
        fingerprint: key.publicKey.fingerprint,
        jwk: toPublicJwk(key.publicKey, opts.kid),
      };
      if (opts.out !== undefined) {
        for (const file of [opts.out, publicKeyFileFor(opts.out)]) {
          if (existsSync(file) && !opts.force) throw new CliError(`${file} exists (use --force)`, 'io');
        }
        const publicKeyFile = writeKeyPair(key, opts.out);
        writeJson({ private_key_file: opts.out, public_key_file: publicKeyFile, ...pub });
      } else {
        writeJson({ private_key: key.exportKeyText(), ...pub });
      }
    });
}
