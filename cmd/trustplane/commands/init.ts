import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { generateSigningKey, type SigningKey } from '../../../pkg/authcore/index.js';
import { CliError } from '../io.js';

/** What `trustplane init` writes, and the names the README tour uses. */
export const INIT = {
  issuer: 'https://issuer.example/software-jwks',
  subject: 'service:orders-client',
  trustDomain: 'example.local',
  audience: 'orders-api',
  callerKid: 'caller-1',
  bundleIssuer: 'https://bundles.example',
  bundleKid: 'bundle-1',
  /** Where `trustplane adapter` listens in the tour: the origin callers sign for (the policy's base_url). */
  origin: 'http://127.0.0.1:8080',
  /** The local API the adapter forwards to. */
  upstream: 'http://127.0.0.1:3000',
} as const;

/** Write a key pair as `<name>.key` (mode 0600) and `<name>.pub` (the public key, base64url). */
export function writeKeyPair(key: SigningKey, keyFile: string): string {
  const pubFile = publicKeyFileFor(keyFile);
  writeFileSync(keyFile, `${key.exportKeyText()}\n`, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(pubFile, `${key.publicKey.x}\n`, { mode: 0o644 });
  return pubFile;
}

/** `caller.key` → `caller.pub`; any other name gets `.pub` appended. */
export function publicKeyFileFor(keyFile: string): string {
  return keyFile.endsWith('.key') ? `${keyFile.slice(0, -'.key'.length)}.pub` : `${keyFile}.pub`;
}

function trustConfig(callerX: string) {
  return {
    trust_domain: INIT.trustDomain,
    issuers: [
      {
        issuer: INIT.issuer,
        trust_domain: INIT.trustDomain,
        source_type: 'software_jwks',
        keys: [{ kty: 'OKP', crv: 'Ed25519', x: callerX, kid: INIT.callerKid }],
      },
    ],
  };
}

function policyConfig() {
  const source = {
    source_type: 'software_jwks',
    issuer: INIT.issuer,
    trust_domain: INIT.trustDomain,
    subject_exact: INIT.subject,
  };
  return {
    trust_domain: INIT.trustDomain,
    apis: [{ api_id: INIT.audience, audience: INIT.audience, base_url: INIT.origin }],
    route_groups: [
      {
        route_group_id: 'orders',
        api_id: INIT.audience,
        routes: [
          {
            route_id: 'orders.search',
            method: 'GET',
            path_template: '/v1/orders/search',
            allowed_sources: [source],
          },
          {
            route_id: 'orders.create',
            method: 'POST',
            path_template: '/v1/orders',
            allowed_sources: [source],
          },
        ],
      },
    ],
  };
}

/** An allowed source to add with `bundle merge-source` (a second caller on `orders.search`). */
function sourceExample() {
  return {
    source_type: 'software_jwks',
    issuer: INIT.issuer,
    trust_domain: INIT.trustDomain,
    subject_exact: 'service:reports-client',
  };
}

const FILES = [
  'caller.key',
  'caller.pub',
  'bundle-signer.key',
  'bundle-signer.pub',
  'trust.config.json',
  'policy.config.json',
  'source.json',
] as const;

/** `trustplane init [dir]` */
export function registerInit(program: Command): void {
  program
    .command('init')
    .description(
      'Write a working set for the CLI tour: caller and bundle-signer keys (.key and .pub), trust.config.json, policy.config.json (an API at http://127.0.0.1:8080) and source.json.',
    )
    .argument('[dir]', 'directory to write into (created if missing)', '.')
    .option('--force', 'overwrite files that exist')
    .addHelpText(
      'after',
      `
Writes ${FILES.join(', ')}. Keys are key text (base64url(seed || public key)), mode 0600;
.pub files hold the public key (base64url). Keep *.key out of version control.

Example:
  trustplane init tour && cd tour`,
    )
    .action(async (dir: string, opts: { force?: boolean }) => {
      mkdirSync(dir, { recursive: true });
      const at = (name: string) => path.join(dir, name);
      const existing = FILES.filter((name) => existsSync(at(name)));
      if (existing.length > 0 && !opts.force) {
        throw new CliError(`${existing.map(at).join(', ')} exist (use --force to overwrite)`, 'io');
      }
      const [caller, signer] = await Promise.all([generateSigningKey(), generateSigningKey()]);
      writeKeyPair(caller, at('caller.key'));
      writeKeyPair(signer, at('bundle-signer.key'));
      const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
      writeFileSync(at('trust.config.json'), json(trustConfig(caller.publicKey.x)));
      writeFileSync(at('policy.config.json'), json(policyConfig()));
      writeFileSync(at('source.json'), json(sourceExample()));
      const cd = path.resolve(dir) === process.cwd() ? '' : `cd ${dir} && `;
      process.stdout.write(
        [
          `wrote ${FILES.map(at).join(', ')}`,
          `caller key: caller-1 of ${INIT.issuer} (subject ${INIT.subject}), trusted by trust.config.json`,
          `API: ${INIT.audience} at ${INIT.origin} (routes orders.search, orders.create)`,
          '',
          'Next: build and sign the trust material and the policy bundle',
          `  ${cd}trustplane bundle build --kind trust-material --config trust.config.json --out trust.json`,
          `  trustplane bundle sign --bundle trust.json --private-key @bundle-signer.key --issuer ${INIT.bundleIssuer} --kid ${INIT.bundleKid} --out trust.json`,
          '',
        ].join('\n'),
      );
    });
}
