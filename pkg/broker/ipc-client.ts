import { createConnection, type Socket } from 'node:net';
import { TrustplaneError } from '../authcore/errors.js';
import {
  BROKER_IPC_MAX_MESSAGE_BYTES,
  BROKER_IPC_TIMEOUT_MS,
  brokerIpcResponseSchema,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
} from '../proof/broker-ipc-v1.js';
import { readLines } from './ndjson.js';

/** Stable codes of {@link BrokerIpcError}: registry codes of the `broker_ipc` layer. */
export type BrokerIpcErrorCode =
  /** The broker socket (or TLS endpoint) cannot be reached. */
  | 'broker_unreachable'
  /** The broker did not answer within the timeout. */
  | 'broker_timeout'
  /** The broker answered out of protocol, or closed the connection without an answer. */
  | 'broker_protocol_error'
  /** The request exceeds the broker-ipc-v1 message bound (1 MiB). */
  | 'broker_request_too_large';

/**
 * A broker-ipc-v1 transport failure (the broker did not answer with a valid response). `reason` is
 * the registry code (layer `broker_ipc`); `isRetryableReason(e.reason)` tells whether a later
 * retry may succeed. A broker that answered with a deny is not this error: the deny is the answer.
 * @example
 * try { await broker.issue(request) } catch (e) {
 *   if (e instanceof BrokerIpcError && isRetryableReason(e.reason)) scheduleRetry()
 * }
 */
export class BrokerIpcError extends TrustplaneError {
  /** Stable registry code (layer `broker_ipc`). */
  declare readonly reason: BrokerIpcErrorCode;

  /**
   * @param reason the registry code
   * @param message what failed (never the request or response content)
   */
  constructor(reason: BrokerIpcErrorCode, message: string) {
    super(reason, message);
  }
}

/** Options for {@link BrokerIpcClient}. */
export interface BrokerIpcClientOptions {
  /** The broker's Unix socket. */
  readonly socketPath: string;
  /** Per-request timeout, ms (default 30 s). */
  readonly timeoutMs?: number;
  /** A connection factory (the TLS network mode passes one); default: the Unix socket. */
  readonly connect?: () => Socket;
}

/**
 * Client for broker-ipc-v1: one connection per request (the broker is local; a connection costs
 * microseconds and there is no shared state to corrupt). Validates the response shape and that
 * `request_id` is echoed. Usable as the `broker` of `brokerPassports()` in `trustplane/client`.
 * @example
 * const broker = new BrokerIpcClient({ socketPath: '/run/trustplane/broker.sock' })
 * const response = await broker.issue(request)
 */
export class BrokerIpcClient {
  readonly #o: BrokerIpcClientOptions;

  constructor(options: BrokerIpcClientOptions) {
    this.#o = options;
  }

  /**
   * Send one request and wait for its response.
   * @throws BrokerIpcError `broker_unreachable`, `broker_timeout`, `broker_protocol_error` (answered out
   *   of protocol) or `broker_request_too_large`
   */
  async issue(request: BrokerIpcRequest): Promise<BrokerIpcResponse> {
    const line = `${JSON.stringify(request)}\n`;
    if (Buffer.byteLength(line) - 1 > BROKER_IPC_MAX_MESSAGE_BYTES) {
      throw new BrokerIpcError('broker_request_too_large', 'the request exceeds 1 MiB');
    }
    const timeoutMs = this.#o.timeoutMs ?? BROKER_IPC_TIMEOUT_MS;
    const socket = this.#o.connect ? this.#o.connect() : createConnection(this.#o.socketPath);
    return new Promise<BrokerIpcResponse>((resolve, reject) => {
      let settled = false;
      const finish = (error: BrokerIpcError | undefined, response?: BrokerIpcResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (error) reject(error);
        else resolve(response!);
      };
      const timer = setTimeout(
        () =>
          finish(new BrokerIpcError('broker_timeout', `the broker did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      socket.once('error', (error: NodeJS.ErrnoException) =>
        finish(
          new BrokerIpcError(
            'broker_unreachable',
            `cannot reach the broker (${error.code ?? error.message})`,
          ),
        ),
      );
      socket.once('close', () =>
        finish(
          new BrokerIpcError('broker_protocol_error', 'the broker closed the connection without an answer'),
        ),
      );
      readLines(
        socket,
        (text) => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            finish(
              new BrokerIpcError(
                'broker_protocol_error',
                'the broker answered with something that is not JSON',
              ),
            );
            return;
          }
          const parsed = brokerIpcResponseSchema.safeParse(json);
          if (!parsed.success) {
            finish(
              new BrokerIpcError('broker_protocol_error', 'the broker response does not match broker-ipc-v1'),
            );
            return;
          }
          if (parsed.data.request_id !== request.request_id && parsed.data.request_id !== 'unknown') {
            finish(new BrokerIpcError('broker_protocol_error', 'the broker response has another request_id'));
            return;
          }
          finish(undefined, parsed.data);
        },
        () =>
          finish(
            new BrokerIpcError('broker_protocol_error', 'the broker response exceeds 1 MiB or is not UTF-8'),
          ),
      );
      // Writes before the (TLS) connection is up are buffered by the socket.
      socket.write(line);
    });
  }
}
