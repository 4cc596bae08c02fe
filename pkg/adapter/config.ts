import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { z } from 'zod';
import { LOG_LEVELS } from '../runtime/logger.js';

const required = {
  error: (issue: { input: unknown }) => (issue.input === undefined ? 'is required' : 'must be a string'),
};

const listenAddress = z.string(required).refine((v) => {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  return m !== null && Number(m[2]) <= 65535;
}, 'must be host:port with a port up to 65535 (e.g. 127.0.0.1:8080)');

const httpUrl = () =>
  z.string(required).refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL without credentials');

const positiveInt = (max: number) => z.coerce.number().int().positive().max(max);

/** The adapter configuration (flags, environment and JSON config file merge into this). */
export const adapterConfigSchema = z
  .strictObject({
    /** `proxy` (reverse proxy in front of `upstream`) or `forward-auth` (gateway auth endpoint). */
    mode: z.enum(['proxy', 'forward-auth']).default('proxy'),
    listen: listenAddress.default('127.0.0.1:8080'),
    /** Admin listener (`/healthz`, `/readyz`, `/metrics`); keep it on loopback or a private network. */
    adminListen: listenAddress.default('127.0.0.1:9090'),
    upstream: httpUrl().optional(),
    trustMaterial: z.string(required).min(1),
    policyBundle: z.string(required).min(1),
    /** Public keys allowed to sign the trust material (key text, PEM, JWK, or @file). */
    trustMaterialPublicKeys: z.array(z.string().min(1)).default([]),
    /** Public keys allowed to sign the policy bundle. */
    policyBundlePublicKeys: z.array(z.string().min(1)).default([]),
    devAllowUnsigned: z.boolean().default(false),
    /** Fixed route id for every request (default: resolve by method + path). */
    routeId: z.string().min(1).max(256).optional(),
    /** The origin callers address (scheme://host[:port]) when it differs from the API's base_url. */
    publicOrigin: httpUrl().optional(),
    /** Trust X-Forwarded-Proto/-Host from the client (only behind a proxy that sets them). */
    trustForwardedHeaders: z.boolean().default(false),
    maxBodyBytes: positiveInt(64 * 1024 * 1024).default(1024 * 1024),
    upstreamConnectTimeoutMs: positiveInt(600_000).default(5_000),
    upstreamResponseTimeoutMs: positiveInt(3_600_000).default(30_000),
    upstreamMaxSockets: positiveInt(65_536).default(256),
    /** Forward the caller's `Authorization` header upstream (default: stripped). */
    forwardAuthorization: z.boolean().default(false),
    /** Send the caller's Host upstream (default) or the upstream's own host. */
    preserveHost: z.boolean().default(true),
    /** Envoy ext_authz: path prefix configured on the HTTP service, stripped from the auth path. */
    forwardAuthPathPrefix: z
      .string()
      .regex(/^\/[^?#]*$/, 'must start with /')
      .optional(),
    replayStore: z.enum(['memory', 'redis']).default('memory'),
    /** Memory store journal (survives restarts); `off` disables it (replays across restarts possible). */
    replayJournal: z.string().min(1).default('./trustplane-state/replay.journal'),
    replayJournalFsync: z.enum(['always', 'interval', 'never']).default('interval'),
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
    redisKeyPrefix: z.string().min(1).max(128).default('trustplane:jti:'),
    redisCommandTimeoutMs: positiveInt(60_000).default(500),
    /** Worker processes sharing the listener (`auto` = one per core). */
    workers: z
      .union([z.literal('auto'), positiveInt(256)])
      .default(1)
      .transform((v) => (v === 'auto' ? availableParallelism() : v)),
    skewSeconds: z.coerce.number().int().min(0).max(600).default(30),
    maxLifetimeSeconds: positiveInt(86_400).default(600),
    /**
     * Audit ledger: `stdout`, a file path (hash-chained JSON lines, appended), or a
     * `postgres://` / `postgresql://` URL (batched, buffered while PostgreSQL is down).
     */
    audit: z.string().min(1).default('stdout'),
    /** Ledger chain id (one chain per sink instance; default the instance name). */
    auditChainId: z.string().min(1).max(256).optional(),
    /** PostgreSQL ledger: disk spill file used while PostgreSQL is unreachable. */
    auditSpill: z.string().min(1).default('./trustplane-state/audit-spill.jsonl'),
    /** How long an `audit: required` route waits for the durable write before answering 503. */
    auditDurableTimeoutMs: positiveInt(60_000).default(2_000),
    /** Ed25519 private key that signs receipts (`@file`; secret, never echoed). */
    receiptPrivateKey: z.string().min(1).optional(),
    /** kid of the receipt key as listed in the trust material `receipt_keys`. */
    receiptKid: z.string().min(1).max(256).optional(),
    /** Largest upstream response buffered to sign a receipt (502 beyond). */
    receiptMaxResponseBytes: positiveInt(64 * 1024 * 1024).default(1024 * 1024),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    /** Bundle poll interval (files are also watched, and SIGHUP reloads); 0 disables polling. */
    reloadIntervalMs: z.coerce.number().int().min(0).max(3_600_000).default(5_000),
    /** How long SIGTERM waits for in-flight requests before closing connections. */
    shutdownTimeoutMs: positiveInt(600_000).default(10_000),
    /** Instance name in logs, audit events and metrics. */
    instance: z.string().min(1).max(256).default(hostname()),
  })
  .superRefine((c, ctx) => {
    if (c.mode === 'proxy' && c.upstream === undefined) {
      ctx.addIssue({ code: 'custom', path: ['upstream'], message: 'is required in proxy mode' });
    }
    if (c.replayStore === 'redis' && c.redisUrl === undefined) {
      ctx.addIssue({ code: 'custom', path: ['redisUrl'], message: 'is required with replayStore redis' });
    }
    if (c.replayStore === 'memory' && c.workers > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['workers'],
        message:
          'more than one worker needs a shared replay store (replayStore redis): the memory store would accept a jti once per worker',
      });
    }
    if (c.trustMaterialPublicKeys.length === 0 && !c.devAllowUnsigned) {
      ctx.addIssue({
        code: 'custom',
        path: ['trustMaterialPublicKeys'],
        message: 'at least one key is required (or devAllowUnsigned)',
      });
    }
    if (c.policyBundlePublicKeys.length === 0 && !c.devAllowUnsigned) {
      ctx.addIssue({
        code: 'custom',
        path: ['policyBundlePublicKeys'],
        message: 'at least one key is required (or devAllowUnsigned)',
      });
    }
    if ((c.receiptPrivateKey === undefined) !== (c.receiptKid === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['receiptKid'],
        message: 'receiptPrivateKey and receiptKid go together',
      });
    }
    if (c.listen === c.adminListen && !c.listen.endsWith(':0')) {
      ctx.addIssue({ code: 'custom', path: ['adminListen'], message: 'must differ from listen' });
    }
  });

/** Adapter configuration as given (before defaults). */
export type AdapterConfigInput = z.input<typeof adapterConfigSchema>;
/** Validated adapter configuration. */
export type AdapterConfig = z.output<typeof adapterConfigSchema>;

/** A configuration error: one line per bad value. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

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
  TRUSTPLANE_ROUTE_ID: 'routeId',
  TRUSTPLANE_PUBLIC_ORIGIN: 'publicOrigin',
  TRUSTPLANE_TRUST_FORWARDED_HEADERS: 'trustForwardedHeaders',
  TRUSTPLANE_MAX_BODY_BYTES: 'maxBodyBytes',
  TRUSTPLANE_UPSTREAM_CONNECT_TIMEOUT_MS: 'upstreamConnectTimeoutMs',
  TRUSTPLANE_UPSTREAM_RESPONSE_TIMEOUT_MS: 'upstreamResponseTimeoutMs',
  TRUSTPLANE_UPSTREAM_MAX_SOCKETS: 'upstreamMaxSockets',
  TRUSTPLANE_FORWARD_AUTHORIZATION: 'forwardAuthorization',
  TRUSTPLANE_PRESERVE_HOST: 'preserveHost',
  TRUSTPLANE_FORWARD_AUTH_PATH_PREFIX: 'forwardAuthPathPrefix',
  TRUSTPLANE_REPLAY_STORE: 'replayStore',
  TRUSTPLANE_REPLAY_JOURNAL: 'replayJournal',
  TRUSTPLANE_REPLAY_JOURNAL_FSYNC: 'replayJournalFsync',
  TRUSTPLANE_REDIS_URL: 'redisUrl',
  TRUSTPLANE_REDIS_KEY_PREFIX: 'redisKeyPrefix',
  TRUSTPLANE_REDIS_COMMAND_TIMEOUT_MS: 'redisCommandTimeoutMs',
  TRUSTPLANE_WORKERS: 'workers',
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
    try {
      const parsed = JSON.parse(readFileSync(sources.configFile, 'utf8')) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        problems.push(`config file ${sources.configFile}: must be a JSON object`);
      } else file = parsed as Record<string, unknown>;
    } catch (e) {
      problems.push(
        `config file ${sources.configFile}: ${e instanceof SyntaxError ? 'invalid JSON' : 'cannot read'}`,
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
