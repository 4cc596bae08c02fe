import type { FileHandle } from 'node:fs/promises';
import { ledgerRecordHash, type ChainHead } from './chain.js';
import { LedgerError } from './ledger-error.js';
import { readExactly } from './ledger-file-io.js';
import { MAX_LEDGER_LINE_BYTES } from './read-ledger-file.js';

/** Bytes read at a time when scanning the tail backwards. */
const TAIL_CHUNK = 64 * 1024;

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** What {@link readTail} found at the end of a ledger file. */
export interface Tail {
  /** Bytes to keep: the file up to and including the last newline. */
  readonly keep: number;
  /** The last complete line (without its newline), if any. */
  readonly last: string | undefined;
}

/** Find the last complete line and any torn bytes after it, reading backwards from the end only. */
export async function readTail(handle: FileHandle, size: number, path: string): Promise<Tail> {
  if (size === 0) return { keep: 0, last: undefined };
  const newline = await lastNewline(handle, size, MAX_LEDGER_LINE_BYTES + 1);
  if (newline === undefined) {
    throw new LedgerError(
      'audit_chain_broken',
      `audit ledger ${path} ends with more than ${MAX_LEDGER_LINE_BYTES} bytes without a newline; ` +
        'it is not a ledger file, or is corrupt: check it with trustplane audit verify and move it aside',
    );
  }
  const keep = newline + 1;
  if (keep === 0) return { keep, last: undefined };
  const previous = await lastNewline(handle, newline, MAX_LEDGER_LINE_BYTES + 1);
  if (previous === undefined) {
    throw new LedgerError(
      'audit_chain_broken',
      `audit ledger ${path} ends with a line longer than ${MAX_LEDGER_LINE_BYTES} bytes; ` +
        'check it with trustplane audit verify and move it aside',
    );
  }
  const start = previous + 1;
  const line = Buffer.alloc(newline - start);
  await readExactly(handle, line, start);
  let text: string;
  try {
    text = UTF8.decode(line);
  } catch {
    text = '';
  }
  return { keep, last: text };
}

/**
 * Offset of the last newline before `before`, looking back at most `limit` bytes: -1 when the
 * file start is reached without one, undefined when the limit is.
 */
async function lastNewline(handle: FileHandle, before: number, limit: number): Promise<number | undefined> {
  const floor = Math.max(0, before - limit);
  let end = before;
  while (end > floor) {
    const length = Math.min(TAIL_CHUNK, end - floor);
    const chunk = Buffer.alloc(length);
    await readExactly(handle, chunk, end - length);
    const at = chunk.lastIndexOf(0x0a);
    if (at !== -1) return end - length + at;
    end -= length;
  }
  return floor === 0 ? -1 : undefined;
}

/** The head the last record leaves, after checking it is a sound record of `chainId`. */
export function tailHead(line: string, path: string, chainId: string): ChainHead {
  const corrupt = (why: string) =>
    new LedgerError(
      'audit_chain_broken',
      `audit ledger ${path} ends with a corrupt record (${why}); run trustplane audit verify --file ${path}, ` +
        'then restore the file or move it aside (a new chain is never started in a file that holds one)',
    );
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw corrupt('not JSON');
  }
  if (JSON.stringify(value) !== line) throw corrupt('not in ledger form');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw corrupt('not a JSON object');
  const r = value as Record<string, unknown>;
  if (
    typeof r.chain_id !== 'string' ||
    typeof r.seq !== 'number' ||
    !Number.isSafeInteger(r.seq) ||
    r.seq < 1 ||
    typeof r.record_hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(r.record_hash) ||
    typeof r.prev_hash !== 'string'
  ) {
    throw corrupt('missing or invalid chain_id, seq, prev_hash or record_hash');
  }
  let hash: string;
  try {
    hash = ledgerRecordHash(r);
  } catch {
    throw corrupt('not canonicalizable JSON');
  }
  if (hash !== r.record_hash) throw corrupt(`record seq ${r.seq} was modified (its hash does not match)`);
  if (r.chain_id !== chainId) {
    throw new LedgerError(
      'ledger_chain_mismatch',
      `audit ledger ${path} holds chain ${JSON.stringify(r.chain_id)}, not ${JSON.stringify(chainId)}; ` +
        'use the same chain id, or another file for a new chain',
    );
  }
  return { chainId, seq: r.seq, hash };
}
