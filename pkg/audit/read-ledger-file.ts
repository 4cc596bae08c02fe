import { createReadStream } from 'node:fs';
import { UnreadableRecord } from './unreadable-record.js';

/** Longest ledger line, in bytes without its newline: longer records are refused, longer lines unreadable. */
export const MAX_LEDGER_LINE_BYTES = 1024 * 1024;

/** Bytes read at a time. */
const READ_CHUNK = 64 * 1024;

/** Options for {@link readLedgerFile}. */
export interface ReadLedgerFileOptions {
  /** Longest line read, in bytes (default {@link MAX_LEDGER_LINE_BYTES}). */
  readonly maxLineBytes?: number;
}

/**
 * Stream a ledger file, one value per line, in bounded memory: the parsed JSON of each line, or an
 * {@link UnreadableRecord} for a line that is empty, longer than the bound, not UTF-8, not JSON,
 * or not in the form the ledger writes it (`JSON.stringify`: so duplicate members, which other
 * JSON readers might resolve differently, are caught). Feed it to `verifyLedgerStream` (positions
 * are line numbers) or `queryRecords`.
 * @param path the ledger file
 * @param options `maxLineBytes`
 * @returns the values, in file order
 * @throws Error (while iterating) when the file cannot be read, e.g. ENOENT; RangeError for a bad
 *   `maxLineBytes`
 * @example
 * const result = await verifyLedgerStream(readLedgerFile('/var/log/trustplane/ledger.jsonl'))
 */
export async function* readLedgerFile(
  path: string,
  options: ReadLedgerFileOptions = {},
): AsyncGenerator<unknown> {
  const max = options.maxLineBytes ?? MAX_LEDGER_LINE_BYTES;
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxLineBytes must be a positive integer');
  const stream = createReadStream(path, { highWaterMark: READ_CHUNK });
  let parts: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  const take = (): unknown => {
    const value = tooLong ? new UnreadableRecord(`line longer than ${max} bytes`) : parseLine(parts, size);
    parts = [];
    size = 0;
    tooLong = false;
    return value;
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (;;) {
        const newline = chunk.indexOf(0x0a, start);
        const end = newline === -1 ? chunk.length : newline;
        if (!tooLong) {
          if (size + end - start > max) {
            tooLong = true;
            parts = [];
            size = 0;
          } else if (end > start) {
            parts.push(chunk.subarray(start, end));
            size += end - start;
          }
        }
        if (newline === -1) break;
        yield take();
        start = newline + 1;
      }
    }
    // A last line without its newline (a torn write, or a file being written): read it as it is.
    if (size > 0 || tooLong) yield take();
  } finally {
    stream.destroy();
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function parseLine(parts: readonly Buffer[], size: number): unknown {
  if (size === 0) return new UnreadableRecord('empty line');
  let text: string;
  try {
    text = UTF8.decode(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size));
  } catch {
    return new UnreadableRecord('line is not UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return new UnreadableRecord('line is not JSON');
  }
  if (JSON.stringify(value) !== text) {
    return new UnreadableRecord('line is not in ledger form (duplicate members, or reformatted)');
  }
  return value;
}
