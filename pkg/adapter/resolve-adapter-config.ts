import { readFileSync } from 'node:fs';
import { ConfigError } from './config-error.js';
import { adapterConfigSchema, type AdapterConfig } from './config.js';
import { jsonErrorPosition } from '../internal/json-position.js';

/** Environment variables read by {@link resolveAdapterConfig}, by config key. */
export const ADAPTER_ENV: Readonly<Record<string, keyof AdapterConfig>> = Object.freeze({
  TRUSTPLANE_MODE: 'mode',
  TRUSTPLANE_LISTEN: 'listen',
  TRUSTPLANE_ADMIN_LISTEN: 'adminListen',
  TRUSTPLANE_UPSTREAM: 'upstream',
  TRUSTPLANE_TRUST_MATERIAL: 'trustMaterial',
  TRUSTPLANE_POLICY_BUNDLE: 'policyBundle',
  TRUSTPLANE_TRUST_MATERIAL_PUBLIC_KEY: 'trustMaterialPublicKeys',
  TRUSTPLANE_POLICY_BUNDLE_PUBLIC_KEY: 'policyBundlePublicKeys',
  TRUSTPLANE_DEV_ALLOW_UNSIGNED: 'devAllowUnsigned',
  TRUSTPLANE_BUNDLE_STATE_DIR: 'bundleStateDir',
  TRUSTPLANE_BUNDLE_FETCH_TOKEN: 'bundleFetchToken',
  TRUSTPLANE_BUNDLE_FETCH_CA: 'bundleFetchCa',
  TRUSTPLANE_BUNDLE_FETCH_CERT: 'bundleFetchCert',
  TRUSTPLANE_BUNDLE_FETCH_KEY: 'bundleFetchKey',
  TRUSTPLANE_BUNDLE_FETCH_WAIT_SECONDS: 'bundleFetchWaitSeconds',
  TRUSTPLANE_ROUTE_ID: 'routeId',
  TRUSTPLANE_PUBLIC_ORIGIN: 'publicOrigin',
  TRUSTPLANE_TRUST_FORWARDED_HEADERS: 'trustForwardedHeaders',
  TRUSTPLANE_MAX_BODY_BYTES: 'maxBodyBytes',
  TRUSTPLANE_MAX_BUFFERED_BODY_BYTES: 'maxBufferedBodyBytes',
  TRUSTPLANE_MAX_CONNECTIONS: 'maxConnections',
  TRUSTPLANE_MAX_IN_FLIGHT: 'maxInFlight',
  TRUSTPLANE_HEADERS_TIMEOUT_MS: 'headersTimeoutMs',
  TRUSTPLANE_REQUEST_TIMEOUT_MS: 'requestTimeoutMs',
  TRUSTPLANE_UPSTREAM_CONNECT_TIMEOUT_MS: 'upstreamConnectTimeoutMs',
  TRUSTPLANE_UPSTREAM_RESPONSE_TIMEOUT_MS: 'upstreamResponseTimeoutMs',
  TRUSTPLANE_UPSTREAM_MAX_SOCKETS: 'upstreamMaxSockets',
  TRUSTPLANE_UPSTREAM_QUEUE_TIMEOUT_MS: 'upstreamQueueTimeoutMs',
  TRUSTPLANE_FORWARD_AUTHORIZATION: 'forwardAuthorization',
  TRUSTPLANE_PRESERVE_HOST: 'preserveHost',
  TRUSTPLANE_FORWARD_AUTH_GATEWAY: 'forwardAuthGateway',
  TRUSTPLANE_FORWARD_AUTH_PATH_PREFIX: 'forwardAuthPathPrefix',
  TRUSTPLANE_EXT_AUTHZ_GRPC_LISTEN: 'extAuthzGrpcListen',
  TRUSTPLANE_REPLAY_STORE: 'replayStore',
  TRUSTPLANE_REPLAY_JOURNAL: 'replayJournal',
  TRUSTPLANE_REPLAY_JOURNAL_FSYNC: 'replayJournalFsync',
  TRUSTPLANE_REPLAY_MAX_ENTRIES_PER_SUBJECT: 'replayMaxEntriesPerSubject',
  TRUSTPLANE_REDIS_URL: 'redisUrl',
  TRUSTPLANE_REDIS_KEY_PREFIX: 'redisKeyPrefix',
  TRUSTPLANE_REDIS_COMMAND_TIMEOUT_MS: 'redisCommandTimeoutMs',
  TRUSTPLANE_REDIS_ALLOW_EVICTION: 'redisAllowEviction',
  TRUSTPLANE_REDIS_MAXMEMORY_POLICY: 'redisMaxmemoryPolicy',
  TRUSTPLANE_REDIS_CHECK_INTERVAL_MS: 'redisCheckIntervalMs',
  TRUSTPLANE_REDIS_COLD_START: 'redisColdStart',
  TRUSTPLANE_WORKERS: 'workers',
  TRUSTPLANE_WORKER_DOWN_HEALTH_LIMIT_MS: 'workerDownHealthLimitMs',
  TRUSTPLANE_SKEW_SECONDS: 'skewSeconds',
  TRUSTPLANE_MAX_LIFETIME_SECONDS: 'maxLifetimeSeconds',
  TRUSTPLANE_AUDIT: 'audit',
  TRUSTPLANE_AUDIT_CHAIN_ID: 'auditChainId',
  TRUSTPLANE_AUDIT_SPILL: 'auditSpill',
  TRUSTPLANE_AUDIT_DURABLE_TIMEOUT_MS: 'auditDurableTimeoutMs',
  TRUSTPLANE_RECEIPT_PRIVATE_KEY: 'receiptPrivateKey',
  TRUSTPLANE_RECEIPT_KID: 'receiptKid',
  TRUSTPLANE_RECEIPT_MAX_RESPONSE_BYTES: 'receiptMaxResponseBytes',
  TRUSTPLANE_LOG_LEVEL: 'logLevel',
  TRUSTPLANE_RELOAD_INTERVAL_MS: 'reloadIntervalMs',
  TRUSTPLANE_SHUTDOWN_TIMEOUT_MS: 'shutdownTimeoutMs',
  TRUSTPLANE_INSTANCE: 'instance',
});

const BOOLEAN_KEYS = new Set<string>([
  'devAllowUnsigned',
  'trustForwardedHeaders',
  'forwardAuthorization',
  'preserveHost',
  'redisAllowEviction',
]);
const LIST_KEYS = new Set<string>(['trustMaterialPublicKeys', 'policyBundlePublicKeys']);

function fromEnv(
  env: Readonly<Record<string, string | undefined>>,
  problems: string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [name, key] of Object.entries(ADAPTER_ENV)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    if (BOOLEAN_KEYS.has(key)) {
      if (!/^(true|false|1|0)$/.test(raw)) {
        problems.push(`${name}: must be true or false`);
        continue;
      }
      out[key] = raw === 'true' || raw === '1';
    } else if (LIST_KEYS.has(key)) {
      out[key] = raw.split(/\s*,\s*(?![^{]*})/).filter((s) => s !== '');
    } else {
      out[key] = raw;
    }
  }
  return out;
}

/** Sources of configuration, highest precedence first: flags, environment, config file. */
export interface ConfigSources {
  readonly flags?: Readonly<Record<string, unknown>>;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Path of a JSON config file whose keys are the config keys. */
  readonly configFile?: string;
  /** Resolves `@file` values of key options (default: read the file). */
  readonly readValue?: (value: string) => string;
}

function readKeyValue(value: string): string {
  return value.startsWith('@') ? readFileSync(value.slice(1), 'utf8') : value;
}

/**
 * Merge flags, environment and an optional JSON config file, validate, and return the config.
 * @throws ConfigError with one line per bad value (`<key>: <problem>`)
 * @example
 * const config = resolveAdapterConfig({ flags: { upstream: 'http://127.0.0.1:3000', ... }, env: process.env })
 */
export function resolveAdapterConfig(sources: ConfigSources): AdapterConfig {
  const problems: string[] = [];
  let file: Record<string, unknown> = {};
  if (sources.configFile !== undefined) {
    let text: string | undefined;
    try {
      text = readFileSync(sources.configFile, 'utf8');
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        problems.push(`config file ${sources.configFile}: must be a JSON object`);
      } else file = parsed as Record<string, unknown>;
    } catch (e) {
      problems.push(
        `config file ${sources.configFile}: ${
          e instanceof SyntaxError && text !== undefined
            ? `invalid JSON at ${jsonErrorPosition(text)}`
            : 'cannot read'
        }`,
      );
    }
  }
  const env = fromEnv(sources.env ?? {}, problems);
  const flags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(sources.flags ?? {})) if (v !== undefined) flags[k] = v;
  const merged: Record<string, unknown> = { ...file, ...env, ...flags };
  const read = sources.readValue ?? readKeyValue;
  for (const key of LIST_KEYS) {
    const v = merged[key];
    if (typeof v === 'string') merged[key] = [v];
    if (Array.isArray(merged[key])) {
      merged[key] = (merged[key] as unknown[]).map((item) => {
        if (typeof item !== 'string') return item;
        try {
          return read(item);
        } catch {
          problems.push(`${key}: cannot read ${item.slice(1)}`);
          return item;
        }
      });
    }
  }
  const receiptKey = merged.receiptPrivateKey;
  if (typeof receiptKey === 'string' && receiptKey.startsWith('@')) {
    try {
      merged.receiptPrivateKey = read(receiptKey).trim();
    } catch {
      problems.push(`receiptPrivateKey: cannot read ${receiptKey.slice(1)}`);
    }
  }
  const fetchToken = merged.bundleFetchToken;
  if (typeof fetchToken === 'string' && fetchToken.startsWith('@')) {
    try {
      merged.bundleFetchToken = read(fetchToken).trim();
    } catch {
      problems.push(`bundleFetchToken: cannot read ${fetchToken.slice(1)}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const result = adapterConfigSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => {
        const key = i.path.join('.') || '(config)';
        // Never echo a value: it may be a secret (a Redis URL with a password).
        const message = i.code === 'unrecognized_keys' ? `unknown key(s) ${i.keys.join(', ')}` : i.message;
        return `${key}: ${message}`;
      }),
    );
  }
  return result.data;
}
