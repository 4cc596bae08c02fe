import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import {
  createIssuerRegistry,
  isKeyBinding,
  issuePassport,
  parsePublicKey,
  verifyPassport,
  type IssuePassportClaims,
  type IssuerRegistry,
  type KeyBinding,
  type PassportContext,
  type SigningKey,
  type VerifiedPassport,
} from '../../../pkg/authcore/index.js';
import { CliError, collect, nowSeconds, parseIntOption, readValue, writeJson } from '../io.js';
import { loadPrivateKey } from './keys.js';

/** Options shared by `issue` and `sign`. */
export interface PassportFlags {
  privateKey?: string;
  issuer: string;
  subject: string;
  audience: string;
  trustDomain: string;
  kid: string;
  keyBinding: string;
  ttl: number;
  iat?: number;
  jti?: string;
  ctx?: string[];
}

/** Add the passport flags to a command. */
export function addPassportOptions(cmd: Command): Command {
  return cmd
    .option(
      '--private-key <key>',
      'issuer private key: key text, seed, PEM, JWK, or @file (env TRUSTPLANE_PRIVATE_KEY)',
    )
    .requiredOption('--issuer <iss>', 'passport issuer (iss)')
    .requiredOption('--subject <sub>', 'passport subject (sub)')
    .requiredOption('--audience <aud>', 'audience: the protected API (aud)')
    .requiredOption('--trust-domain <domain>', 'trust domain of the issuer')
    .requiredOption('--kid <kid>', 'key id of the issuer key (JWS header kid, and cnf.kid when self-issued)')
    .option(
      '--key-binding <class>',
      'cnf.key_binding: software | remote_kms | hardware_local | attested_workload',
      'software',
    )
    .option('--ttl <seconds>', 'lifetime in seconds', parseIntOption('--ttl'), 300)
    .option(
      '--iat <epoch>',
      'issued-at, epoch seconds (default now; for reproducible vectors)',
      parseIntOption('--iat'),
    )
    .option('--jti <id>', 'passport id (default random; for reproducible vectors)')
    .option(
      '--ctx <key=value>',
      'context claim (repeatable): actor_type, purpose, tool_name, workflow_id, max_txn_value',
      collect,
    );
}

const CTX_KEYS = new Set(['actor_type', 'purpose', 'tool_name', 'workflow_id', 'max_txn_value']);

function parseCtx(pairs: string[] | undefined): PassportContext | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  const ctx: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const k = eq < 0 ? pair : pair.slice(0, eq);
    if (eq < 1 || !CTX_KEYS.has(k))
      throw new CliError(`--ctx ${JSON.stringify(k)} is not a known context key`, 'usage', 2);
    ctx[k] = pair.slice(eq + 1);
  }
  return ctx as PassportContext;
}

/** Build and sign a passport from flags; `cnfKey` defaults to the issuer key (self-issued). */
export async function issueFromFlags(
  flags: PassportFlags,
  issuerKey: SigningKey,
  cnf?: { x: string; kid: string },
): Promise<{ token: string; claims: IssuePassportClaims }> {
  if (!isKeyBinding(flags.keyBinding))
    throw new CliError(`unknown --key-binding ${flags.keyBinding}`, 'usage', 2);
  if (flags.ttl <= 0) throw new CliError('--ttl must be positive', 'usage', 2);
  const iat = flags.iat ?? nowSeconds();
  const ctx = parseCtx(flags.ctx);
  const claims: IssuePassportClaims = {
    iss: flags.issuer,
    sub: flags.subject,
    aud: flags.audience,
    iat,
    exp: iat + flags.ttl,
    jti: flags.jti ?? randomBytes(16).toString('base64url'),
    trust_domain: flags.trustDomain,
    cnf: {
      kid: cnf?.kid ?? flags.kid,
      key_binding: flags.keyBinding as KeyBinding,
      public_key_b64url: cnf?.x ?? issuerKey.publicKey.x,
    },
    ...(ctx ? { ctx } : {}),
  };
  return { token: await issuePassport(claims, issuerKey, { kid: flags.kid }), claims };
}

/** `trustplane issue` */
export function registerIssue(program: Command): void {
  addPassportOptions(
    program
      .command('issue')
      .description(
        'Issue a passport (compact EdDSA JWS). Self-issued unless --cnf-public-key names another request key.',
      ),
  )
    .option('--cnf-public-key <key>', 'request-proof public key for cnf (default: the issuer key itself)')
    .option('--cnf-kid <kid>', 'cnf.kid when --cnf-public-key is given', 'request-key')
    .addHelpText(
      'after',
      '\nExample:\n  trustplane issue --private-key @caller.key --issuer https://issuer.example --subject service:orders-client \\\n    --audience orders-api --trust-domain example.local --kid caller-2026-01 --ttl 120',
    )
    .action(async (opts: PassportFlags & { cnfPublicKey?: string; cnfKid: string }) => {
      const key = await loadPrivateKey(opts.privateKey);
      const cnf =
        opts.cnfPublicKey !== undefined
          ? { x: (await parsePublicKey(readValue(opts.cnfPublicKey))).x, kid: opts.cnfKid }
          : undefined;
      const { token } = await issueFromFlags(opts, key, cnf);
      process.stdout.write(`${token}\n`);
    });
}

/** Build an issuer registry from `--public-key --issuer --trust-domain --kid` flags. */
export async function registryFromFlags(opts: {
  publicKey: string;
  issuer: string;
  trustDomain: string;
  kid: string;
  sourceType: string;
  maxKeyBinding: string;
}): Promise<IssuerRegistry> {
  if (!isKeyBinding(opts.maxKeyBinding)) throw new CliError('unknown --max-key-binding', 'usage', 2);
  const key = await parsePublicKey(readValue(opts.publicKey));
  return createIssuerRegistry([
    {
      issuer: opts.issuer,
      trustDomain: opts.trustDomain,
      sourceType: opts.sourceType,
      maxKeyBinding: opts.maxKeyBinding,
      keys: new Map([[opts.kid, { kid: opts.kid, key }]]),
    },
  ]);
}

/** Loads a policy bundle and checks a verified passport against one of its routes. */
export interface PolicyCheck {
  load(
    path: string,
    opts: { publicKeys?: string[]; devAllowUnsigned?: boolean; routeId: string },
  ): Promise<{
    audience: string;
    evaluate(passport: VerifiedPassport, now: number): Record<string, unknown>;
  }>;
}

/** `trustplane verify` */
export function registerVerify(
  program: Command,
  loadTrust: (
    path: string,
    opts: { trustMaterialPublicKey?: string[]; devAllowUnsigned?: boolean },
  ) => Promise<IssuerRegistry>,
  checkPolicy: PolicyCheck,
): void {
  program
    .command('verify')
    .description(
      'Verify a passport (signature, issuer key, claims, audience, lifetime) and print its claims. ' +
        'For a whole signed request (proof, transcript, which inputs a binding mismatch differs in), use trustplane explain.',
    )
    .requiredOption('--token <passport>', 'the passport, or @file, or - for stdin')
    .option('--audience <aud>', 'expected audience (default: the audience of --route-id in --policy-bundle)')
    .option('--trust-material <file>', 'trust material document with the issuer keys')
    .option(
      '--trust-material-public-key <key>',
      'public key that signed the trust material (repeatable)',
      collect,
    )
    .option('--dev-allow-unsigned', 'accept an unsigned trust material (development only)')
    .option(
      '--public-key <key>',
      'issuer public key (instead of --trust-material), with --issuer/--trust-domain/--kid',
    )
    .option('--issuer <iss>', 'issuer for --public-key')
    .option('--trust-domain <domain>', 'trust domain for --public-key')
    .option('--kid <kid>', 'kid for --public-key')
    .option('--source-type <type>', 'source type for --public-key', 'software_jwks')
    .option(
      '--max-key-binding <class>',
      'highest key binding the --public-key issuer may vouch for',
      'software',
    )
    .option(
      '--policy-bundle <file>',
      'also check the passport against a route of this policy bundle (with --route-id)',
    )
    .option(
      '--policy-bundle-public-key <key>',
      'public key that signed the policy bundle (repeatable)',
      collect,
    )
    .option('--route-id <id>', 'route whose source, key-binding, context and provenance rules to apply')
    .option('--now <epoch>', 'verification time, epoch seconds (default now)', parseIntOption('--now'))
    .option('--skew <seconds>', 'clock skew tolerance', parseIntOption('--skew'), 30)
    .option('--max-lifetime <seconds>', 'maximum exp - iat', parseIntOption('--max-lifetime'), 600)
    .addHelpText(
      'after',
      '\nExamples:\n  trustplane verify --token @passport.jwt --audience orders-api --trust-material trust.json \\\n    --trust-material-public-key @bundle-signer.pub\n  trustplane verify --token "$T" --audience orders-api --public-key <x> --issuer https://issuer.example \\\n    --trust-domain example.local --kid caller-2026-01\n  trustplane verify --token @passport.jwt --trust-material trust.json --trust-material-public-key @signer.pub \\\n    --policy-bundle policy.json --policy-bundle-public-key @signer.pub --route-id orders.search',
    )
    .action(
      async (opts: {
        token: string;
        audience?: string;
        policyBundle?: string;
        policyBundlePublicKey?: string[];
        routeId?: string;
        trustMaterial?: string;
        trustMaterialPublicKey?: string[];
        devAllowUnsigned?: boolean;
        publicKey?: string;
        issuer?: string;
        trustDomain?: string;
        kid?: string;
        sourceType: string;
        maxKeyBinding: string;
        now?: number;
        skew: number;
        maxLifetime: number;
      }) => {
        let issuers: IssuerRegistry;
        if (opts.trustMaterial !== undefined) {
          issuers = await loadTrust(opts.trustMaterial, {
            ...(opts.trustMaterialPublicKey ? { trustMaterialPublicKey: opts.trustMaterialPublicKey } : {}),
            ...(opts.devAllowUnsigned ? { devAllowUnsigned: true } : {}),
          });
        } else if (opts.publicKey !== undefined) {
          if (!opts.issuer || !opts.trustDomain || !opts.kid) {
            throw new CliError('--public-key needs --issuer, --trust-domain and --kid', 'usage', 2);
          }
          issuers = await registryFromFlags({
            publicKey: opts.publicKey,
            issuer: opts.issuer,
            trustDomain: opts.trustDomain,
            kid: opts.kid,
            sourceType: opts.sourceType,
            maxKeyBinding: opts.maxKeyBinding,
          });
        } else {
          throw new CliError('give --trust-material or --public-key', 'usage', 2);
        }
        if ((opts.policyBundle === undefined) !== (opts.routeId === undefined)) {
          throw new CliError('--policy-bundle and --route-id go together', 'usage', 2);
        }
        const now = opts.now ?? nowSeconds();
        const policy =
          opts.policyBundle !== undefined
            ? await checkPolicy.load(opts.policyBundle, {
                ...(opts.policyBundlePublicKey ? { publicKeys: opts.policyBundlePublicKey } : {}),
                ...(opts.devAllowUnsigned ? { devAllowUnsigned: true } : {}),
                routeId: opts.routeId!,
              })
            : undefined;
        const audience = opts.audience ?? policy?.audience;
        if (audience === undefined)
          throw new CliError('--audience is required (or --policy-bundle with --route-id)', 'usage', 2);
        const verified = await verifyPassport(readValue(opts.token).trim(), {
          issuers,
          audience,
          now,
          skewSeconds: opts.skew,
          maxLifetimeSeconds: opts.maxLifetime,
        });
        writeJson({
          valid: true,
          header: verified.header,
          claims: verified.claims,
          effective_key_binding: verified.effectiveKeyBinding,
          source_type: verified.issuer.sourceType,
          ...(policy ? { policy: policy.evaluate(verified, now) } : {}),
        });
      },
    );
}
