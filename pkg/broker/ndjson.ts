import type { Duplex } from 'node:stream';
import { BROKER_IPC_MAX_MESSAGE_BYTES } from '../proof/broker-ipc-v1.js';

/** Why a line reader stopped. */
export type LineReaderError = 'message_too_large' | 'invalid_utf8';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Newline-delimited JSON framing for broker-ipc-v1: splits a byte stream into lines of at most
 * {@link BROKER_IPC_MAX_MESSAGE_BYTES} bytes (the newline excluded) without ever buffering more.
 * `onLine` gets each complete line as text; `onError` is called once when a line is too long or is
 * not UTF-8, after which the reader ignores further input.
 */
export function readLines(
  stream: Duplex,
  onLine: (line: string) => void,
  onError: (error: LineReaderError) => void,
  maxBytes = BROKER_IPC_MAX_MESSAGE_BYTES,
): void {
  let parts: Buffer[] = [];
  let size = 0;
  let failed = false;
  stream.on('data', (chunk: Buffer) => {
    if (failed) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      size += end - start;
      if (size > maxBytes) {
        failed = true;
        parts = [];
        onError('message_too_large');
        return;
      }
      if (end > start) parts.push(chunk.subarray(start, end));
      if (nl === -1) return;
      const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      parts = [];
      size = 0;
      start = nl + 1;
      let line: string;
      try {
        line = decoder.decode(bytes);
      } catch {
        failed = true;
        onError('invalid_utf8');
        return;
      }
      if (line.trim().length > 0) onLine(line);
    }
  });
}
