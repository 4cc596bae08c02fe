import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { AuditEvent } from './event.js';
import type { AuditSink } from './audit-sink.js';

/** Options for {@link StreamAuditSink}. */
export interface StreamAuditSinkOptions {
  /** Called when a write fails (the sink keeps going; the caller counts the failure). */
  readonly onError?: (error: Error) => void;
}

/**
 * Writes one JSON line per event to a Node stream (stdout by default). Writes are buffered by the
 * stream; `flush` waits until everything handed over so far is written.
 */
export class StreamAuditSink implements AuditSink {
  readonly #stream: NodeJS.WritableStream;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #owned: boolean;

  /**
   * @param stream where lines go (default `process.stdout`)
   * @example
   * const sink = new StreamAuditSink()
   */
  constructor(stream?: NodeJS.WritableStream, options: StreamAuditSinkOptions = {}, owned = false) {
    this.#stream = stream ?? process.stdout;
    this.#onError = options.onError;
    this.#owned = owned;
    this.#stream.on('error', (e: Error) => this.#onError?.(e));
  }

  write(event: AuditEvent): void {
    this.#stream.write(`${JSON.stringify(event)}\n`);
  }

  async flush(): Promise<void> {
    await new Promise<void>((resolve) => this.#stream.write('', () => resolve()));
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.#owned) {
      await new Promise<void>((resolve) => (this.#stream as WriteStream).end(() => resolve()));
    }
  }
}

/**
 * Appends one JSON line per event to a file (created with mode 0600 if missing, parent directory
 * created). The file is opened in append mode, so several restarts keep one growing log.
 * @param path the audit file
 * @example
 * const sink = openFileAuditSink('/var/log/trustplane/audit.jsonl')
 */
export function openFileAuditSink(path: string, options: StreamAuditSinkOptions = {}): StreamAuditSink {
  mkdirSync(dirname(path), { recursive: true });
  const stream = createWriteStream(path, { flags: 'a', mode: 0o600 });
  return new StreamAuditSink(stream, options, true);
}
