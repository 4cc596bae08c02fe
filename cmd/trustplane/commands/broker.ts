import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Command } from 'commander';
import { isKeyBinding, type KeyBinding } from '../../../pkg/authcore/index.js';
import {
  BrokerIpcClient,
  BrokerIpcError,
  MAX_TLS_LIMIT,
  brokerTlsConnector,
  issuancePolicySchema,
  openSpiffeFilesIdentity,
  startBroker,
  type BrokerConfig,
  type BrokerIdentityConfig,
  type IssuancePolicy,
  type SpiffeIdentitySource,
} from '../../../pkg/broker/index.js';
import { createLogger, isBundleUrl, LOG_LEVELS, type LogLevel } from '../../../pkg/runtime/index.js';
import { BrokerDeniedError, brokerPassports, prepareRequest } from '../../../pkg/client/index.js';
import { CliError, collect, readJsonFile, readValue } from '../io.js';
import { requestBodyAndHeaders, shellQuote } from './sign.js';

/** Default broker socket: `$TRUSTPLANE_BROKER_SOCKET`, else `./trustplane-state/broker.sock`. */
export function defaultBrokerSocket(env: NodeJS.ProcessEnv = process.env): string {
  return env.TRUSTPLANE_BROKER_SOCKET ?? join('trustplane-state', 'broker.sock');
}

interface ServeFlags {
  socket?: string;
  issuer?: string;
  kid?: string;
  privateKey?: string;
  identity: string;
  subject?: string;
  trustDomain?: string;
  svidDir?: string;
  svidCert?: string;
  svidKey?: string;
  svidBundle?: string;
  spiffeEndpointSocket?: string;
  trustMaterial?: string;
  policyBundle?: string;
  bundleStateDir?: string;
  bundleFetchWaitSeconds?: string;
  trustMaterialPublicKey?: string[];
  policyBundlePublicKey?: string[];
  bundlePublicKey?: string[];
  devAllowUnsigned?: boolean;
  issuance?: string;
  audit: string;
  tlsListen?: string;
  tlsMaxConnections?: string;
  tlsMaxInFlight?: string;
  instance?: string;
  logLevel: string;
  reloadIntervalMs: string;
}

/** Turn `trustplane broker serve` flags (and environment) into a config, one line per problem. */
export function brokerConfigFromFlags(opts: ServeFlags, env: NodeJS.ProcessEnv = process.env): BrokerConfig {
  const problems: string[] = [];
  const need = (value: string | undefined, flag: string): string => {
    if (value === undefined || value === '') problems.push(`${flag} is required`);
    return value ?? '';
  };
  const keyText = opts.privateKey ?? env.TRUSTPLANE_BROKER_PRIVATE_KEY;
  const issuer = need(opts.issuer ?? env.TRUSTPLANE_BROKER_ISSUER, '--issuer');
  const kid = need(opts.kid ?? env.TRUSTPLANE_BROKER_KID, '--kid');
  need(keyText, '--private-key (or TRUSTPLANE_BROKER_PRIVATE_KEY)');
  const trustMaterial = need(opts.trustMaterial ?? env.TRUSTPLANE_TRUST_MATERIAL, '--trust-material');
  const policyBundle = need(opts.policyBundle ?? env.TRUSTPLANE_POLICY_BUNDLE, '--policy-bundle');
  const shared = opts.bundlePublicKey ?? [];
  const trustKeys = [...(opts.trustMaterialPublicKey ?? []), ...shared];
  const policyKeys = [...(opts.policyBundlePublicKey ?? []), ...shared];
  if (!opts.devAllowUnsigned && (trustKeys.length === 0 || policyKeys.length === 0)) {
    problems.push(
      '--bundle-public-key (or --trust-material-public-key and --policy-bundle-public-key) is required',
    );
  }
  let identity: BrokerIdentityConfig | undefined;
  switch (opts.identity) {
    case 'software':
      identity = {
        kind: 'software',
        subject: need(opts.subject, '--subject (software identity)'),
        trustDomain: need(opts.trustDomain, '--trust-domain (software identity)'),
      };
      break;
    case 'spiffe-files': {
      const dir = opts.svidDir;
      const file = (given: string | undefined, name: string, flag: string) =>
        given ?? (dir !== undefined ? join(dir, name) : need(undefined, `${flag} or --svid-dir`));
      identity = {
        kind: 'spiffe-files',
        certFile: file(opts.svidCert, 'svid.pem', '--svid-cert'),
        keyFile: file(opts.svidKey, 'svid_key.pem', '--svid-key'),
        bundleFile: file(opts.svidBundle, 'svid_bundle.pem', '--svid-bundle'),
      };
      break;
    }
    case 'workload-api': {
      const endpoint = opts.spiffeEndpointSocket ?? env.SPIFFE_ENDPOINT_SOCKET;
      identity = { kind: 'workload-api', ...(endpoint !== undefined ? { endpoint } : {}) };
      if (endpoint === undefined)
        problems.push('--spiffe-endpoint-socket (or SPIFFE_ENDPOINT_SOCKET) is required');
      break;
    }
    default:
      problems.push('--identity must be software, spiffe-files or workload-api');
  }
  if (!(LOG_LEVELS as readonly string[]).includes(opts.logLevel)) {
    problems.push(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  if (!/^\d{1,9}$/.test(opts.reloadIntervalMs))
    problems.push('--reload-interval-ms must be a non-negative integer');
  const tlsLimit = (value: string | undefined, flag: string): number | undefined => {
    if (value === undefined || value === '') return undefined;
    const n = /^\d{1,7}$/.test(value) ? Number(value) : Number.NaN;
    if (!(n >= 1 && n <= MAX_TLS_LIMIT)) {
      problems.push(`${flag} must be an integer from 1 to ${MAX_TLS_LIMIT}`);
      return undefined;
    }
    return n;
  };
  const tlsMaxConnections = tlsLimit(
    opts.tlsMaxConnections ?? env.TRUSTPLANE_BROKER_TLS_MAX_CONNECTIONS,
    '--tls-max-connections',
  );
  const tlsMaxInFlight = tlsLimit(
    opts.tlsMaxInFlight ?? env.TRUSTPLANE_BROKER_TLS_MAX_IN_FLIGHT,
    '--tls-max-in-flight',
  );
  let issuance: IssuancePolicy | undefined;
  if (opts.issuance !== undefined) {
    const parsed = issuancePolicySchema.safeParse(readJsonFile(opts.issuance));
    if (parsed.success) issuance = parsed.data;
    else {
      for (const issue of parsed.error.issues) {
        problems.push(`--issuance: ${issue.path.join('.') || '(document)'}: ${issue.message}`);
      }
    }
  }
  if (problems.length > 0 || identity === undefined) {
    throw new CliError(problems.join('\ntrustplane: config: '), 'config', 2);
  }
  return {
    socketPath: opts.socket ?? defaultBrokerSocket(env),
    issuer,
    issuerKid: kid,
    issuerKeyText: readValue(keyText!),
    identity,
    trustMaterial,
    policyBundle,
    trustMaterialPublicKeys: trustKeys.map(readValue),
    policyBundlePublicKeys: policyKeys.map(readValue),
    devAllowUnsigned: opts.devAllowUnsigned === true,
    ...(isBundleUrl(trustMaterial) || isBundleUrl(policyBundle)
      ? {
          bundleRemote: {
            stateDir:
              opts.bundleStateDir ?? env.TRUSTPLANE_BUNDLE_STATE_DIR ?? './trustplane-state/broker-bundles',
            waitSeconds: Number(
              opts.bundleFetchWaitSeconds ?? env.TRUSTPLANE_BUNDLE_FETCH_WAIT_SECONDS ?? 30,
            ),
            pollIntervalMs: Math.max(1_000, Number(opts.reloadIntervalMs) || 5_000),
            timeoutMs: 10_000,
            ...(env.TRUSTPLANE_BUNDLE_FETCH_TOKEN !== undefined
              ? { token: env.TRUSTPLANE_BUNDLE_FETCH_TOKEN }
              : {}),
          },
        }
      : {}),
    ...(issuance ? { issuance } : {}),
    audit: opts.audit,
    ...(opts.tlsListen !== undefined ? { tlsListen: opts.tlsListen } : {}),
    ...(tlsMaxConnections !== undefined ? { tlsMaxConnections } : {}),
    ...(tlsMaxInFlight !== undefined ? { tlsMaxInFlight } : {}),
    ...(opts.instance !== undefined ? { instance: opts.instance } : {}),
    logLevel: opts.logLevel as LogLevel,
    reloadIntervalMs: Number(opts.reloadIntervalMs),
  };
}

interface IssueFlags {
  socket?: string;
  connect?: string;
  brokerSpiffeId?: string;
  svidDir?: string;
  method: string;
  url: string;
  routeId: string;
  audience: string;
  header?: string[];
  body?: string;
  bodyFile?: string;
  keyBinding: string;
  accept?: string[];
  allowSoftwareFallback?: boolean;
  ctx?: string[];
  cover?: string[];
  nonce?: string;
  timeoutMs: string;
  curl?: boolean;
  json?: boolean;
}

const CTX_FIELDS = ['actor_type', 'purpose', 'tool_name', 'workflow_id', 'max_txn_value'] as const;
type CtxField = (typeof CTX_FIELDS)[number];

function parseCtx(pairs: readonly string[] | undefined): Partial<Record<CtxField, string>> | undefined {
  if (pairs === undefined) return undefined;
  const out: Partial<Record<CtxField, string>> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq);
    if (eq < 1 || !(CTX_FIELDS as readonly string[]).includes(key)) {
      throw new CliError(`--ctx must be one of ${CTX_FIELDS.join(', ')} as key=value`, 'usage', 2);
    }
    out[key as CtxField] = pair.slice(eq + 1);
  }
  return out;
}

function keyBindingFlag(value: string, flag: string): KeyBinding {
  if (!isKeyBinding(value))
    throw new CliError(`${flag} must be a signer class (software … attested_workload)`, 'usage', 2);
  return value;
}

const SERVE_EXAMPLE = `
Identities:
  software       --subject S --trust-domain TD                     (class software)
  spiffe-files   --svid-dir DIR (svid.pem, svid_key.pem, svid_bundle.pem from spiffe-helper; rotation is picked up)
  workload-api   --spiffe-endpoint-socket unix:///run/spire/agent.sock (or SPIFFE_ENDPOINT_SOCKET)
  spiffe-* give class attested_workload with provenance trustplane-spiffe-spire-k8s-v1.

Example:
  trustplane broker serve --socket /run/trustplane/broker.sock \\
    --issuer https://issuer.example/spire --kid broker-2026-01 --private-key @broker.key \\
    --identity workload-api --spiffe-endpoint-socket unix:///run/spire/agent.sock \\
    --trust-material trust.json --policy-bundle policy.json --bundle-public-key @bundle-signer.pub`;

const ISSUE_EXAMPLE = `
Prints the headers to send with exactly that request (or a curl command, or JSON with the
passport, stamp and headers). Exits 1 with the broker's reason code when it refuses.

Example:
  trustplane broker issue --socket /run/trustplane/broker.sock --audience orders-api \\
    --method POST --url https://orders.example/v1/orders --route-id orders.create \\
    --header 'Content-Type: application/json' --body '{"sku":"A-1"}' --ctx purpose=create_order --curl

Network mode (a broker serving --tls-listen; passports are minted for this caller's SPIFFE ID):
  trustplane broker issue --connect broker.internal:8443 \\
    --broker-spiffe-id spiffe://example.org/trustplane/broker --svid-dir /run/spiffe \\
    --audience orders-api --url https://orders.example/v1/orders/search --route-id orders.search`;

/** Register `trustplane broker` (serve, issue). */
export function registerBroker(program: Command): void {
  const broker = program
    .command('broker')
    .description(
      'The passport broker: mint request-bound passports for a workload over a Unix socket (broker-ipc-v1).',
    )
    .addHelpText(
      'after',
      `
Without a sub-command, \`trustplane broker\` runs \`serve\`. See docs/broker.md.

Example:
  trustplane broker serve --identity workload-api --issuer https://issuer.example/spire --kid broker-1 \\
    --private-key @broker.key --trust-material trust.json --policy-bundle policy.json --bundle-public-key @signer.pub
  trustplane broker issue --audience orders-api --url https://orders.example/v1/orders/search --route-id orders.search --curl`,
    );

  broker
    .command('serve', { isDefault: true })
    .description('Run the broker (Unix socket, mode 0600; optional TLS network mode with SPIFFE mTLS).')
    .option(
      '--socket <path>',
      'Unix socket (default $TRUSTPLANE_BROKER_SOCKET or ./trustplane-state/broker.sock)',
    )
    .option('--issuer <iss>', 'passport iss: the broker issuer in the trust material')
    .option('--kid <kid>', 'kid of the broker key in the trust material')
    .option('--private-key <key>', 'broker Ed25519 private key (@file; or TRUSTPLANE_BROKER_PRIVATE_KEY)')
    .option('--identity <kind>', 'software | spiffe-files | workload-api', 'software')
    .option('--subject <sub>', 'software identity: passport sub')
    .option('--trust-domain <td>', 'software identity: passport trust_domain')
    .option('--svid-dir <dir>', 'spiffe-helper output directory')
    .option('--svid-cert <file>', 'SVID PEM chain, leaf first (default <svid-dir>/svid.pem)')
    .option('--svid-key <file>', 'SVID private key PEM (default <svid-dir>/svid_key.pem)')
    .option('--svid-bundle <file>', 'trust bundle PEM (default <svid-dir>/svid_bundle.pem)')
    .option('--spiffe-endpoint-socket <addr>', 'Workload API address (default SPIFFE_ENDPOINT_SOCKET)')
    .option('--trust-material <file|url>', 'signed trust material: a file (watched) or a bundle URL (pulled)')
    .option('--policy-bundle <file|url>', 'signed policy bundle: a file (watched) or a bundle URL (pulled)')
    .option(
      '--bundle-state-dir <dir>',
      'bundle URLs: last good documents (default ./trustplane-state/broker-bundles; token from TRUSTPLANE_BUNDLE_FETCH_TOKEN)',
    )
    .option('--bundle-fetch-wait-seconds <n>', 'bundle URLs: long-poll wait (default 30; 0 = poll)')
    .option(
      '--trust-material-public-key <key>',
      'key allowed to sign the trust material (repeatable; @file)',
      collect,
    )
    .option(
      '--policy-bundle-public-key <key>',
      'key allowed to sign the policy bundle (repeatable; @file)',
      collect,
    )
    .option('--bundle-public-key <key>', 'key allowed to sign both documents (repeatable; @file)', collect)
    .option('--dev-allow-unsigned', 'DEVELOPMENT ONLY: accept unsigned bundles (logged loudly)')
    .option('--issuance <file>', 'issuance policy (trustplane-broker-issuance-v1: grants, ttl_seconds)')
    .option(
      '--audit <stdout|file>',
      'audit events: stdout (default) or a file (JSON lines, appended)',
      'stdout',
    )
    .option('--tls-listen <host:port>', 'also serve over TLS; callers authenticate with their X.509-SVID')
    .option(
      '--tls-max-connections <n>',
      'network mode: most connections served at once (default 512; TRUSTPLANE_BROKER_TLS_MAX_CONNECTIONS)',
    )
    .option(
      '--tls-max-in-flight <n>',
      'network mode: most requests in flight (default 128; TRUSTPLANE_BROKER_TLS_MAX_IN_FLIGHT)',
    )
    .option('--instance <name>', 'instance name in audit events')
    .option('--log-level <level>', 'debug | info | warn | error | silent', 'info')
    .option('--reload-interval-ms <n>', 'bundle poll interval (0 = watch + SIGHUP only)', '5000')
    .addHelpText('after', SERVE_EXAMPLE)
    .action(async (opts: ServeFlags) => {
      const config = brokerConfigFromFlags(opts);
      const running = await startBroker(config);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          void running.close().then(resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
        process.on('SIGHUP', () => void running.reload());
      });
    });

  broker
    .command('issue')
    .description('Ask a running broker for a passport + stamp bound to exactly one request.')
    .option(
      '--socket <path>',
      'broker Unix socket (default $TRUSTPLANE_BROKER_SOCKET or ./trustplane-state/broker.sock)',
    )
    .option('--connect <host:port>', 'network mode: reach the broker over TLS instead of the Unix socket')
    .option('--broker-spiffe-id <id>', 'network mode: the SPIFFE ID the broker must present')
    .option(
      '--svid-dir <dir>',
      "network mode: this caller's SVID (spiffe-helper svid.pem, svid_key.pem, svid_bundle.pem)",
    )
    .option('--method <method>', 'HTTP method', 'GET')
    .requiredOption('--url <url>', 'absolute target URL: scheme, authority, path and query exactly as sent')
    .requiredOption('--route-id <id>', 'route id the verifier resolves for this request')
    .requiredOption('--audience <aud>', 'passport audience (the API)')
    .option('--header <header>', "request header 'Name: value' (repeatable)", collect)
    .option('--body <text>', 'request body (UTF-8)')
    .option('--body-file <file>', 'request body from a file (exact bytes)')
    .option('--key-binding <class>', 'requested signer class', 'attested_workload')
    .option('--accept <class>', 'acceptable signer class (repeatable; default the requested one)', collect)
    .option('--allow-software-fallback', 'accept a software passport when the broker has nothing stronger')
    .option(
      '--ctx <key=value>',
      'caller context: actor_type, purpose, tool_name, workflow_id, max_txn_value',
      collect,
    )
    .option('--cover <header>', 'also cover this header (repeatable)', collect)
    .option('--nonce <nonce>', 'fixed nonce (default random)')
    .option('--timeout-ms <n>', 'broker answer timeout', '30000')
    .option('--curl', 'print a runnable curl command')
    .option('--json', 'print {passport, stamp, headers, ...} as JSON')
    .addHelpText('after', ISSUE_EXAMPLE)
    .action(async (opts: IssueFlags) => {
      const { body, headers } = requestBodyAndHeaders(opts);
      const requested = keyBindingFlag(opts.keyBinding, '--key-binding');
      const acceptable = (opts.accept ?? [requested]).map((v) => keyBindingFlag(v, '--accept'));
      if (!/^\d{1,7}$/.test(opts.timeoutMs))
        throw new CliError('--timeout-ms must be an integer', 'usage', 2);
      let tlsIdentity: SpiffeIdentitySource | undefined;
      let connect: (() => Socket) | undefined;
      if (opts.connect !== undefined) {
        const m = /^(.+):(\d{1,5})$/.exec(opts.connect);
        if (!m || opts.brokerSpiffeId === undefined || opts.svidDir === undefined) {
          throw new CliError('--connect host:port needs --broker-spiffe-id and --svid-dir', 'usage', 2);
        }
        tlsIdentity = await openSpiffeFilesIdentity(
          {
            certFile: join(opts.svidDir, 'svid.pem'),
            keyFile: join(opts.svidDir, 'svid_key.pem'),
            bundleFile: join(opts.svidDir, 'svid_bundle.pem'),
          },
          { log: createLogger('silent'), trustBundles: () => new Map() },
        );
        connect = brokerTlsConnector({
          host: m[1]!.replace(/^\[|\]$/g, ''),
          port: Number(m[2]),
          credentials: tlsIdentity,
          brokerSpiffeId: opts.brokerSpiffeId,
        });
      }
      const client = new BrokerIpcClient({
        socketPath: opts.socket ?? defaultBrokerSocket(),
        timeoutMs: Number(opts.timeoutMs),
        ...(connect ? { connect } : {}),
      });
      const ctx = parseCtx(opts.ctx);
      const source = brokerPassports({
        broker: client,
        keyBinding: { requested, acceptable, allowSoftwareFallback: opts.allowSoftwareFallback === true },
        ...(ctx ? { ctx } : {}),
      });
      let request;
      let credentials;
      try {
        request = await prepareRequest({
          method: opts.method,
          url: opts.url,
          audience: opts.audience,
          routeId: opts.routeId,
          headers,
          ...(body !== undefined ? { body } : {}),
          ...(opts.cover ? { coveredHeaders: opts.cover } : {}),
          ...(opts.nonce !== undefined ? { nonce: opts.nonce } : {}),
        });
        credentials = await source.authorize(request);
      } catch (e) {
        await tlsIdentity?.close?.();
        if (e instanceof BrokerDeniedError) throw new CliError(e.message, e.reasonCode, 1);
        if (e instanceof BrokerIpcError) throw new CliError(e.message, e.reason, 1);
        throw e;
      }
      await tlsIdentity?.close?.();
      const wire: Record<string, string> = {
        ...request.headers,
        authorization: `Bearer ${credentials.passport}`,
        'x-trustplane-proof': credentials.proof,
        'x-trustplane-transcript-sha256': credentials.transcriptSha256,
        'x-trustplane-body-sha256': request.bodySha256,
        'x-trustplane-covered-headers': request.coveredHeaders.join(','),
      };
      const signed = {
        passport: credentials.passport,
        stamp: credentials.proof,
        transcript_sha256: credentials.transcriptSha256,
        headers: wire,
      };
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(signed, null, 2)}\n`);
      } else if (opts.curl) {
        const parts = ['curl', '-sS', '--path-as-is', '-X', request.method, shellQuote(request.url)];
        for (const [name, value] of Object.entries(signed.headers))
          parts.push('-H', shellQuote(`${name}: ${value}`));
        if (opts.bodyFile !== undefined) parts.push('--data-binary', shellQuote(`@${opts.bodyFile}`));
        else if (opts.body !== undefined) parts.push('--data-raw', shellQuote(opts.body));
        process.stdout.write(`${parts.join(' ')}\n`);
      } else {
        for (const [name, value] of Object.entries(signed.headers))
          process.stdout.write(`${name}: ${value}\n`);
      }
    });
}
