import { GENESIS_HASH, HashChain, type ChainHead } from './chain.js';
import type { AuditEvent } from './event.js';
import type { AuditSink } from './audit-sink.js';
import { LedgerError } from './ledger-error.js';
import { asError } from './ledger-file-io.js';
import { StreamAuditSink } from './stream-sink.js';

/** Options for {@link StdoutLedgerSink}. */
export interface StdoutLedgerSinkOptions {
  /**
   * The chain id. A stream cannot be read back to resume a chain, so every start begins a new
   * chain (at seq 1, or after `from`): use an id unique to this process life, e.g.
   * `${instance}-${startTime}`, or a collector will see one chain restart.
   */
  readonly chainId: string;
  /** Where lines go (default `process.stdout`). */
  readonly stream?: NodeJS.WritableStream;
  /** Continue a known chain instead of starting at genesis. */
  readonly from?: ChainHead;
  /**
   * Called when an event cannot be chained ({@link LedgerError} `ledger_event_dropped`) or the stream
   * fails.
   */
  readonly onError?: (error: Error) => void;
}

/**
 * Chained ledger records as JSON lines on a stream (stdout by default), for a log collector. It
 * has no `writeDurable`: a stream cannot be made durable, so `audit: "required"` routes need the
 * file or PostgreSQL ledger.
 * @example
 * const sink = new StdoutLedgerSink({ chainId: `adapter-1-${Date.now()}` })
 * sink.write(event)
 */
export class StdoutLedgerSink implements AuditSink {
  readonly #inner: StreamAuditSink;
  #chain: HashChain;
  readonly #onError: ((error: Error) => void) | undefined;

  /**
   * @param options `chainId` (required), `stream`, `from`, `onError`
   * @throws TypeError for a missing chain id or a `from` of another chain
   */
  constructor(options: StdoutLedgerSinkOptions) {
    if (typeof options?.chainId !== 'string' || options.chainId === '' || options.chainId.length > 256) {
      throw new TypeError('chainId must be a string of 1 to 256 characters');
    }
    if (options.from !== undefined && options.from.chainId !== options.chainId) {
      throw new TypeError('from must be a head of the same chain');
    }
    this.#onError = options.onError;
    this.#chain = new HashChain(options.from ?? { chainId: options.chainId, seq: 0, hash: GENESIS_HASH });
    this.#inner = new StreamAuditSink(options.stream, options.onError ? { onError: options.onError } : {});
  }

  /** The chain head after the last record written. */
  get head(): ChainHead {
    return this.#chain.head;
  }

  /**
   * Chain `event` and write it as one line. Never throws; failures go to `onError`.
   * @param event the audit event (chain fields in it are replaced)
   * @example
   * sink.write(event)
   */
  write(event: AuditEvent): void {
    let line: AuditEvent;
    const head = this.#chain.head;
    try {
      line = this.#chain.append(event);
    } catch (e) {
      this.#chain = new HashChain(head);
      const error = asError(e);
      this.#onError?.(
        Object.assign(new LedgerError('ledger_event_dropped', error.message, { sink: 'stdout' }), {
          cause: error,
        }),
      );
      return;
    }
    this.#inner.write(line);
  }

  /** Wait until everything written so far is handed to the stream. */
  flush(): Promise<void> {
    return this.#inner.flush();
  }

  /** Flush (the stream itself is left open). */
  close(): Promise<void> {
    return this.#inner.close();
  }
}
