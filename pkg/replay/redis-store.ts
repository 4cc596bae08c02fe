import { Redis } from 'ioredis';
import { TrustplaneError } from '../authcore/errors.js';
import { assertReplayArguments, type ReplayStore } from '../authcore/replay-store.js';

/** Options for a {@link RedisReplayStore} over a client (see also {@link RedisReplayStoreConnectOptions}). */
export interface RedisReplayStoreOptions {
  /** Prefix of every key the store writes (default `trustplane:jti:`). */
  readonly keyPrefix?: string;
  /** Upper bound on each command, in milliseconds (default 500). Past it the command fails closed. */
  readonly commandTimeoutMs?: number;
  /**
   * Called for every `error` event of the client (connection refused, reset, timeouts…) with a short
   * code such as `ECONNREFUSED`, e.g. to count them in a metric. The events are otherwise swallowed,
   * so a Redis outage never crashes the process; `consume` reports the outage by rejecting.
   */
  readonly onError?: (code: string) => void;
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
/** Longest key accepted, in UTF-8 bytes (verifier keys are 64 hex characters). */
/** Reconnect backoff: 50 ms doubling, capped at 2 s, forever (in the background). */
const RECONNECT_BASE_MS = 50;
const RECONNECT_CAP_MS = 2000;

/** Clients created by {@link RedisReplayStore.connect}: the store owns them and quits them on close. */
const ownedClients = new WeakSet<Redis>();

/**
 * A replay store shared by every process and replica: one atomic
 * `SET <prefix><key> 1 EX <ttl> NX` per consume, so of any number of concurrent consumes of a key
 * (on any connection) exactly one wins, and Redis expires the key with the passport.
 *
 * It fails fast and closed: no offline queue, no command retries, a per-command timeout, so while
 * Redis is unreachable every `consume` rejects with `replay_store_unavailable` within
 * `commandTimeoutMs` (and usually at once) while the client keeps reconnecting in the background
 * with a capped backoff. It never answers `true` when unsure (a timed-out `SET` may have landed: the
 * jti is then burnt, which denies, never allows, a retry). Error messages never contain the URL or
 * credentials.
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
  readonly #onError: ((code: string) => void) | undefined;
  readonly #errorListener = (error: unknown): void => {
    this.#lastErrorCode = redisErrorCode(error);
    try {
      this.#onError?.(this.#lastErrorCode);
    } catch {
      // a failing metric callback must not turn a swallowed event into a crash
    }
  };
  #lastErrorCode: string | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Wrap an existing ioredis client. The caller keeps ownership: `close` does not quit it. For the
   * fail-fast behaviour configure it like {@link RedisReplayStore.connect} does
   * (`enableOfflineQueue: false`, `maxRetriesPerRequest: 0`, `commandTimeout`); each command is
   * bounded by `commandTimeoutMs` here regardless.
   * @param client an ioredis client (connected, or connecting)
   * @param options key prefix, command timeout, error callback
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
    this.#client = client;
    this.#keyPrefix = keyPrefix;
    this.#commandTimeoutMs = positiveMs(
      options.commandTimeoutMs,
      DEFAULT_COMMAND_TIMEOUT_MS,
      'commandTimeoutMs',
    );
    this.#onError = options.onError;
    client.on('error', this.#errorListener);
  }

  /**
   * Create a fail-fast client for `url`, connect it, and wrap it. The store owns the client.
   * @param options `url`, key prefix, command and connect timeouts, error callback
   * @returns a connected store
   * @throws Error `could not connect to Redis at <scheme://host:port> (<code>)` when the first
   *   connection fails or times out (the background reconnection is stopped; credentials are never
   *   in the message)
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
    let client: Redis;
    try {
      client = new Redis(options.url, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        // A SET NX resent after a reconnect could answer a caller that was already told "unavailable".
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
      client.disconnect();
      const code =
        e instanceof CommandTimeoutError ? 'ETIMEDOUT' : (store.#lastErrorCode ?? redisErrorCode(e));
      throw new Error(`could not connect to Redis at ${target} (${code})`);
    }
    return store;
  }

  /**
   * Atomically mark `key` used until `expiresAt` (`SET NX` with `EX max(1, expiresAt - now)`).
   * @param key the replay key (at most 1,024 UTF-8 bytes; stored as `<keyPrefix><key>`)
   * @param expiresAt epoch seconds after which the key may be used again
   * @param now the current time in epoch seconds
   * @returns true on first use, false when the key is already held
   * @throws TrustplaneError `replay_store_unavailable` on any error, timeout or unexpected reply, and
   *   after `close`
   * @throws TypeError or RangeError for a malformed key or non-finite times
   * @example
   * if (!(await store.consume(key, exp + 60, nowSeconds))) throw new TrustplaneError('jti_replay', 'passport jti already used')
   */
  async consume(key: string, expiresAt: number, now: number): Promise<boolean> {
    assertReplayArguments(key, expiresAt, now);
    this.#assertOpen();
    const ttl = Math.max(1, Math.ceil(expiresAt - now));
    let reply: unknown;
    try {
      reply = await this.#bounded(this.#client.set(this.#keyPrefix + key, '1', 'EX', ttl, 'NX'));
    } catch (e) {
      throw unavailable(e);
    }
    if (reply === 'OK') return true;
    if (reply === null) return false;
    throw unavailable(undefined);
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
   * Stop using Redis: `QUIT` (or a hard disconnect when that fails) for a client this store created;
   * an injected client is left open for its owner. Idempotent; never rejects.
   * @returns a promise that resolves once the connection is released
   * @example
   * await store.close()
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (!ownedClients.has(this.#client)) {
      this.#client.off('error', this.#errorListener);
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

function unavailable(cause: unknown): TrustplaneError {
  const code = cause === undefined ? 'EUNEXPECTED' : redisErrorCode(cause);
  return new TrustplaneError('replay_store_unavailable', 'replay store unavailable', {
    store: 'redis',
    error: code,
  });
}

/** A short, credential-free code for an ioredis or socket error (never its message). */
function redisErrorCode(error: unknown): string {
  if (error instanceof CommandTimeoutError) return 'ETIMEDOUT';
  if (!(error instanceof Error)) return 'EREDIS';
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
