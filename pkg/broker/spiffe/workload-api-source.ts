import type * as grpc from '@grpc/grpc-js';
import { requireOptional } from '../../internal/node/require-optional.js';
import { WorkloadApiError, printable } from './workload-api-error.js';
import { grpcTarget, parseWorkloadEndpoint, type WorkloadEndpoint } from './workload-api-endpoint.js';
import { WORKLOAD_API_MAX_MESSAGE_BYTES } from './workload-api-limits.js';
import { errorFromStatus } from './workload-api-status.js';
import { parseX509SvidResponse, type X509Svid, type X509SvidUpdate } from './workload-api-update.js';
import {
  WORKLOAD_API_SECURITY_HEADER,
  loadWorkloadApiDefinition,
  type WorkloadApiDefinition,
} from './workload-proto.js';

/*
 * SPIFFE Workload API client, X.509-SVID profile: one long-lived FetchX509SVID server stream,
 * each message turned into an immutable update. This module parses and bounds what the agent
 * sends; it does NOT verify the SVID (chain, SPIFFE ID match, validity): `verifyX509Svid` does,
 * and the broker glues the two together.
 */

/** Reconnect backoff of {@link WorkloadApiX509Source}: `initialMs`, doubling, capped at `maxMs`. */
export interface WorkloadApiBackoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** Options of {@link WorkloadApiX509Source.connect}. */
export interface WorkloadApiX509SourceOptions {
  /** Workload API address (see {@link parseWorkloadEndpoint}); default `process.env.SPIFFE_ENDPOINT_SOCKET`. */
  readonly endpoint?: string;
  /** Called with every accepted update, the first one included. Must not throw (exceptions are swallowed). */
  readonly onUpdate?: (update: X509SvidUpdate) => void;
  /**
   * Called with every failure the source survives: a stream that failed or ended (a reconnect
   * follows), a response that was ignored (the last good update stays current). Must not throw.
   */
  readonly onError?: (error: WorkloadApiError) => void;
  /** How long `connect()` waits for the first good update, ms (default 10,000). */
  readonly initialTimeoutMs?: number;
  /** Reconnect backoff (default `{ initialMs: 1000, maxMs: 30000 }`). */
  readonly backoff?: WorkloadApiBackoff;
  /** Clock, epoch seconds (default: system clock); stamps `receivedAt`. */
  readonly now?: () => number;
}

/** Options of {@link WorkloadApiX509Source.currentSvid}. */
export interface CurrentSvidOptions {
  /** Pick the first SVID with this hint instead of the default (first) one. */
  readonly hint?: string;
}

interface Settings {
  readonly onUpdate: ((update: X509SvidUpdate) => void) | undefined;
  readonly onError: ((error: WorkloadApiError) => void) | undefined;
  readonly initialTimeoutMs: number;
  readonly backoff: WorkloadApiBackoff;
  readonly now: () => number;
}

interface PendingConnect {
  readonly resolve: () => void;
  readonly reject: (error: WorkloadApiError) => void;
  readonly timer: NodeJS.Timeout;
  lastError: WorkloadApiError | undefined;
}

const MAX_DELAY_MS = 24 * 3600 * 1000;

function checkSettings(options: WorkloadApiX509SourceOptions): Settings {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('WorkloadApiX509Source.connect: options must be an object');
  const fn = <T>(value: T | undefined, name: string): T | undefined => {
    if (value !== undefined && typeof value !== 'function')
      throw new TypeError(`WorkloadApiX509Source.connect: ${name} must be a function`);
    return value;
  };
  const ms = (value: number, name: string): number => {
    if (!Number.isSafeInteger(value) || value < 1 || value > MAX_DELAY_MS) {
      throw new RangeError(
        `WorkloadApiX509Source.connect: ${name} must be an integer number of ms in 1..${MAX_DELAY_MS}`,
      );
    }
    return value;
  };
  const backoff = options.backoff ?? { initialMs: 1000, maxMs: 30_000 };
  const initialMs = ms(backoff.initialMs, 'backoff.initialMs');
  const maxMs = ms(backoff.maxMs, 'backoff.maxMs');
  if (initialMs > maxMs)
    throw new RangeError('WorkloadApiX509Source.connect: backoff.initialMs must not exceed backoff.maxMs');
  if (options.endpoint !== undefined && typeof options.endpoint !== 'string') {
    throw new TypeError('WorkloadApiX509Source.connect: endpoint must be a string');
  }
  return {
    onUpdate: fn(options.onUpdate, 'onUpdate'),
    onError: fn(options.onError, 'onError'),
    initialTimeoutMs: ms(options.initialTimeoutMs ?? 10_000, 'initialTimeoutMs'),
    backoff: Object.freeze({ initialMs, maxMs }),
    now: fn(options.now, 'now') ?? (() => Math.floor(Date.now() / 1000)),
  };
}

/**
 * A live X.509-SVID source backed by the SPIFFE Workload API (`FetchX509SVID` server stream).
 *
 * Every call carries the `workload.spiffe.io: true` metadata the specification requires. Each
 * response becomes an immutable {@link X509SvidUpdate}; a bad response is reported through
 * `onError` and ignored (the last good update stays current). When the stream fails or ends, the
 * source reconnects with exponential backoff and keeps serving the last good update meanwhile.
 * Nothing here verifies the SVID: pass `current()` through `verifyX509Svid` before trusting it.
 *
 * @example
 * const source = await WorkloadApiX509Source.connect({
 *   endpoint: 'unix:///run/spire/sockets/agent.sock',
 *   onError: (e) => log.warn({ reason: e.reason, ...e.details }, e.message),
 * });
 * const { spiffeId, chainDer, keyPkcs8Der } = source.currentSvid();
 * // ... later
 * source.close();
 */
export class WorkloadApiX509Source {
  readonly #client: grpc.Client;
  readonly #method: WorkloadApiDefinition['fetchX509Svid'];
  readonly #settings: Settings;
  #call: grpc.ClientReadableStream<unknown> | undefined;
  #current: X509SvidUpdate | undefined;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #pending: PendingConnect | undefined;

  private constructor(endpoint: WorkloadEndpoint, settings: Settings) {
    this.#settings = settings;
    this.#method = loadWorkloadApiDefinition().fetchX509Svid;
    const grpcJs = loadGrpc();
    this.#client = new grpcJs.Client(grpcTarget(endpoint), grpcJs.credentials.createInsecure(), {
      'grpc.max_receive_message_length': WORKLOAD_API_MAX_MESSAGE_BYTES,
      // The channel's own reconnect pacing follows ours, so a restarted agent is found promptly.
      'grpc.initial_reconnect_backoff_ms': settings.backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': settings.backoff.maxMs,
      // Never share a subchannel (and its backoff state) with another client in the process.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.enable_retries': 0,
    });
  }

  /**
   * Connect to the Workload API and wait for the first good X.509-SVID update.
   *
   * Transient failures (agent not up yet, no identity issued yet, a bad response) are retried with
   * backoff until `initialTimeoutMs`; a call the agent rejects outright fails at once.
   *
   * @param options - {@link WorkloadApiX509SourceOptions}.
   * @returns A connected source; `current()` is defined.
   * @throws {WorkloadApiError} `workload_api_no_endpoint`, `workload_api_bad_endpoint`,
   *   `workload_api_rejected` (at once); on timeout `workload_api_no_identity` or
   *   `workload_api_bad_response` when that was the last failure, else `workload_api_unavailable`.
   * @throws {TypeError | RangeError} for malformed options.
   * @example
   * const source = await WorkloadApiX509Source.connect({ initialTimeoutMs: 5000 });
   */
  static async connect(options: WorkloadApiX509SourceOptions = {}): Promise<WorkloadApiX509Source> {
    const settings = checkSettings(options);
    const text = options.endpoint ?? process.env['SPIFFE_ENDPOINT_SOCKET'];
    if (text === undefined || text === '') {
      throw new WorkloadApiError(
        'workload_api_no_endpoint',
        'Workload API endpoint not configured: pass endpoint or set SPIFFE_ENDPOINT_SOCKET',
      );
    }
    const source = new WorkloadApiX509Source(parseWorkloadEndpoint(text), settings);
    await source.#waitForFirstUpdate();
    return source;
  }

  /**
   * The latest good update (the first SVID in it is the default one).
   *
   * @returns The current update; it stays current while the stream reconnects.
   * @throws {WorkloadApiError} `workload_api_closed` after {@link close}.
   * @example
   * const { svids, federatedBundles } = source.current();
   */
  current(): X509SvidUpdate {
    if (this.#closed || this.#current === undefined) {
      throw new WorkloadApiError('workload_api_closed', 'Workload API source is closed');
    }
    return this.#current;
  }

  /**
   * The default SVID of the latest update (the first one), or the first whose hint matches.
   *
   * @param options - {@link CurrentSvidOptions}.
   * @returns The SVID (unverified).
   * @throws {WorkloadApiError} `workload_api_no_identity` when no SVID has the hint;
   *   `workload_api_closed` after {@link close}.
   * @example
   * const svid = source.currentSvid({ hint: 'internal' });
   */
  currentSvid(options: CurrentSvidOptions = {}): X509Svid {
    const { svids } = this.current();
    const svid = options.hint === undefined ? svids[0] : svids.find((s) => s.hint === options.hint);
    if (svid === undefined) {
      throw new WorkloadApiError(
        'workload_api_no_identity',
        'Workload API gave no SVID with the requested hint',
        {
          hint: printable(options.hint ?? '', 64),
        },
      );
    }
    return svid;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Cancel the stream, stop reconnecting, close the channel and drop the current update.
   * Idempotent.
   *
   * @example
   * process.on('SIGTERM', () => source.close());
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const call = this.#call;
    this.#call = undefined;
    call?.cancel();
    this.#client.close();
    this.#current = undefined;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      pending.reject(new WorkloadApiError('workload_api_closed', 'Workload API source is closed'));
    }
  }

  #waitForFirstUpdate(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timeoutMs = this.#settings.initialTimeoutMs;
      const timer = setTimeout(() => {
        const last = this.#pending?.lastError;
        const code =
          last !== undefined && last.reason !== 'workload_api_unavailable'
            ? last.reason
            : 'workload_api_unavailable';
        this.#failConnect(
          new WorkloadApiError(code, `Workload API gave no usable X.509-SVID within ${timeoutMs} ms`, {
            timeoutMs,
            ...(last !== undefined ? { lastError: last.reason, lastMessage: last.message } : {}),
          }),
        );
      }, timeoutMs);
      this.#pending = { resolve, reject, timer, lastError: undefined };
      this.#openStream();
    });
  }

  #failConnect(error: WorkloadApiError): void {
    const pending = this.#pending;
    this.#pending = undefined;
    this.close();
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
  }

  #openStream(): void {
    if (this.#closed) return;
    const metadata = new (loadGrpc().Metadata)();
    metadata.set(WORKLOAD_API_SECURITY_HEADER, 'true');
    const m = this.#method;
    const call = this.#client.makeServerStreamRequest<Record<string, never>, unknown>(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      {},
      metadata,
      {},
    );
    this.#call = call;
    call.on('data', (message: unknown) => {
      if (this.#call === call) this.#onMessage(message);
    });
    // 'status' fires exactly once per call, for failures and clean ends alike; 'error' carries the
    // same information, but must have a listener or the stream would throw it.
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => {
      if (this.#call !== call) return;
      this.#call = undefined;
      this.#onStreamClosed(
        status.code === 0 /* grpc OK */
          ? new WorkloadApiError('workload_api_unavailable', 'Workload API ended the X.509-SVID stream', {
              grpcStatus: 'OK',
            })
          : errorFromStatus(status.code, status.details),
      );
    });
  }

  #onMessage(message: unknown): void {
    let update: X509SvidUpdate;
    try {
      update = parseX509SvidResponse(message, this.#settings.now());
    } catch (e) {
      const error =
        e instanceof WorkloadApiError
          ? e
          : new WorkloadApiError('workload_api_bad_response', 'Workload API response could not be read');
      if (this.#pending !== undefined) this.#pending.lastError = error;
      this.#report(error);
      return;
    }
    this.#current = update;
    this.#failures = 0;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      pending.resolve();
    }
    try {
      this.#settings.onUpdate?.(update);
    } catch {
      // A throwing callback must not break the stream.
    }
  }

  #onStreamClosed(error: WorkloadApiError): void {
    if (this.#closed) return;
    if (this.#pending !== undefined) {
      // A rejected call will be rejected again: fail now instead of retrying until the timeout.
      if (error.reason === 'workload_api_rejected') {
        this.#failConnect(error);
        return;
      }
      this.#pending.lastError = error;
    }
    this.#report(error);
    const { initialMs, maxMs } = this.#settings.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#openStream();
    }, delay);
  }

  #report(error: WorkloadApiError): void {
    try {
      this.#settings.onError?.(error);
    } catch {
      // A throwing callback must not break the stream.
    }
  }
}

/** `@grpc/grpc-js`, an optional peer dependency, loaded on first use. */
function loadGrpc(): typeof grpc {
  return requireOptional<typeof grpc>('@grpc/grpc-js', 'the SPIFFE Workload API');
}
