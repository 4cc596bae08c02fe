import type { Command } from 'commander';
import {
  bundleSourcesFromConfig,
  ConfigError,
  resolveAdapterConfig,
  runAdapter,
  type AdapterConfig,
} from '../../../pkg/adapter/index.js';
import { BundleManager, createLogger } from '../../../pkg/runtime/index.js';
import type { FreshnessReport } from '../../../pkg/bundle/index.js';
import { CliError, collect, readValue } from '../io.js';

/** Flag → config key; only flags given on the command line override environment and config file. */
const FLAG_KEYS: readonly (readonly [
  flag: string,
  key: keyof AdapterConfig | 'bundlePublicKey',
  help: string,
])[] = [
  ['--mode <mode>', 'mode', 'proxy (default), forward-auth or ext-authz-grpc'],
  ['--listen <host:port>', 'listen', 'enforcement listener (default 127.0.0.1:8080)'],
  [
    '--admin-listen <host:port>',
    'adminListen',
    'admin listener: /healthz /readyz /metrics (default 127.0.0.1:9090)',
  ],
  ['--upstream <url>', 'upstream', 'the protected API (proxy mode), e.g. http://127.0.0.1:3000'],
  [
    '--trust-material <file|url>',
    'trustMaterial',
    'signed trust material: a file (watched) or a bundle URL (pulled, persisted)',
  ],
  ['--policy-bundle <file|url>', 'policyBundle', 'signed policy bundle: a file (watched) or a bundle URL'],
  [
    '--bundle-state-dir <dir>',
    'bundleStateDir',
    'bundle URLs: last good documents, started from when the source is down (default ./trustplane-state/bundles)',
  ],
  [
    '--bundle-fetch-token <token>',
    'bundleFetchToken',
    'bundle URLs: bearer token (@file; prefer TRUSTPLANE_BUNDLE_FETCH_TOKEN)',
  ],
  ['--bundle-fetch-ca <file>', 'bundleFetchCa', 'bundle URLs: PEM CA certificates for https'],
  ['--bundle-fetch-cert <file>', 'bundleFetchCert', 'bundle URLs: PEM client certificate (mTLS)'],
  ['--bundle-fetch-key <file>', 'bundleFetchKey', 'bundle URLs: PEM client key (mTLS)'],
  [
    '--bundle-fetch-wait-seconds <n>',
    'bundleFetchWaitSeconds',
    'bundle URLs: long-poll wait asked of the server (default 30; 0 = poll every --reload-interval-ms)',
  ],
  ['--route-id <id>', 'routeId', 'fixed route id for every request (default: resolve method + path)'],
  ['--public-origin <url>', 'publicOrigin', "origin callers address, when not the API's base_url"],
  [
    '--max-body-bytes <n>',
    'maxBodyBytes',
    'largest request body bound and forwarded (default 1048576; 413 beyond)',
  ],
  [
    '--max-buffered-body-bytes <n>',
    'maxBufferedBodyBytes',
    'request body bytes buffered at once, all requests (default 268435456; 503 overloaded beyond)',
  ],
  ['--max-connections <n>', 'maxConnections', 'open connections accepted at once (default 10000)'],
  [
    '--max-in-flight <n>',
    'maxInFlight',
    'requests handled at once per process (default 2048; 503 overloaded beyond, no jti consumed)',
  ],
  [
    '--headers-timeout-ms <n>',
    'headersTimeoutMs',
    'time to receive the request headers (default 20000; 408)',
  ],
  ['--request-timeout-ms <n>', 'requestTimeoutMs', 'time to receive the whole request (default 60000; 408)'],
  [
    '--upstream-connect-timeout-ms <n>',
    'upstreamConnectTimeoutMs',
    'upstream connect timeout (default 5000; 502)',
  ],
  [
    '--upstream-response-timeout-ms <n>',
    'upstreamResponseTimeoutMs',
    'time to upstream response headers (default 30000; 504)',
  ],
  [
    '--upstream-max-sockets <n>',
    'upstreamMaxSockets',
    'pooled keep-alive connections to the upstream (default 256)',
  ],
  [
    '--upstream-queue-timeout-ms <n>',
    'upstreamQueueTimeoutMs',
    'wait for an upstream connection (default 2000; 503 overloaded beyond, no jti consumed)',
  ],
  [
    '--forward-auth-gateway <gateway>',
    'forwardAuthGateway',
    'forward-auth mode: the gateway in front, nginx | traefik | caddy | envoy (required there)',
  ],
  ['--forward-auth-path-prefix <path>', 'forwardAuthPathPrefix', 'Envoy ext_authz path_prefix to strip'],
  [
    '--ext-authz-grpc-listen <host:port>',
    'extAuthzGrpcListen',
    'Envoy/Istio ext_authz gRPC listener (ext-authz-grpc mode: default 127.0.0.1:9191)',
  ],
  ['--replay-store <kind>', 'replayStore', 'memory (default, single process, journaled) or redis'],
  [
    '--replay-journal <file|off>',
    'replayJournal',
    'memory store journal (default ./trustplane-state/replay.journal)',
  ],
  ['--replay-journal-fsync <mode>', 'replayJournalFsync', 'always | interval (default) | never'],
  [
    '--replay-max-entries-per-subject <n>',
    'replayMaxEntriesPerSubject',
    'memory store: live jtis one caller may hold (default 250000; 429 beyond)',
  ],
  ['--redis-url <url>', 'redisUrl', 'redis://host:port (prefer TRUSTPLANE_REDIS_URL for credentials)'],
  ['--redis-key-prefix <prefix>', 'redisKeyPrefix', 'key prefix (default trustplane:jti:)'],
  [
    '--redis-command-timeout-ms <n>',
    'redisCommandTimeoutMs',
    'Redis command timeout (default 500; 503 beyond)',
  ],
  [
    '--redis-maxmemory-policy <policy>',
    'redisMaxmemoryPolicy',
    "declare Redis's maxmemory-policy where CONFIG GET is refused (must be noeviction)",
  ],
  [
    '--redis-check-interval-ms <n>',
    'redisCheckIntervalMs',
    'Redis sentinel, eviction-policy and eviction checks (default 2000)',
  ],
  [
    '--redis-cold-start <mode>',
    'redisColdStart',
    'no sentinel in Redis at start: trust (default) or fail-closed',
  ],
  ['--workers <n|auto>', 'workers', 'worker processes (default 1; >1 needs --replay-store redis)'],
  [
    '--worker-down-health-limit-ms <n>',
    'workerDownHealthLimitMs',
    'cluster: /healthz turns 503 workers_down when a worker stays down this long (default 60000)',
  ],
  ['--skew-seconds <n>', 'skewSeconds', 'clock skew tolerance (default 30)'],
  ['--max-lifetime-seconds <n>', 'maxLifetimeSeconds', 'longest passport lifetime accepted (default 600)'],
  [
    '--audit <stdout|file|postgres-url>',
    'audit',
    'audit ledger: stdout (default), a file (hash-chained JSON lines) or postgres://… (batched)',
  ],
  ['--audit-chain-id <id>', 'auditChainId', 'ledger chain id (default the instance name)'],
  ['--audit-spill <file>', 'auditSpill', 'PostgreSQL ledger: disk buffer while PostgreSQL is down'],
  [
    '--audit-durable-timeout-ms <n>',
    'auditDurableTimeoutMs',
    'audit: required routes wait this long for the durable write (default 2000; 503 beyond)',
  ],
  [
    '--receipt-private-key <key>',
    'receiptPrivateKey',
    'Ed25519 key signing receipts (@file; prefer TRUSTPLANE_RECEIPT_PRIVATE_KEY)',
  ],
  ['--receipt-kid <kid>', 'receiptKid', 'kid of the receipt key in the trust material receipt_keys'],
  [
    '--receipt-max-response-bytes <n>',
    'receiptMaxResponseBytes',
    'largest upstream response buffered for a receipt (default 1048576; 502 beyond)',
  ],
  ['--log-level <level>', 'logLevel', 'debug | info (default) | warn | error | silent'],
  [
    '--reload-interval-ms <n>',
    'reloadIntervalMs',
    'bundle poll interval (default 5000; 0 = watch + SIGHUP only)',
  ],
  ['--shutdown-timeout-ms <n>', 'shutdownTimeoutMs', 'drain limit on SIGTERM (default 10000)'],
  ['--instance <name>', 'instance', 'instance name in logs and audit events (default host name)'],
];

const REPEATABLE: readonly (readonly [flag: string, key: string, help: string])[] = [
  [
    '--trust-material-public-key <key>',
    'trustMaterialPublicKey',
    'key allowed to sign the trust material (repeatable; @file)',
  ],
  [
    '--policy-bundle-public-key <key>',
    'policyBundlePublicKey',
    'key allowed to sign the policy bundle (repeatable; @file)',
  ],
  ['--bundle-public-key <key>', 'bundlePublicKey', 'key allowed to sign both documents (repeatable; @file)'],
];

const SWITCHES: readonly (readonly [flag: string, key: keyof AdapterConfig, help: string])[] = [
  ['--dev-allow-unsigned', 'devAllowUnsigned', 'DEVELOPMENT ONLY: accept unsigned bundles (logged loudly)'],
  [
    '--trust-forwarded-headers',
    'trustForwardedHeaders',
    'trust X-Forwarded-Proto/-Host/-For from the client',
  ],
  [
    '--forward-authorization',
    'forwardAuthorization',
    'pass the Authorization header upstream (default stripped)',
  ],
  ['--no-preserve-host', 'preserveHost', "send the upstream's host instead of the caller's Host"],
  [
    '--redis-allow-eviction',
    'redisAllowEviction',
    'run on a Redis that can evict jti keys (each eviction fails closed for one window)',
  ],
];

/** The help example, written for the command name the user typed (`trustplane adapter` or `trustplane-adapter`). */
function example(command: string): string {
  return `
Example:
  ${command} --upstream http://127.0.0.1:3000 \\
    --trust-material trust.json --policy-bundle policy.json --bundle-public-key @bundle-signer.pub
  ${command} --mode forward-auth --forward-auth-gateway nginx --listen 127.0.0.1:8181 \\
    --trust-material trust.json --policy-bundle policy.json --bundle-public-key @bundle-signer.pub

Every option can also come from the environment (TRUSTPLANE_UPSTREAM, TRUSTPLANE_REDIS_URL, ...) or
a JSON file (--config adapter.json, keys as in docs/adapter.md); flags win over the environment,
which wins over the file.`;
}

/** One line of `--check`'s freshness report: age, limit, time left, state. */
function formatFreshness(name: string, r: FreshnessReport): string {
  const parts = [name.padEnd(15)];
  if (r.issuedAt !== undefined) parts.push(`issued ${new Date(r.issuedAt * 1000).toISOString()}`);
  parts.push(r.ageSeconds !== undefined ? `age ${r.ageSeconds} s` : 'age unknown (no issued_at)');
  parts.push(
    r.limitSeconds !== undefined ? `limit ${r.limitSeconds} s (shortest bounded route)` : 'no age limit',
  );
  if (r.expiresAt !== undefined) parts.push(`expires ${new Date(r.expiresAt * 1000).toISOString()}`);
  if (r.timeLeftSeconds !== undefined) parts.push(`time left ${r.timeLeftSeconds} s`);
  const state = {
    fresh: 'ok',
    stale_soon: 'STALE SOON: readiness is false',
    stale: 'STALE: bounded routes deny stale_bundle_fail_closed',
    expired: 'EXPIRED: every route denies',
  }[r.state];
  parts.push(state);
  return parts.join('  ');
}

/** Add the adapter's options and action to a command (shared by `trustplane adapter` and `trustplane-adapter`). */
export function configureAdapterCommand(cmd: Command): Command {
  cmd.description('Run the reverse-proxy adapter or the gateway forward-auth endpoint.');
  for (const [flag, , help] of FLAG_KEYS) cmd.option(flag, help);
  for (const [flag, , help] of REPEATABLE) cmd.option(flag, help, collect);
  for (const [flag, , help] of SWITCHES) cmd.option(flag, help);
  cmd.option('--config <file>', 'JSON config file (lowest precedence)');
  cmd.option('--check', 'validate the configuration and bundles, then exit');
  cmd.addHelpText('after', () => example(cmd.parent ? `${cmd.parent.name()} ${cmd.name()}` : cmd.name()));
  cmd.action(async (_opts: Record<string, unknown>, command: Command) => {
    const opts = command.opts<Record<string, unknown>>();
    const fromCli = (name: string) => command.getOptionValueSource(name) === 'cli';
    const flags: Record<string, unknown> = {};
    for (const [, key] of [...FLAG_KEYS, ...SWITCHES]) if (fromCli(key)) flags[key] = opts[key];
    const shared = (opts.bundlePublicKey as string[] | undefined) ?? [];
    const trustKeys = [...((opts.trustMaterialPublicKey as string[] | undefined) ?? []), ...shared];
    const policyKeys = [...((opts.policyBundlePublicKey as string[] | undefined) ?? []), ...shared];
    if (trustKeys.length > 0) flags.trustMaterialPublicKeys = trustKeys;
    if (policyKeys.length > 0) flags.policyBundlePublicKeys = policyKeys;
    let config: AdapterConfig;
    try {
      config = resolveAdapterConfig({
        flags,
        env: process.env,
        ...(typeof opts.config === 'string' ? { configFile: opts.config } : {}),
        readValue,
      });
    } catch (e) {
      if (e instanceof ConfigError) {
        throw new CliError(e.problems.join(`\ntrustplane: config: `), 'config', 2);
      }
      throw e;
    }
    if (opts.check === true) {
      const log = createLogger('warn');
      const bundles = await BundleManager.open(await bundleSourcesFromConfig(config), { log });
      await bundles.close();
      process.stdout.write('configuration and bundles OK\n');
      const freshness = bundles.freshness();
      for (const [name, report] of Object.entries(freshness)) {
        process.stdout.write(`${formatFreshness(name, report)}\n`);
      }
      if (freshness.policy.state === 'stale' || freshness.policy.state === 'expired') {
        throw new CliError(
          'the policy bundle in force is stale: bounded routes deny stale_bundle_fail_closed; publish a newer one',
          'stale_bundle_fail_closed',
          1,
        );
      }
      return;
    }
    await runAdapter(config);
  });
  return cmd;
}

/** Register `trustplane adapter`. */
export function registerAdapter(program: Command): void {
  configureAdapterCommand(program.command('adapter'));
}
