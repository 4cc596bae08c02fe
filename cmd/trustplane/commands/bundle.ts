import type { Command } from 'commander';
import {
  parsePublicKey,
  type IssuerRegistry,
  type VerifiedPassport,
  TrustplaneError,
} from '../../../pkg/authcore/index.js';
import { evaluateRoutePolicy } from '../../../pkg/verifier/index.js';
import type { PolicyCheck } from './passport.js';
import {
  buildPolicyBundle,
  buildTrustMaterial,
  describePolicyFreshness,
  describeTrustFreshness,
  freshnessJson,
  loadPolicyBundle,
  loadTrustMaterial,
  mergeSource,
  parsePolicyBundle,
  parseTrustMaterial,
  removeSource,
  signDocument,
  type DocumentSigner,
  type PolicyBundle,
  type PolicySource,
  type TrustMaterial,
  type TrustMaterialIssuer,
} from '../../../pkg/bundle/index.js';
import {
  CliError,
  nowSeconds,
  parseIntOption,
  readJsonFile,
  readJsonValue,
  readValue,
  writeJson,
} from '../io.js';
import { loadPrivateKey } from './keys.js';
import { readText } from '../io.js';
import {
  configFileBuilder,
  createLogger,
  keyBundleSigner,
  LOG_LEVELS,
  startBundleServer,
  type LogLevel,
} from '../../../pkg/runtime/index.js';

type AnyDocument = PolicyBundle | TrustMaterial;

function kindOf(doc: unknown): 'policy' | 'trust-material' {
  const kind = typeof doc === 'object' && doc !== null ? (doc as { kind?: unknown }).kind : undefined;
  if (kind === 'policy_runtime_bundle') return 'policy';
  if (kind === 'trust_material') return 'trust-material';
  throw new CliError('document kind must be policy_runtime_bundle or trust_material', 'invalid_bundle');
}

function parseDocument(doc: unknown): AnyDocument {
  return kindOf(doc) === 'policy' ? parsePolicyBundle(doc) : parseTrustMaterial(doc);
}

function signedByKid(doc: unknown): string | undefined {
  const signedBy = (doc as { signed_by?: { kid?: unknown } }).signed_by;
  return typeof signedBy?.kid === 'string' ? signedBy.kid : undefined;
}

/** Build document signers from `--public-key` values; kid defaults to the document's `signed_by.kid`. */
async function signersFrom(
  keys: string[] | undefined,
  kid: string | undefined,
  doc: unknown,
): Promise<DocumentSigner[]> {
  const signerKid = kid ?? signedByKid(doc) ?? 'unsigned';
  const out: DocumentSigner[] = [];
  for (const [i, value] of (keys ?? []).entries()) {
    out.push({ kid: i === 0 ? signerKid : `${signerKid}#${i}`, key: await parsePublicKey(readValue(value)) });
  }
  return out;
}

function warnUnsigned(what: string): void {
  process.stderr.write(
    `trustplane: WARNING: ${what} is UNSIGNED and was accepted only because of --dev-allow-unsigned\n`,
  );
}

/** Load and verify trust material for `trustplane verify --trust-material`. */
export async function loadTrustRegistry(
  path: string,
  opts: { trustMaterialPublicKey?: string[]; devAllowUnsigned?: boolean },
): Promise<IssuerRegistry> {
  const doc = readJsonFile(path);
  const signers = await signersFrom(opts.trustMaterialPublicKey, undefined, doc);
  if (signers.length === 0 && !opts.devAllowUnsigned) {
    throw new CliError('--trust-material-public-key is required (or --dev-allow-unsigned)', 'usage', 2);
  }
  const loaded = await loadTrustMaterial(doc, {
    signers,
    allowUnsigned: opts.devAllowUnsigned === true,
    now: nowSeconds(),
  });
  if (!loaded.signed) warnUnsigned(path);
  return loaded;
}

/** `verify --policy-bundle --route-id`: load the bundle, then apply the route's policy to a passport. */
export const policyCheck: PolicyCheck = {
  async load(path, opts) {
    const doc = readJsonFile(path);
    const signers = await signersFrom(opts.publicKeys, undefined, doc);
    if (signers.length === 0 && !opts.devAllowUnsigned) {
      throw new CliError('--policy-bundle-public-key is required (or --dev-allow-unsigned)', 'usage', 2);
    }
    const policy = await loadPolicyBundle(doc, {
      signers,
      allowUnsigned: opts.devAllowUnsigned === true,
      now: nowSeconds(),
    });
    if (!policy.signed) warnUnsigned(path);
    const entry = policy.routeTable.resolveById(opts.routeId);
    if (!entry)
      throw new TrustplaneError(
        'bundle_route_missing',
        `no route ${JSON.stringify(opts.routeId)} in the policy bundle`,
      );
    return {
      audience: entry.api.audience,
      evaluate(passport: VerifiedPassport, now: number) {
        const { source, freshness } = evaluateRoutePolicy(
          entry.route,
          policy,
          { ...passport, kid: passport.header.kid },
          { now },
        );
        return {
          route_id: entry.route.route_id,
          allowed: true,
          source_type: source.source_type,
          freshness_class: freshness.freshnessClass,
        };
      },
    };
  },
};

function collectKeys(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `trustplane bundle …` */
export function registerBundle(program: Command): void {
  const bundle = program
    .command('bundle')
    .description('Build, sign, verify and edit trust material and policy bundles.')
    .addHelpText(
      'after',
      '\nExample:\n  trustplane bundle build --config policy.config.json --out policy.json',
    );

  bundle
    .command('build')
    .description('Build an unsigned policy bundle or trust material from a config file.')
    .requiredOption(
      '--config <file>',
      'config JSON (policy: trust_domain, apis, route_groups, defaults...; trust material: issuers...)',
    )
    .option('--kind <kind>', 'policy | trust-material', 'policy')
    .option('--out <file>', 'output file (default stdout)')
    .option('--now <epoch>', 'issued_at, epoch seconds (default now)', parseIntOption('--now'))
    .addHelpText(
      'after',
      '\nExamples:\n  trustplane bundle build --config policy.config.json --out policy.json\n  trustplane bundle build --kind trust-material --config trust.config.json --out trust.json',
    )
    .action((opts: { config: string; kind: string; out?: string; now?: number }) => {
      const config = readJsonFile(opts.config) as never;
      const now = opts.now ?? nowSeconds();
      if (opts.kind === 'policy') writeJson(buildPolicyBundle(config, now), opts.out);
      else if (opts.kind === 'trust-material') writeJson(buildTrustMaterial(config, now), opts.out);
      else throw new CliError('--kind must be policy or trust-material', 'usage', 2);
    });

  bundle
    .command('sign')
    .description('Sign a policy bundle or trust material (Ed25519 over RFC 8785 canonical JSON).')
    .requiredOption('--bundle <file>', 'document to sign')
    .option('--private-key <key>', 'signer private key, or @file (env TRUSTPLANE_PRIVATE_KEY)')
    .requiredOption('--issuer <iss>', 'signer identity (signed_by.issuer)')
    .requiredOption('--kid <kid>', 'signer key id (signed_by.kid)')
    .option('--out <file>', 'output file (default stdout; may equal --bundle)')
    .addHelpText(
      'after',
      '\nExample:\n  trustplane bundle sign --bundle policy.json --private-key @bundle-signer.key \\\n    --issuer https://bundles.example --kid bundle-2026-01 --out policy.signed.json',
    )
    .action(
      async (opts: { bundle: string; privateKey?: string; issuer: string; kid: string; out?: string }) => {
        const doc = parseDocument(readJsonFile(opts.bundle));
        const key = await loadPrivateKey(opts.privateKey);
        writeJson(await signDocument(doc, key, { issuer: opts.issuer, kid: opts.kid }), opts.out);
      },
    );

  bundle
    .command('verify')
    .description('Verify a document: schema, signature, references; prints a summary.')
    .requiredOption('--bundle <file>', 'policy bundle or trust material')
    .option('--public-key <key>', 'signer public key (repeatable), or @file', collectKeys)
    .option('--kid <kid>', 'expected signer kid (default: the document signed_by.kid)')
    .option('--dev-allow-unsigned', 'accept an unsigned document (development only; loudly logged)')
    .option('--now <epoch>', 'time for expiry checks, epoch seconds (default now)', parseIntOption('--now'))
    .addHelpText(
      'after',
      '\nExamples:\n  trustplane bundle verify --bundle policy.signed.json --public-key @bundle-signer.pub\n  trustplane bundle verify --bundle bundles/example.policy-bundle.json --dev-allow-unsigned',
    )
    .action(
      async (opts: {
        bundle: string;
        publicKey?: string[];
        kid?: string;
        devAllowUnsigned?: boolean;
        now?: number;
      }) => {
        const raw = readJsonFile(opts.bundle);
        const signers = await signersFrom(opts.publicKey, opts.kid, raw);
        if (signers.length === 0 && !opts.devAllowUnsigned) {
          throw new CliError('--public-key is required (or --dev-allow-unsigned)', 'usage', 2);
        }
        const load = {
          signers,
          allowUnsigned: opts.devAllowUnsigned === true,
          now: opts.now ?? nowSeconds(),
        };
        if (kindOf(raw) === 'policy') {
          const p = await loadPolicyBundle(raw, load);
          if (!p.signed) warnUnsigned(opts.bundle);
          writeJson({
            valid: true,
            kind: 'policy_runtime_bundle',
            signed: p.signed,
            ...(p.signerKid !== undefined ? { signer_kid: p.signerKid } : {}),
            trust_domain: p.trustDomain,
            apis: p.apisById.size,
            routes: p.routesById.size,
            ...(p.issuedAt !== undefined ? { issued_at: p.issuedAt } : {}),
            // age, shortest bounded limit, time left and state at --now (docs/operations.md)
            freshness: freshnessJson(describePolicyFreshness(p.document, load.now)),
          });
        } else {
          const t = await loadTrustMaterial(raw, load);
          if (!t.signed) warnUnsigned(opts.bundle);
          writeJson({
            valid: true,
            kind: 'trust_material',
            signed: t.signed,
            ...(t.signerKid !== undefined ? { signer_kid: t.signerKid } : {}),
            issuers: [...t.issuers.keys()],
            ...(t.issuedAt !== undefined ? { issued_at: t.issuedAt } : {}),
            freshness: freshnessJson(describeTrustFreshness(t, load.now)),
          });
        }
      },
    );

  bundle
    .command('serve')
    .description(
      'Publish the trust material and policy bundle: build them from their configs, sign, re-sign on a schedule and on change, serve over HTTP(S) with ETags and long-polling.',
    )
    .requiredOption(
      '--trust-config <file>',
      'trust material config (as for `bundle build --kind trust-material`)',
    )
    .requiredOption('--policy-config <file>', 'policy config (as for `bundle build`)')
    .option('--private-key <key>', 'bundle signing key, or @file (env TRUSTPLANE_PRIVATE_KEY)')
    .requiredOption('--issuer <iss>', 'signer identity (signed_by.issuer)')
    .requiredOption('--kid <kid>', 'signer key id (signed_by.kid) verifiers pin')
    .option('--listen <host:port>', 'listen address', '127.0.0.1:8443')
    .option(
      '--resign-interval-seconds <n>',
      're-sign interval (default: a third of the shortest bounded or realtime route limit)',
      parseIntOption('--resign-interval-seconds'),
    )
    .option(
      '--max-wait-seconds <n>',
      'longest long-poll accepted (default 60)',
      parseIntOption('--max-wait-seconds'),
    )
    .option(
      '--max-waiting-requests <n>',
      'most long-polls held at once; beyond it a request is answered at once (default 1000)',
      parseIntOption('--max-waiting-requests'),
    )
    .option(
      '--token <token>',
      'fetchers must send Authorization: Bearer <token> (@file; prefer env TRUSTPLANE_BUNDLE_SERVE_TOKEN)',
    )
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate chain')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--client-ca <file>', 'require client certificates issued by this PEM CA (mTLS)')
    .option('--log-level <level>', 'debug | info (default) | warn | error | silent', 'info')
    .addHelpText(
      'after',
      `
Documents: GET /trust-material.json and /policy-bundle.json (strong ETag = SHA-256 of the bytes,
If-None-Match -> 304; ?wait=N or "Prefer: wait=N" long-polls up to N s for a newer one);
GET /healthz, GET /metrics. Point verifiers at them:
  trustplane adapter --trust-material http://127.0.0.1:8443/trust-material.json \\
    --policy-bundle http://127.0.0.1:8443/policy-bundle.json --bundle-public-key @bundle-signer.pub

Example:
  trustplane bundle serve --trust-config trust.config.json --policy-config policy.config.json \\
    --private-key @bundle-signer.key --issuer https://bundles.example --kid bundle-2026-01`,
    )
    .action(
      async (opts: {
        trustConfig: string;
        policyConfig: string;
        privateKey?: string;
        issuer: string;
        kid: string;
        listen: string;
        resignIntervalSeconds?: number;
        maxWaitSeconds?: number;
        maxWaitingRequests?: number;
        token?: string;
        tlsCert?: string;
        tlsKey?: string;
        clientCa?: string;
        logLevel: string;
      }) => {
        if (!(LOG_LEVELS as readonly string[]).includes(opts.logLevel))
          throw new CliError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`, 'usage', 2);
        if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined))
          throw new CliError('--tls-cert and --tls-key go together', 'usage', 2);
        if (opts.clientCa !== undefined && opts.tlsCert === undefined)
          throw new CliError('--client-ca needs --tls-cert and --tls-key', 'usage', 2);
        if (opts.maxWaitingRequests !== undefined && opts.maxWaitingRequests < 1)
          throw new CliError('--max-waiting-requests must be at least 1', 'usage', 2);
        const key = await loadPrivateKey(opts.privateKey);
        const tokenValue = opts.token ?? process.env.TRUSTPLANE_BUNDLE_SERVE_TOKEN;
        const token = tokenValue !== undefined ? readValue(tokenValue).trim() : undefined;
        if (token !== undefined && token.length < 16)
          throw new CliError('the bearer token must be at least 16 characters', 'usage', 2);
        const server = await startBundleServer({
          listen: opts.listen,
          signer: keyBundleSigner(key, { issuer: opts.issuer, kid: opts.kid }),
          build: configFileBuilder({ trustConfig: opts.trustConfig, policyConfig: opts.policyConfig }),
          watchFiles: [opts.trustConfig, opts.policyConfig],
          log: createLogger(opts.logLevel as LogLevel),
          ...(opts.resignIntervalSeconds !== undefined
            ? { resignIntervalSeconds: opts.resignIntervalSeconds }
            : {}),
          ...(opts.maxWaitSeconds !== undefined ? { maxWaitSeconds: opts.maxWaitSeconds } : {}),
          ...(opts.maxWaitingRequests !== undefined ? { maxWaitingRequests: opts.maxWaitingRequests } : {}),
          ...(token !== undefined ? { bearerToken: token } : {}),
          ...(opts.tlsCert !== undefined && opts.tlsKey !== undefined
            ? {
                tls: {
                  cert: readText(opts.tlsCert),
                  key: readText(opts.tlsKey),
                  ...(opts.clientCa !== undefined ? { clientCa: readText(opts.clientCa) } : {}),
                },
              }
            : {}),
        });
        process.stdout.write(`bundle server listening on ${server.url}\n`);
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            void server.close().then(resolve);
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
      },
    );

  bundle
    .command('merge-source')
    .description(
      'Add a source without touching the rest: an issuer (trust material) or an allowed source of a route (policy). The result is unsigned: sign it again.',
    )
    .requiredOption('--bundle <file>', 'document to edit')
    .requiredOption('--source <json>', 'the issuer or source object as JSON, or @file')
    .option('--route-id <id>', 'route to add the source to (policy bundles)')
    .option('--replace-existing', 'replace an existing kid or source selector instead of refusing')
    .option('--out <file>', 'output file (default stdout; may equal --bundle)')
    .addHelpText(
      'after',
      '\nExamples:\n  trustplane bundle merge-source --bundle trust.json --source @new-issuer.json --out trust.json\n  trustplane bundle merge-source --bundle policy.json --route-id orders.search --source @source.json --out policy.json',
    )
    .action(
      (opts: {
        bundle: string;
        source: string;
        routeId?: string;
        replaceExisting?: boolean;
        out?: string;
      }) => {
        const doc = parseDocument(readJsonFile(opts.bundle));
        const source = readJsonValue(opts.source, '--source');
        const options = { replace: opts.replaceExisting === true };
        if (doc.kind === 'trust_material') {
          writeJson(mergeSource(doc, source as TrustMaterialIssuer, options), opts.out);
        } else {
          if (opts.routeId === undefined)
            throw new CliError('--route-id is required for a policy bundle', 'usage', 2);
          writeJson(
            mergeSource(doc, { routeId: opts.routeId, source: source as PolicySource }, options),
            opts.out,
          );
        }
      },
    );

  bundle
    .command('remove-source')
    .description(
      'Remove an issuer or one of its kids (trust material), or a source of a route (policy). Needs --confirm-remove.',
    )
    .requiredOption('--bundle <file>', 'document to edit')
    .option('--issuer <iss>', 'issuer to remove (trust material)')
    .option('--kid <kid>', 'remove only this key of --issuer')
    .option('--route-id <id>', 'route whose source to remove (policy bundles)')
    .option(
      '--source <json>',
      'selector of the source to remove: source_type, issuer, trust_domain, subject_exact|subject_prefix',
    )
    .option('--confirm-remove', 'really remove (without it nothing is written)')
    .option('--out <file>', 'output file (default stdout; may equal --bundle)')
    .addHelpText(
      'after',
      '\nExamples:\n  trustplane bundle remove-source --bundle trust.json --issuer https://old.example --confirm-remove --out trust.json\n  trustplane bundle remove-source --bundle policy.json --route-id orders.search --source @selector.json --confirm-remove',
    )
    .action(
      (opts: {
        bundle: string;
        issuer?: string;
        kid?: string;
        routeId?: string;
        source?: string;
        confirmRemove?: boolean;
        out?: string;
      }) => {
        const doc = parseDocument(readJsonFile(opts.bundle));
        let result: AnyDocument;
        if (doc.kind === 'trust_material') {
          if (opts.issuer === undefined)
            throw new CliError('--issuer is required for trust material', 'usage', 2);
          result = removeSource(doc, {
            issuer: opts.issuer,
            ...(opts.kid !== undefined ? { kid: opts.kid } : {}),
          });
        } else {
          if (opts.routeId === undefined || opts.source === undefined) {
            throw new CliError('--route-id and --source are required for a policy bundle', 'usage', 2);
          }
          const selector = readJsonValue(opts.source, '--source');
          result = removeSource(doc, { routeId: opts.routeId, source: selector as PolicySource });
        }
        if (!opts.confirmRemove) {
          throw new CliError(
            'removal checked but not written: add --confirm-remove to apply it',
            'confirmation_required',
            2,
          );
        }
        writeJson(result, opts.out);
      },
    );
}
