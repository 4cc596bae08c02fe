import { Decoder } from 'cbor-x';
import { MAX_REPLAY_KEY_BYTES } from '../authcore/replay-store.js';

/** Longest key accepted, in UTF-8 bytes (verifier keys are 64 hex characters). */
const MAX_KEY_BYTES = MAX_REPLAY_KEY_BYTES;

/**
 * Check the CBOR sequence structurally before decoding it: every item must be exactly
 * `[text (≤ MAX_KEY_BYTES), number]`. This is what tells a crash-truncated last record (tolerated)
 * from corruption (refused), and it keeps CBOR tags (cbor-x would act on some of them) away from
 * the decoder.
 * @returns the offset just past the last complete record
 */
function scanJournal(path: string, data: Uint8Array): number {
  let pos = 0;
  while (pos < data.length) {
    const start = pos;
    const corrupt = (why: string): Error =>
      new Error(
        `replay journal ${path} is corrupt at byte ${start} (${why}); restore it or move it aside ` +
          '(starting without it accepts replays of jtis consumed before the restart)',
      );
    if (data[pos] !== 0x82) {
      if (data.subarray(pos).every((b) => b === 0)) return start; // zero-filled tail after a machine crash
      throw corrupt('not a [key, expiresAt] record');
    }
    pos++;
    const keyHead = readHead(data, pos);
    if (keyHead === undefined) return start; // truncated
    if (keyHead.major !== 3 || keyHead.value > MAX_KEY_BYTES) throw corrupt('bad key');
    pos = keyHead.next + keyHead.value;
    if (pos >= data.length) return start; // truncated inside the key, or before expiresAt
    const first = data[pos] ?? 0;
    const major = first >> 5;
    if ((major === 0 || major === 1) && (first & 0x1f) <= 27) {
      const head = readHead(data, pos);
      if (head === undefined) return start;
      pos = head.next;
    } else if (first === 0xf9 || first === 0xfa || first === 0xfb) {
      pos += first === 0xf9 ? 3 : first === 0xfa ? 5 : 9;
      if (pos > data.length) return start;
    } else {
      throw corrupt('bad expiresAt');
    }
  }
  return pos;
}

interface Head {
  readonly major: number;
  readonly value: number;
  readonly next: number;
}

/** A CBOR item head; undefined when it runs past the end of the data. Throws on indefinite lengths. */
function readHead(data: Uint8Array, pos: number): Head | undefined {
  const first = data[pos];
  if (first === undefined) return undefined;
  const major = first >> 5;
  const info = first & 0x1f;
  if (info < 24) return { major, value: info, next: pos + 1 };
  if (info > 27) return { major: -1, value: 0, next: pos + 1 };
  const size = 1 << (info - 24);
  if (pos + 1 + size > data.length) return undefined;
  let value = 0;
  for (let i = 1; i <= size; i++) value = value * 256 + (data[pos + i] ?? 0);
  return { major, value, next: pos + 1 + size };
}

/** Decode the journal into key → latest expiry. Throws a clear Error on corruption. */
export function readJournal(path: string, data: Uint8Array): Map<string, number> {
  const end = scanJournal(path, data);
  const latest = new Map<string, number>();
  if (end === 0) return latest;
  const decoder = new Decoder({ useRecords: false });
  decoder.decodeMultiple(data.subarray(0, end), (value: unknown) => {
    if (
      !Array.isArray(value) ||
      value.length !== 2 ||
      typeof value[0] !== 'string' ||
      typeof value[1] !== 'number' ||
      !Number.isFinite(value[1])
    ) {
      throw new Error(`replay journal ${path} is corrupt (a record is not [key, expiresAt])`);
    }
    const [key, expiresAt] = value as [string, number];
    const previous = latest.get(key);
    if (previous === undefined || expiresAt > previous) latest.set(key, expiresAt);
  });
  return latest;
}
