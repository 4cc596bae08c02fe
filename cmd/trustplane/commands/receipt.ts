import type { Command } from 'commander';
import { parsePublicKey } from '../../../pkg/authcore/index.js';
import { ReceiptError, verifyReceipt, type VerifiedReceipt } from '../../../pkg/audit/index.js';
import {
  loadTrustMaterial,
  type DocumentSigner,
  type LoadedTrustMaterial,
} from '../../../pkg/bundle/index.js';
import { CliError, collect, nowSeconds, parseIntOption, readJsonFile, readValue, writeJson } from '../io.js';

interface ReceiptVerifyFlags {
  receipt: string;
  trustMaterial: string;
  bundlePublicKey?: string[];
  trustMaterialPublicKey?: string[];
  kid?: string;
  devAllowUnsigned?: boolean;
  expectAdapter?: string;
  now?: number;
  json?: boolean;
}

function signedByKid(doc: unknown): string | undefined {
  const signedBy =
    typeof doc === 'object' && doc !== null
      ? (doc as { signed_by?: { kid?: unknown } }).signed_by
      : undefined;
  return typeof signedBy?.kid === 'string' ? signedBy.kid : undefined;
}

/** Load and verify the trust material the receipt keys come from, as `verify --trust-material` does. */
async function loadTrust(opts: ReceiptVerifyFlags): Promise<LoadedTrustMaterial> {
  const doc = readJsonFile(opts.trustMaterial);
  const values = [...(opts.trustMaterialPublicKey ?? []), ...(opts.bundlePublicKey ?? [])];
  if (values.length === 0 && !opts.devAllowUnsigned) {
    throw new CliError(
      '--trust-material-public-key (or --bundle-public-key) is required (or --dev-allow-unsigned)',
      'usage',
      2,
    );
  }
  const kid = opts.kid ?? signedByKid(doc) ?? 'unsigned';
  const signers: DocumentSigner[] = [];
  for (const [i, value] of values.entries()) {
    signers.push({ kid: i === 0 ? kid : `${kid}#${i}`, key: await parsePublicKey(readValue(value)) });
  }
  const trust = await loadTrustMaterial(doc, {
    signers,
    allowUnsigned: opts.devAllowUnsigned === true,
    now: opts.now ?? nowSeconds(),
  });
  if (!trust.signed) {
    process.stderr.write(
      `trustplane: WARNING: ${opts.trustMaterial} is UNSIGNED and was accepted only because of --dev-allow-unsigned\n`,
    );
  }
  return trust;
}

const iso = (epoch: number) => new Date(epoch * 1000).toISOString();

function summary(verified: VerifiedReceipt): string {
  const { payload: p, key } = verified;
  const window = `${key.nbf !== undefined ? iso(key.nbf) : '-inf'} .. ${key.exp !== undefined ? iso(key.exp) : '+inf'}`;
  const rows: [string, string][] = [
    ['adapter', p.adapter],
    ['iat', `${iso(p.iat)} (${p.iat})`],
    ['decision', p.reason !== undefined ? `${p.decision} (${p.reason})` : p.decision],
    ['status', String(p.response.status)],
    ['route', `${p.request.route_id} (${p.request.method} ${p.request.authority}${p.request.path})`],
    ['issuer', p.identity.iss],
    ['subject', p.identity.sub],
    ['audience', p.identity.aud],
    ['jti', p.identity.jti],
    ['key binding', p.identity.key_binding],
    ...(p.policy_version !== undefined ? [['policy version', p.policy_version] as [string, string]] : []),
    ['transcript', `sha256:${p.request.transcript_sha256}`],
    ['response body', `sha256:${p.response.body_sha256}`],
    ['receipt key', `${key.kid}${key.adapter !== undefined ? ` (adapter ${key.adapter})` : ''}`],
    ['key window', `${window} (iat inside)`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return `receipt valid (trustplane-receipt-v1)\n${rows.map(([k, v]) => `  ${`${k}:`.padEnd(width)}${v}`).join('\n')}\n`;
}

/** `trustplane receipt …` */
export function registerReceipt(program: Command): void {
  const receipt = program
    .command('receipt')
    .description('Verify signed decision receipts (trustplane-receipt-v1) offline.')
    .addHelpText(
      'after',
      '\nExample:\n  trustplane receipt verify --receipt @receipt.jws --trust-material trust.json \\\n    --trust-material-public-key @bundle-signer.pub',
    );

  receipt
    .command('verify')
    .description(
      "Verify a receipt against the receipt keys of signed trust material: EdDSA signature, and the receipt's iat inside its key's signing window (no clock: receipts stay verifiable after passport expiry and key rotation).",
    )
    .requiredOption('--receipt <receipt>', 'the compact receipt, or @file, or - for stdin')
    .requiredOption('--trust-material <file>', 'trust material document listing the receipt keys')
    .option(
      '--trust-material-public-key <key>',
      'public key that signed the trust material (repeatable), or @file',
      collect,
    )
    .option('--bundle-public-key <key>', 'alias of --trust-material-public-key (repeatable)', collect)
    .option('--kid <kid>', 'expected trust-material signer kid (default: the document signed_by.kid)')
    .option('--dev-allow-unsigned', 'accept an unsigned trust material (development only; loudly logged)')
    .option('--expect-adapter <name>', 'the receipt must come from this adapter')
    .option(
      '--now <epoch>',
      'time for the trust-material expiry check, epoch seconds (default now; the receipt itself needs no clock)',
      parseIntOption('--now'),
    )
    .option('--json', 'print the verified header, payload and key as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  trustplane receipt verify --receipt @receipt.jws --trust-material trust.json \\\n    --trust-material-public-key @bundle-signer.pub\n  trustplane receipt verify --receipt - --trust-material trust.json --bundle-public-key @signer.pub \\\n    --expect-adapter edge-1 --json < receipt.jws',
    )
    .action(async (opts: ReceiptVerifyFlags) => {
      const trust = await loadTrust(opts);
      const compact = readValue(opts.receipt).trim();
      let verified: VerifiedReceipt;
      try {
        verified = await verifyReceipt(
          compact,
          trust,
          opts.expectAdapter !== undefined ? { expectAdapter: opts.expectAdapter } : {},
        );
      } catch (e) {
        if (e instanceof ReceiptError) throw new CliError(e.message, e.reason, 1);
        throw e;
      }
      if (opts.json) {
        writeJson({
          valid: true,
          header: verified.header,
          payload: verified.payload,
          key: verified.key,
          trust_material: {
            signed: trust.signed,
            ...(trust.signerKid ? { signer_kid: trust.signerKid } : {}),
          },
        });
      } else {
        process.stdout.write(summary(verified));
      }
    });
}
