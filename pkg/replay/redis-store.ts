import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { HEALTHY, unhealthy, type ComponentHealth } from '../authcore/component-health.js';
import { TrustplaneError } from '../authcore/errors.js';
import { assertReplayArguments, type ReplayStore } from '../authcore/replay-store.js';
import { requireOptional } from '../internal/node/require-optional.js';
import { DEFAULT_AMNESIA_WINDOW_SECONDS } from './amnesia.js';

/** Why a {@link RedisReplayStore} concluded that Redis lost consumed keys. */
export type RedisAmnesiaCause =
  /** The epoch field of the sentinel is gone: Redis restarted empty, was flushed, or failed over to an empty replica. */
  | 'epoch_missing'
  /** Another replica found a loss and wrote a new epoch. */
  | 'epoch_changed'
  /** The sentinel's write counter went back: a restore from an older snapshot, a lost AOF tail, a failover to a lagging replica. */
  | 'counter_rollback'
  /** Redis evicted keys (`evicted_keys` in `INFO stats` rose). */
  | 'keys_evicted'
  /** No sentinel at startup and `coldStart: 'fail-closed'`. */
  | 'cold_start'
  /**
   * Another replica's fail-closed window, read from the sentinel's `until` field: this replica
   * started (or restarted) inside it, or found it before noticing the loss itself.
   */
  | 'window_shared';

/** What a {@link RedisReplayStore} reports through `onEvent` (each once, when it happens). */
export type RedisReplayStoreEvent =
  /** Consumed keys were lost: passports that may predate the loss are refused until `until` (epoch seconds). */
  | { readonly type: 'amnesia'; readonly cause: RedisAmnesiaCause; readonly until: number }
  /** The fail-closed window of an earlier `amnesia` event is over. */
  | { readonly type: 'recovered' }
  /** No sentinel at startup: one was created (`coldStart: 'trust'`; a new Redis, or one that lost its data while no replica ran). */
  | { readonly type: 'epoch_created' }
  /**
   * Redis's `maxmemory-policy` can evict jti keys (any policy but `noeviction`; `volatile-*` too, as
   * every jti key has a TTL), or it cannot be read (`policy` undefined: CONFIG refused and nothing
   * declared). `allowed` when the store runs anyway (`allowEviction`); otherwise it refuses every
   * consume until the policy is `noeviction`.
   */
  | { readonly type: 'eviction_policy'; readonly policy: string | undefined; readonly allowed: boolean }
  /** The policy is `noeviction` again after an `eviction_policy` event. */
  | { readonly type: 'eviction_policy_ok' };

/** What to do when no sentinel exists at startup. */
export type RedisColdStart = 'trust' | 'fail-closed';

/** Options for a {@link RedisReplayStore} over a client (see also {@link RedisReplayStoreConnectOptions}). */
export interface RedisReplayStoreOptions {
  /**
   * Prefix of every key the store writes (default `trustplane:jti:`). The key equal to the prefix
   * itself (real keys are never empty) is the store's sentinel: a hash `{epoch, seq, until}` without
   * TTL (`until`: the end of the latest fail-closed window, epoch seconds, shared by every replica).
   */
  readonly keyPrefix?: string;
  /** Upper bound on each command, in milliseconds (default 500). Past it the command fails closed. */
  readonly commandTimeoutMs?: number;
  /**
   * Called for every `error` event of the client (connection refused, reset, timeouts…) with a short
   * code such as `ECONNREFUSED`, e.g. to count them in a metric. The events are otherwise swallowed,
   * so a Redis outage never crashes the process; `consume` reports the outage by rejecting.
   */
  readonly onError?: (code: string) => void;
  /**
   * How long after a detected loss a key that may predate it is refused, seconds: the longest time
   * a consumed key can matter, i.e. the verifier's maximum passport lifetime plus twice its skew
   * (a passport may be issued up to one skew ahead and is accepted up to one skew past `exp`).
   * Default 660 (600 + 2 × 30, the verifier's defaults).
   */
  readonly amnesiaWindowSeconds?: number;
  /** How often the sentinel, the eviction policy and `evicted_keys` are checked, in ms (default 2000). */
  readonly checkIntervalMs?: number;
  /**
   * Run although `maxmemory-policy` can evict jti keys (default false: `connect` refuses, and a policy
   * changed at runtime fails every consume closed). With it, each eviction Redis reports opens a
   * fail-closed window instead.
   */
  readonly allowEviction?: boolean;
  /**
   * The server's `maxmemory-policy`, declared by the operator for a Redis where `CONFIG GET` is
   * renamed or forbidden (managed services); ignored when `CONFIG GET` answers.
   */
  readonly maxmemoryPolicy?: string;
  /**
   * No sentinel at startup: `trust` (default) creates one and serves at once (a new Redis looks the
   * same as one that lost its data while no replica ran); `fail-closed` also opens the window.
   */
  readonly coldStart?: RedisColdStart;
  /** Clock in epoch seconds for the fail-closed window (default: the system clock). */
  readonly now?: () => number;
  /** Told once about each loss, recovery and eviction-policy change (for logs and metrics). */
  readonly onEvent?: (event: RedisReplayStoreEvent) => void;
}

/** Options for {@link RedisReplayStore.connect}. */
export interface RedisReplayStoreConnectOptions extends RedisReplayStoreOptions {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS). Never echoed in errors. */
  readonly url: string;
  /** Upper bound on establishing the first connection, in milliseconds (default 2000). */
  readonly connectTimeoutMs?: number;
}

const DEFAULT_KEY_PREFIX = 'trustplane:jti:';
const DEFAULT_COMMAND_TIMEOUT_MS = 500;
const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const DEFAULT_CHECK_INTERVAL_MS = 2000;
/** Reconnect backoff: 50 ms doubling, capped at 2 s, forever (in the background). */
const RECONNECT_BASE_MS = 50;
const RECONNECT_CAP_MS = 2000;
const NO_EVICTION = 'noeviction';
const POLICY_PATTERN = /^[a-z][a-z-]{0,31}$/;

/**
 * The consume, atomically: the sentinel's epoch, its write counter incremented, the jti key set if
 * absent. Lua `false` (a nil reply) stays a nil element of the reply array.
 */
const CONSUME_SCRIPT = [
  "local epoch = redis.call('HGET', KEYS[1], 'epoch')",
  "local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)",
  "local set = redis.call('SET', KEYS[2], '1', 'EX', ARGV[1], 'NX')",
  'return {epoch, seq, set}',
].join('\n');
const CONSUME_SHA1 = createHash('sha1').update(CONSUME_SCRIPT).digest('hex');

/** Raise the sentinel's `until` (the shared fail-closed window end) to ARGV[1], never lower it. */
const RAISE_UNTIL_SCRIPT = [
  "local current = tonumber(redis.call('HGET', KEYS[1], 'until') or '0') or 0",
  'if tonumber(ARGV[1]) > current then',
  "  redis.call('HSET', KEYS[1], 'until', ARGV[1])",
  'end',
  'return 1',
].join('\n');

/** Clients created by {@link RedisReplayStore.connect}: the store owns them and quits them on close. */
const ownedClients = new WeakSet<Redis>();

/**
 * A replay store shared by every process and replica. Each consume is one atomic step (a Lua
 * script; `MULTI`/`EXEC` where scripting is refused): `HGET <sentinel> epoch`,
 * `HINCRBY <sentinel> seq 1`, `SET <prefix><key> 1 EX <ttl> NX`. Of any number of concurrent
 * consumes of a key (on any connection) exactly one wins, Redis expires the key with the passport,
 * and the same reply tells whether Redis still holds what it held.
 *
 * **Amnesia.** Redis can forget consumed keys: a restart without persistence, `FLUSHALL`, a failover
 * to an empty or lagging replica, eviction. The store keeps a sentinel (the key equal to
 * `keyPrefix`, no TTL) holding a random `epoch` and a write counter `seq`. A missing or changed
 * epoch, or a counter lower than one already seen, means consumed keys may be gone; so does a rise
 * of Redis's `evicted_keys`. Then every consume whose `expiresAt` is at or before
 * `now + amnesiaWindowSeconds` (every passport that may have been used before the loss) is refused
 * with `replay_store_amnesia` (503, retryable), `health()` says `amnesia` until that time, the
 * sentinel gets a new epoch (so every other replica notices too), and the store recovers by itself.
 *
 * **Eviction policy.** `connect` refuses a Redis whose `maxmemory-policy` can evict jti keys
 * (anything but `noeviction`), unless `allowEviction`; where `CONFIG GET` is refused the operator
 * declares the policy (`maxmemoryPolicy`). The policy, the sentinel and `evicted_keys` are checked
 * again every `checkIntervalMs` and on every reconnection; a policy changed at runtime fails every
 * consume closed until it is `noeviction` again.
 *
 * It fails fast and closed: no offline queue, no command retries, a per-command timeout, so while
 * Redis is unreachable every `consume` rejects with `replay_store_unavailable` within
 * `commandTimeoutMs` (and usually at once) while the client keeps reconnecting in the background
 * with a capped backoff. It never answers `true` when unsure (a timed-out transaction may have
 * landed: the jti is then burnt, which denies, never allows, a retry). Error messages never contain
 * the URL or credentials. Standalone Redis (or a primary with replicas) only: the sentinel and the
 * jti keys share one transaction, which Redis Cluster refuses across slots.
 *
 * @example
 * const store = await RedisReplayStore.connect({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' })
 * const first = await store.consume(key, exp + skew, nowSeconds)
 * await store.close()
 */
export class RedisReplayStore implements ReplayStore {
  readonly #client: Redis;
  readonly #keyPrefix: string;
  readonly #commandTimeoutMs: number;
  readonly #windowSeconds: number;
  readonly #allowEviction: boolean;
  readonly #declaredPolicy: string | undefined;
  readonly #coldStart: RedisColdStart;
  readonly #now: () => number;
  readonly #onError: ((code: string) => void) | undefined;
  readonly #onEvent: ((event: RedisReplayStoreEvent) => void) | undefined;
  readonly #errorListener = (error: unknown): void => {
    this.#lastErrorCode = redisErrorCode(error);
    try {
      this.#onError?.(this.#lastErrorCode);
    } catch {
      // a failing metric callback must not turn a swallowed event into a crash
    }
  };
  /** A (re)connection: check at once rather than at the next tick. */
  readonly #readyListener = (): void => void this.#check();
  readonly #timer: NodeJS.Timeout;
  #lastErrorCode: string | undefined;
  #closing: Promise<void> | undefined;

  /** The epoch this store knows; undefined before the first check and while a new one is written. */
  #epoch: string | undefined;
  /** A new epoch must replace the current one (after a rollback the old epoch is still there). */
  #replaceEpoch = false;
  /**
   * Commands go out on one connection and Redis runs them in that order, but their replies are
   * handled through promise chains of different lengths: each sentinel reading carries the ticket
   * of its command, and only a reading sent later than the one it is compared with is compared.
   */
  #ticket = 0;
  /** The ticket of the command that established `#epoch`; older readings are stale. */
  #epochTicket = 0;
  /** The `seq` of the latest-sent reading in the current epoch, and its ticket. */
  #seq = Number.NEGATIVE_INFINITY;
  #seqTicket = 0;
  /** True once an epoch was adopted (the first check succeeded). */
  #initialized = false;
  /** Keys expiring at or before this (store clock, epoch seconds) are refused: the fail-closed window. */
  #until = Number.NEGATIVE_INFINITY;
  #windowReported = false;
  /** The sentinel's `until` as last read or written (epoch seconds; 0 when none). */
  #sharedUntil = 0;
  /** `maxmemory-policy` as last read (or declared); undefined when unknown. */
  #policy: string | undefined;
  #policyReadable = false;
  /** Whether the last `eviction_policy` event still stands (to report each change once). */
  #policyReported = false;
  #evictedKeys: number | undefined;
  /** The last write was refused for memory (`OOM`); cleared by the next successful write. */
  #outOfMemory = false;
  /** The last write was refused by a read-only replica (`READONLY`); cleared by the next successful write. */
  #readOnly = false;
  /** The last check could not reach Redis (connection error or timeout). */
  #unreachable = false;
  #checking: Promise<void> | undefined;
  /** False once Redis refused the consume script (then MULTI/EXEC is used). */
  #scripting = true;

  /**
   * Wrap an existing ioredis client. The caller keeps ownership: `close` does not quit it. For the
   * fail-fast behaviour configure it like {@link RedisReplayStore.connect} does
   * (`enableOfflineQueue: false`, `maxRetriesPerRequest: 0`, `commandTimeout`); each command is
   * bounded by `commandTimeoutMs` here regardless. The first consume waits for the first check
   * (sentinel and eviction policy); until it succeeds consumes are refused.
   * @param client an ioredis client (connected, or connecting)
   * @param options key prefix, command timeout, amnesia window, eviction policy, clock, callbacks
   * @throws TypeError or RangeError for invalid options
   * @example
   * const store = new RedisReplayStore(new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 }))
   */
  constructor(client: Redis, options: RedisReplayStoreOptions = {}) {
    if (typeof client !== 'object' || client === null || typeof client.set !== 'function') {
      throw new TypeError('client must be an ioredis Redis instance');
    }
    const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    if (typeof keyPrefix !== 'string') throw new TypeError('keyPrefix must be a string');
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new TypeError('onError must be a function');
    }
    if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
      throw new TypeError('onEvent must be a function');
    }
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new TypeError('now must be a function');
    }
    const window = options.amnesiaWindowSeconds ?? DEFAULT_AMNESIA_WINDOW_SECONDS;
    if (!Number.isSafeInteger(window) || window < 1) {
      throw new RangeError('amnesiaWindowSeconds must be a positive integer');
    }
    if (options.maxmemoryPolicy !== undefined && !POLICY_PATTERN.test(String(options.maxmemoryPolicy))) {
      throw new RangeError('maxmemoryPolicy must be a Redis maxmemory-policy name, e.g. noeviction');
    }
    const coldStart = options.coldStart ?? 'trust';
    if (coldStart !== 'trust' && coldStart !== 'fail-closed') {
      throw new RangeError("coldStart must be 'trust' or 'fail-closed'");
    }
    this.#client = client;
    this.#keyPrefix = keyPrefix;
    this.#commandTimeoutMs = positiveMs(
      options.commandTimeoutMs,
      DEFAULT_COMMAND_TIMEOUT_MS,
      'commandTimeoutMs',
    );
    const checkIntervalMs = positiveMs(options.checkIntervalMs, DEFAULT_CHECK_INTERVAL_MS, 'checkIntervalMs');
    this.#windowSeconds = window;
    this.#allowEviction = options.allowEviction === true;
    this.#declaredPolicy = options.maxmemoryPolicy;
    this.#coldStart = coldStart;
    this.#now = options.now ?? systemNow;
    this.#onError = options.onError;
    this.#onEvent = options.onEvent;
    client.on('error', this.#errorListener);
    client.on('ready', this.#readyListener);
    this.#timer = setInterval(() => void this.#check(), checkIntervalMs);
    this.#timer.unref();
    if (client.status === 'ready') void this.#check();
  }

  /**
   * Create a fail-fast client for `url`, connect it, check the eviction policy and the sentinel, and
   * wrap it. The store owns the client.
   * @param options `url`, key prefix, command and connect timeouts, amnesia window, eviction policy, callbacks
   * @returns a connected store
   * @throws Error `could not connect to Redis at <scheme://host:port> (<code>)` when the first
   *   connection or check fails or times out (the background reconnection is stopped; credentials are
   *   never in the message); an Error naming the policy when `maxmemory-policy` can evict jti keys (and
   *   `allowEviction` is off) or cannot be read and was not declared
   * @throws TypeError or RangeError for an invalid URL or options
   * @example
   * const store = await RedisReplayStore.connect({ url: 'redis://127.0.0.1:6379', commandTimeoutMs: 250 })
   */
  static async connect(options: RedisReplayStoreConnectOptions): Promise<RedisReplayStore> {
    const target = redactedTarget(options.url);
    const commandTimeoutMs = positiveMs(
      options.commandTimeoutMs,
      DEFAULT_COMMAND_TIMEOUT_MS,
      'commandTimeoutMs',
    );
    const connectTimeoutMs = positiveMs(
      options.connectTimeoutMs,
      DEFAULT_CONNECT_TIMEOUT_MS,
      'connectTimeoutMs',
    );
    // ioredis is an optional peer dependency: loaded here, on first use (dependency_missing without it).
    const { Redis: RedisClient } = requireOptional<{ Redis: typeof Redis }>(
      'ioredis',
      'the Redis replay store',
    );
    let client: Redis;
    try {
      client = new RedisClient(options.url, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        // A transaction resent after a reconnect could answer a caller that was already told "unavailable".
        autoResendUnfulfilledCommands: false,
        commandTimeout: commandTimeoutMs,
        connectTimeout: connectTimeoutMs,
        // On close, a socket that does not end gracefully (Redis gone) is destroyed after this.
        disconnectTimeout: commandTimeoutMs,
        retryStrategy: (times) => Math.min(RECONNECT_BASE_MS * 2 ** Math.min(times, 16), RECONNECT_CAP_MS),
      });
    } catch {
      throw new TypeError(`invalid Redis URL for ${target}`);
    }
    ownedClients.add(client);
    const store = new RedisReplayStore(client, options);
    try {
      await withTimeout(client.connect(), connectTimeoutMs);
    } catch (e) {
      await store.close();
      client.disconnect();
      const code =
        e instanceof CommandTimeoutError ? 'ETIMEDOUT' : (store.#lastErrorCode ?? redisErrorCode(e));
      throw new Error(`could not connect to Redis at ${target} (${code})`);
    }
    await store.#check();
    const refusal = store.#startupRefusal(target);
    if (refusal !== undefined) {
      await store.close();
      client.disconnect();
      throw new Error(refusal);
    }
    return store;
  }

  /**
   * Atomically mark `key` used until `expiresAt` (`SET NX` with `EX max(1, expiresAt - now)`), in one
   * transaction with the sentinel check.
   * @param key the replay key (at most 1,024 UTF-8 bytes; stored as `<keyPrefix><key>`)
   * @param expiresAt epoch seconds after which the key may be used again
   * @param now the current time in epoch seconds
   * @returns true on first use, false when the key is already held
   * @throws TrustplaneError `replay_store_amnesia` when Redis lost consumed keys and `expiresAt` falls
   *   in the fail-closed window (the passport may have been used before the loss)
   * @throws TrustplaneError `replay_store_unavailable` on any error, timeout or unexpected reply, while
   *   the eviction policy can drop jti keys, before the first check succeeded, and after `close`
   * @throws TypeError or RangeError for a malformed key or non-finite times
   * @example
   * if (!(await store.consume(key, exp + 60, nowSeconds))) throw new TrustplaneError('jti_replay', 'passport jti already used')
   */
  async consume(key: string, expiresAt: number, now: number): Promise<boolean> {
    assertReplayArguments(key, expiresAt, now);
    this.#assertOpen();
    if (!this.#initialized) {
      await this.#check();
      this.#assertOpen();
      if (!this.#initialized) throw unavailableCode(this.#lastErrorCode ?? 'ENOTREADY');
    }
    this.#refuseUnsafe(expiresAt);
    const ttl = Math.max(1, Math.ceil(expiresAt - now));
    const sentinel = this.#keyPrefix;
    let sent: { readonly ticket: number; readonly replies: unknown[] };
    try {
      sent = await this.#bounded(this.#consumeOnce(sentinel, this.#keyPrefix + key, ttl));
    } catch (e) {
      this.#noteWriteError(e);
      throw unavailable(e);
    }
    const { ticket, replies } = sent;
    const [epoch, seq, reply] = replies;
    this.#outOfMemory = false;
    this.#readOnly = false;
    this.#observe(epoch, seq, 'write', ticket);
    // A loss found by this very reply: the key was written to a Redis that forgot the earlier ones.
    this.#refuseUnsafe(expiresAt);
    if (reply === 'OK') return true;
    if (reply === null) return false;
    throw unavailableCode('EUNEXPECTED');
  }

  /**
   * Readiness probe: `PING`, bounded by `commandTimeoutMs`.
   * @returns a promise that resolves when Redis answered
   * @throws TrustplaneError `replay_store_unavailable` when Redis is unreachable or slow, or after `close`
   * @example
   * await store.ping()
   */
  async ping(): Promise<void> {
    this.#assertOpen();
    try {
      await this.#bounded(this.#client.ping());
    } catch (e) {
      throw unavailable(e);
    }
  }

  /**
   * Readiness: runs a check (sentinel, eviction policy, evictions, a write probe) and answers, in this
   * order: `unavailable` (closed, unreachable or not yet checked), `eviction_policy` (the policy can
   * evict jti keys, or is unknown, and `allowEviction` is off), `out_of_memory` (Redis refuses
   * writes for memory), `read_only` (a read-only replica refuses writes: a failover pointed the store
   * at a replica), `amnesia` (inside the fail-closed window after a loss), else healthy.
   * @returns the store's {@link ComponentHealth}; never rejects
   * @example
   * const { ok, reason } = await store.health()
   */
  async health(): Promise<ComponentHealth> {
    if (this.#closing !== undefined) return unhealthy('unavailable');
    await this.#check();
    if (this.#unreachable || !this.#initialized) return unhealthy('unavailable');
    if (this.#policyRefused()) return unhealthy('eviction_policy');
    if (this.#outOfMemory) return unhealthy('out_of_memory');
    if (this.#readOnly) return unhealthy('read_only');
    if (this.#now() < this.#until) return unhealthy('amnesia');
    return HEALTHY;
  }

  /**
   * Stop using Redis: stop the checks, then `QUIT` (or a hard disconnect when that fails) for a client
   * this store created; an injected client is left open for its owner. Idempotent; never rejects.
   * @returns a promise that resolves once the connection is released
   * @example
   * await store.close()
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearInterval(this.#timer);
    this.#client.off('ready', this.#readyListener);
    if (!ownedClients.has(this.#client)) {
      this.#client.off('error', this.#errorListener);
      return;
    }
    if (this.#client.status !== 'ready') {
      this.#client.disconnect();
      return;
    }
    try {
      await this.#bounded(this.#client.quit());
    } catch {
      this.#client.disconnect();
    }
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) {
      throw new TrustplaneError('replay_store_unavailable', 'replay store unavailable', {
        store: 'redis',
        error: 'closed',
      });
    }
  }

  #policyRefused(): boolean {
    return !this.#allowEviction && this.#policy !== NO_EVICTION;
  }

  /** Refuse what this store cannot answer safely now (see the class comment). */
  #refuseUnsafe(expiresAt: number): void {
    if (this.#policyRefused()) throw unavailableCode('eviction_policy');
    if (expiresAt <= this.#until) {
      throw new TrustplaneError('replay_store_amnesia', 'replay store lost consumed jtis', {
        store: 'redis',
        until: this.#until,
      });
    }
  }

  #startupRefusal(target: string): string | undefined {
    if (!this.#initialized || this.#unreachable) {
      return `could not connect to Redis at ${target} (${this.#lastErrorCode ?? 'ENOTREADY'})`;
    }
    if (!this.#policyRefused()) return undefined;
    if (this.#policy === undefined) {
      return (
        `cannot read maxmemory-policy of Redis at ${target} (CONFIG GET refused): check the server's ` +
        'configuration and declare it (maxmemoryPolicy; adapter: --redis-maxmemory-policy noeviction)'
      );
    }
    return (
      `Redis at ${target} has maxmemory-policy ${this.#policy}, which can evict jti keys and re-open ` +
      'replays: set maxmemory-policy noeviction (or accept evictions: allowEviction; adapter: --redis-allow-eviction)'
    );
  }

  /**
   * One atomic consume: `[epoch, seq, SET reply]`. A Lua script (one command, as cheap as the plain
   * `SET`); where scripting is refused (an ACL without `EVAL`, renamed commands) the same three
   * commands in `MULTI`/`EXEC`.
   */
  async #consumeOnce(
    sentinel: string,
    key: string,
    ttl: number,
  ): Promise<{ readonly ticket: number; readonly replies: unknown[] }> {
    if (this.#scripting) {
      let ticket = ++this.#ticket;
      try {
        let reply: unknown;
        try {
          reply = await this.#client.evalsha(CONSUME_SHA1, 2, sentinel, key, ttl);
        } catch (e) {
          if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
          ticket = ++this.#ticket;
          reply = await this.#client.eval(CONSUME_SCRIPT, 2, sentinel, key, ttl);
        }
        if (!Array.isArray(reply) || reply.length !== 3) throw unavailableCode('EUNEXPECTED');
        return { ticket, replies: reply as unknown[] };
      } catch (e) {
        if (!scriptingRefused(e)) throw e;
        this.#scripting = false;
      }
    }
    const ticket = ++this.#ticket;
    const replies = await this.#client
      .multi()
      .hget(sentinel, 'epoch')
      .hincrby(sentinel, 'seq', 1)
      .set(key, '1', 'EX', ttl, 'NX')
      .exec();
    return { ticket, replies: transactionResults(replies, 3) };
  }

  /** Compare a reply's view of the sentinel with what this store knows; open the window on a loss. */
  #observe(epoch: unknown, seqReply: unknown, kind: 'read' | 'write', ticket: number): void {
    // While a new epoch is written the window is open already; a reading sent before the current
    // epoch was established tells nothing new.
    if (this.#epoch === undefined || ticket < this.#epochTicket) return;
    const seq = toCount(seqReply);
    if (epoch === null) {
      this.#lost('epoch_missing', false);
    } else if (epoch !== this.#epoch) {
      // Another replica found a loss and wrote a new epoch: adopt it, and refuse what it refuses.
      this.#adopt(typeof epoch === 'string' ? epoch : String(epoch), seq, ticket);
      this.#openWindow('epoch_changed');
    } else if (ticket > this.#seqTicket) {
      // Sent after the reading it is compared with, so executed after it: a write must see a higher
      // counter, a read at least the same.
      if (kind === 'write' ? seq <= this.#seq : seq < this.#seq) {
        this.#lost('counter_rollback', true);
      } else {
        this.#seq = seq;
        this.#seqTicket = ticket;
      }
    }
  }

  #adopt(epoch: string, seq: number, ticket: number): void {
    this.#epoch = epoch;
    this.#epochTicket = ticket;
    this.#seq = seq;
    this.#seqTicket = ticket;
  }

  #lost(cause: RedisAmnesiaCause, overwrite: boolean): void {
    this.#openWindow(cause);
    this.#epoch = undefined;
    this.#replaceEpoch = overwrite;
    // Until the new epoch is written the window is open already; a failure is retried by the next check.
    void this.#writeEpoch().catch(() => undefined);
  }

  #openWindow(cause: RedisAmnesiaCause): void {
    const until = this.#now() + this.#windowSeconds;
    if (until > this.#until) this.#until = until;
    this.#windowReported = true;
    this.#emit({ type: 'amnesia', cause, until: this.#until });
    // A replica that starts inside the window must refuse what this one refuses: share it.
    void this.#shareWindow().catch(() => undefined);
  }

  /**
   * Take over a window another replica shared through the sentinel (`until`, epoch seconds) when it
   * ends later than this store's own. Reported as an `amnesia` event only when this store was not
   * failing closed already (replicas that each noticed the loss extend each other's window silently).
   */
  #adoptSharedWindow(value: unknown): void {
    const until = toCount(value);
    this.#sharedUntil = until;
    if (until <= this.#until) return;
    const now = this.#now();
    if (until <= now) return;
    const wasClosed = now < this.#until;
    this.#until = until;
    this.#windowReported = true;
    if (!wasClosed) this.#emit({ type: 'amnesia', cause: 'window_shared', until });
  }

  /**
   * Raise the sentinel's `until` to this store's window end (never lower it: a Lua script, or a plain
   * `HSET` where scripting is refused). Retried by every check until Redis holds it.
   */
  async #shareWindow(): Promise<void> {
    const until = this.#until;
    if (until <= this.#now() || this.#sharedUntil >= until) return;
    const sentinel = this.#keyPrefix;
    if (this.#scripting) {
      try {
        await this.#bounded(this.#client.eval(RAISE_UNTIL_SCRIPT, 1, sentinel, String(until)));
        this.#sharedUntil = Math.max(this.#sharedUntil, until);
        return;
      } catch (e) {
        if (!scriptingRefused(e)) throw e;
        this.#scripting = false;
      }
    }
    await this.#bounded(this.#client.hset(sentinel, 'until', String(until)));
    this.#sharedUntil = Math.max(this.#sharedUntil, until);
  }

  /**
   * Adopt the sentinel's epoch, writing a fresh one when it has none (`HSETNX`: of several replicas
   * racing, one writes and the others adopt it) or, after a rollback, over the old one.
   */
  async #writeEpoch(): Promise<void> {
    const fresh = randomBytes(16).toString('hex');
    const sentinel = this.#keyPrefix;
    const tx = this.#client.multi();
    if (this.#replaceEpoch) tx.hset(sentinel, 'epoch', fresh);
    else tx.hsetnx(sentinel, 'epoch', fresh);
    const ticket = ++this.#ticket;
    const replies = await this.#bounded(tx.hmget(sentinel, 'epoch', 'seq', 'until').exec());
    const [written, current] = transactionResults(replies, 2);
    const [epoch, seq, until] = Array.isArray(current) ? (current as unknown[]) : [];
    if (typeof epoch !== 'string') throw new Error('no epoch');
    this.#replaceEpoch = false;
    this.#adopt(epoch, toCount(seq), ticket);
    this.#adoptSharedWindow(until);
    if (!this.#initialized) {
      this.#initialized = true;
      if (written === 1) {
        if (this.#coldStart === 'fail-closed') this.#openWindow('cold_start');
        else this.#emit({ type: 'epoch_created' });
      }
    }
  }

  /** One check at a time; concurrent callers share it. Never rejects. */
  #check(): Promise<void> {
    if (this.#closing !== undefined) return Promise.resolve();
    this.#checking ??= this.#runCheck().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #runCheck(): Promise<void> {
    const results = await Promise.allSettled([
      this.#checkSentinel(),
      this.#checkPolicy(),
      this.#checkEvictions(),
      this.#probeWrite(),
    ]);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    this.#unreachable = failure !== undefined;
    if (failure !== undefined) this.#lastErrorCode = redisErrorCode(failure.reason);
    if (this.#windowReported && this.#now() >= this.#until) {
      this.#windowReported = false;
      this.#emit({ type: 'recovered' });
    }
  }

  async #checkSentinel(): Promise<void> {
    if (this.#epoch === undefined) return this.#writeEpoch();
    // One read command (no MULTI: Redis refuses a whole transaction while it is out of memory).
    const ticket = ++this.#ticket;
    const reply: unknown = await this.#bounded(this.#client.hmget(this.#keyPrefix, 'epoch', 'seq', 'until'));
    if (!Array.isArray(reply) || reply.length !== 3) throw unavailableCode('EUNEXPECTED');
    this.#observe(reply[0], reply[1], 'read', ticket);
    this.#adoptSharedWindow(reply[2]);
    // Sharing is retried by the next check; a refused write shows in the write probe.
    await this.#shareWindow().catch(() => undefined);
  }

  /** `HINCRBY <sentinel> seq 0`: a write that changes nothing, refused with OOM when Redis is full. */
  async #probeWrite(): Promise<void> {
    try {
      await this.#bounded(this.#client.hincrby(this.#keyPrefix, 'seq', 0));
      this.#outOfMemory = false;
      this.#readOnly = false;
    } catch (e) {
      if (!isReplyError(e)) throw e;
      this.#noteWriteError(e);
    }
  }

  async #checkPolicy(): Promise<void> {
    let policy: string | undefined;
    try {
      const reply: unknown = await this.#bounded(this.#client.config('GET', 'maxmemory-policy'));
      policy = Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
      this.#policyReadable = policy !== undefined;
    } catch (e) {
      if (!isReplyError(e)) throw e;
      // CONFIG renamed or forbidden (NOPERM, unknown command): only the operator can say.
      this.#policyReadable = false;
    }
    if (!this.#policyReadable) policy = this.#declaredPolicy;
    this.#policy = policy;
    const evicting = policy !== NO_EVICTION;
    if (evicting && !this.#policyReported) {
      this.#policyReported = true;
      this.#emit({ type: 'eviction_policy', policy, allowed: this.#allowEviction });
    } else if (!evicting && this.#policyReported) {
      this.#policyReported = false;
      this.#emit({ type: 'eviction_policy_ok' });
    }
  }

  async #checkEvictions(): Promise<void> {
    let info: string;
    try {
      info = await this.#bounded(this.#client.info('stats'));
    } catch (e) {
      if (!isReplyError(e)) throw e;
      return; // INFO forbidden: evictions cannot be seen (the policy check still stands)
    }
    const match = /^evicted_keys:(\d+)\r?$/m.exec(info);
    if (match === null) return;
    const evicted = Number(match[1]);
    const previous = this.#evictedKeys;
    this.#evictedKeys = evicted;
    if (previous === undefined) return;
    // A lower count means a restart (or CONFIG RESETSTAT): every eviction it shows is new.
    const since = evicted < previous ? evicted : evicted - previous;
    if (since > 0) this.#openWindow('keys_evicted');
  }

  #noteWriteError(e: unknown): void {
    const code = redisErrorCode(e);
    if (code === 'OOM') this.#outOfMemory = true;
    else if (code === 'READONLY') this.#readOnly = true;
  }

  #emit(event: RedisReplayStoreEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // a failing log or metric callback must not break the store
    }
  }

  #bounded<T>(promise: Promise<T>): Promise<T> {
    return withTimeout(promise, this.#commandTimeoutMs);
  }
}

class CommandTimeoutError extends Error {}

/** Settle with `promise`, or reject after `ms`; a late rejection of `promise` is swallowed. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CommandTimeoutError('timed out')), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error('redis error'));
      },
    );
  });
}

/** The replies of an `EXEC`, each checked; throws the first command error. */
function transactionResults(replies: [Error | null, unknown][] | null, count: number): unknown[] {
  if (!Array.isArray(replies) || replies.length !== count) throw unavailableCode('EUNEXPECTED');
  return replies.map(([error, value]) => {
    if (error !== null) throw unavailable(error);
    return value;
  });
}

function toCount(reply: unknown): number {
  if (reply === null || reply === undefined) return 0;
  const n = typeof reply === 'number' ? reply : Number(reply);
  return Number.isFinite(n) ? n : 0;
}

function systemNow(): number {
  return Math.floor(Date.now() / 1000);
}

/** Redis refuses scripting itself (ACL, renamed or disabled commands), not this one call. */
function scriptingRefused(error: unknown): boolean {
  if (!isReplyError(error)) return false;
  const message = (error as Error).message;
  return message.startsWith('NOPERM') || /unknown command/i.test(message);
}

function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError';
}

function unavailable(cause: unknown): TrustplaneError {
  return unavailableCode(cause === undefined ? 'EUNEXPECTED' : redisErrorCode(cause));
}

function unavailableCode(code: string): TrustplaneError {
  return new TrustplaneError('replay_store_unavailable', 'replay store unavailable', {
    store: 'redis',
    error: code,
  });
}

/** A short, credential-free code for an ioredis or socket error (never its message). */
function redisErrorCode(error: unknown): string {
  if (error instanceof TrustplaneError) {
    const code = error.details?.error;
    return typeof code === 'string' ? code : 'EREDIS';
  }
  if (error instanceof CommandTimeoutError) return 'ETIMEDOUT';
  if (!(error instanceof Error)) return 'EREDIS';
  // EXECABORT: the transaction was refused because a queued command was (OOM, NOPERM…).
  const previous: unknown = (error as { previousErrors?: unknown }).previousErrors;
  if (Array.isArray(previous) && previous[0] instanceof Error) return redisErrorCode(previous[0]);
  const code: unknown = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,39}$/.test(code)) return code;
  if (error.message === 'Command timed out') return 'ETIMEDOUT';
  if (error.message.startsWith("Stream isn't writeable")) return 'ENOTCONNECTED';
  if (error.message === 'Connection is closed.') return 'ECONNCLOSED';
  if (error.name === 'ReplyError') {
    const word = /^([A-Z]{2,20})\b/.exec(error.message)?.[1];
    return word ?? 'ERR';
  }
  return /^[A-Za-z]{1,40}Error$/.test(error.name) && error.name !== 'Error' ? error.name : 'EREDIS';
}

/** `scheme://host:port` of a Redis URL, without credentials, path or query. */
function redactedTarget(url: string): string {
  if (typeof url !== 'string') throw new TypeError('url must be a string');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // not the URL itself: it may hold a password
    throw new TypeError('url is not a valid Redis URL');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new TypeError('url must use the redis: or rediss: scheme');
  }
  return `${parsed.protocol}//${parsed.hostname}:${parsed.port === '' ? '6379' : parsed.port}`;
}

function positiveMs(value: number | undefined, fallback: number, name: string): number {
  const ms = value ?? fallback;
  if (!Number.isSafeInteger(ms) || ms < 1) throw new RangeError(`${name} must be a positive integer`);
  return ms;
}
