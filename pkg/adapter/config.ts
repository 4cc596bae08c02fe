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
    /**
     * `proxy` (reverse proxy in front of `upstream`), `forward-auth` (gateway auth endpoint over
     * HTTP) or `ext-authz-grpc` (Envoy/Istio `envoy.service.auth.v3.Authorization` over gRPC on
     * `extAuthzGrpcListen`; no HTTP enforcement listener).
     */
    mode: z.enum(['proxy', 'forward-auth', 'ext-authz-grpc']).default('proxy'),
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
    /**
     * When `trustMaterial`/`policyBundle` is an `http(s)://` URL (a `trustplane bundle serve`, or a
     * static server): where the last good documents are kept, written atomically, to start from
     * while the source is down.
     */
    bundleStateDir: z.string().min(1).default('./trustplane-state/bundles'),
    /** Bearer token sent to the bundle URL (`@file`; secret, never echoed or logged). */
    bundleFetchToken: z.string().min(1).max(4096).optional(),
    /** PEM CA certificates (file) for an `https:` bundle URL (default: the system roots). */
    bundleFetchCa: z.string().min(1).optional(),
    /** PEM client certificate and key (files) for a bundle server that requires mTLS. */
    bundleFetchCert: z.string().min(1).optional(),
    bundleFetchKey: z.string().min(1).optional(),
    /**
     * Long-poll: how long each request asks the bundle server to wait for a newer document (s). A
     * source that does not long-poll (nginx) is polled every `reloadIntervalMs`. 0 = always poll.
     */
    bundleFetchWaitSeconds: z.coerce.number().int().min(0).max(300).default(30),
    /** Fixed route id for every request (default: resolve by method + path). */
    routeId: z.string().min(1).max(256).optional(),
    /** The origin callers address (scheme://host[:port]) when it differs from the API's base_url. */
    publicOrigin: httpUrl().optional(),
    /** Trust X-Forwarded-Proto/-Host from the client (only behind a proxy that sets them). */
    trustForwardedHeaders: z.boolean().default(false),
    maxBodyBytes: positiveInt(64 * 1024 * 1024).default(1024 * 1024),
    /**
     * Request body bytes buffered at once across all requests (each body counts its declared
     * length, or `maxBodyBytes` when chunked, from the moment it is read until the exchange ends).
     * Beyond it a body is refused 503 `overloaded` before it is read. Bodies are only read once the
     * credentials, route and policy have passed, so callers without valid passports buffer nothing.
     */
    maxBufferedBodyBytes: positiveInt(16 * 1024 * 1024 * 1024).default(256 * 1024 * 1024),
    /** Time for a client to send the request headers; a slower one is answered 408 and closed. */
    headersTimeoutMs: positiveInt(600_000).default(20_000),
    /** Time for a client to send the whole request (headers and body); then 408 and closed. */
    requestTimeoutMs: positiveInt(3_600_000).default(60_000),
    /** Open connections accepted at once; beyond it a new connection is closed at once. */
    maxConnections: positiveInt(1_000_000).default(10_000),
    /**
     * Requests handled at once by one process (being read, decided, waiting for or talking to the
     * upstream). Beyond it a request is refused 503 `overloaded` with `Retry-After` before it is
     * read or decided, so no jti is consumed (metric kind `in_flight`). Each cluster worker has its own.
     */
    maxInFlight: positiveInt(1_000_000).default(2_048),
    upstreamConnectTimeoutMs: positiveInt(600_000).default(5_000),
    upstreamResponseTimeoutMs: positiveInt(3_600_000).default(30_000),
    upstreamMaxSockets: positiveInt(65_536).default(256),
    /**
     * Proxy mode: how long a request may wait for one of the `upstreamMaxSockets` upstream
     * connections. It takes one after its passport, route and policy passed and before the kernel
     * consumes its jti; past this wait it is refused 503 `overloaded` (metric kind `upstream_queue`)
     * with its jti unconsumed.
     */
    upstreamQueueTimeoutMs: positiveInt(600_000).default(2_000),
    /** Forward the caller's `Authorization` header upstream (default: stripped). */
    forwardAuthorization: z.boolean().default(false),
    /** Send the caller's Host upstream (default) or the upstream's own host. */
    preserveHost: z.boolean().default(true),
    /**
     * Forward-auth mode: the gateway in front (required there). Only that gateway's protocol
     * headers describe the original request: `nginx` (`X-Original-Method`, `X-Original-URI`,
     * `X-Forwarded-Host`, set by `proxy_set_header`), `traefik` (`X-Forwarded-Method`,
     * `X-Forwarded-Uri`, `X-Forwarded-Host`, which Traefik overwrites), `caddy` (the same headers,
     * which `forward_auth` overwrites), `envoy` (the check request's own method, path and Host).
     * Headers of another gateway's protocol are never read: a caller could send them.
     */
    forwardAuthGateway: z.enum(['nginx', 'traefik', 'caddy', 'envoy']).optional(),
    /** Envoy ext_authz: path prefix configured on the HTTP service, stripped from the auth path. */
    forwardAuthPathPrefix: z
      .string()
      .regex(/^\/[^?#]*$/, 'must start with /')
      .optional(),
    /**
     * The gRPC ext_authz listener (Envoy `grpc_service`, Istio `envoyExtAuthzGrpc`): in
     * `ext-authz-grpc` mode (default `127.0.0.1:9191`), or beside the HTTP listener in
     * `forward-auth` mode when set. Serves `envoy.service.auth.v3.Authorization/Check` and
     * `grpc.health.v1.Health/Check`, plaintext HTTP/2 (keep it on loopback, a pod network or a mesh).
     */
    extAuthzGrpcListen: listenAddress.optional(),
    replayStore: z.enum(['memory', 'redis']).default('memory'),
    /** Memory store journal (survives restarts); `off` disables it (replays across restarts possible). */
    replayJournal: z.string().min(1).default('./trustplane-state/replay.journal'),
    replayJournalFsync: z.enum(['always', 'interval', 'never']).default('interval'),
    /**
     * Memory store: most live jtis one caller (issuer + subject) may hold, so one caller cannot fill
     * the store (1,000,000 entries) and turn everyone away; beyond it that caller gets 429
     * `replay_quota_exceeded`. Default 250,000 (about 750 requests/s per caller with 5-minute passports).
     */
    replayMaxEntriesPerSubject: positiveInt(1_000_000).default(250_000),
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
    redisKeyPrefix: z.string().min(1).max(128).default('trustplane:jti:'),
    redisCommandTimeoutMs: positiveInt(60_000).default(500),
    /**
     * Run on a Redis whose `maxmemory-policy` can evict jti keys (anything but `noeviction`); each
     * eviction then fails closed for one window. Default false: the adapter refuses to start.
     */
    redisAllowEviction: z.boolean().default(false),
    /** The Redis `maxmemory-policy`, declared where `CONFIG GET` is renamed or forbidden (managed Redis). */
    redisMaxmemoryPolicy: z
      .string()
      .regex(/^[a-z][a-z-]{0,31}$/, 'must be a maxmemory-policy name, e.g. noeviction')
      .optional(),
    /** How often the Redis store checks its sentinel, the eviction policy and evictions (ms). */
    redisCheckIntervalMs: positiveInt(600_000).default(2_000),
    /**
     * No sentinel in Redis at startup (a new Redis, or one that lost its data while no adapter ran):
     * `trust` creates it and serves; `fail-closed` also refuses older passports for one window.
     */
    redisColdStart: z.enum(['trust', 'fail-closed']).default('trust'),
    /** Worker processes sharing the listener (`auto` = one per core). */
    workers: z
      .union([z.literal('auto'), positiveInt(256)])
      .default(1)
      .transform((v) => (v === 'auto' ? availableParallelism() : v)),
    /**
     * Cluster primary: `/healthz` answers 503 `workers_down` once a worker slot has had no listening
     * worker for this long (a worker that cannot start is restarted with backoff meanwhile).
     */
    workerDownHealthLimitMs: positiveInt(86_400_000).default(60_000),
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
    if (c.mode === 'forward-auth' && c.forwardAuthGateway === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['forwardAuthGateway'],
        message: 'is required in forward-auth mode: nginx, traefik, caddy or envoy',
      });
    }
    if (c.mode === 'proxy' && c.extAuthzGrpcListen !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['extAuthzGrpcListen'],
        message: 'is for ext-authz-grpc or forward-auth mode',
      });
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
