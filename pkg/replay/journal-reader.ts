import { crc32 } from 'node:zlib';
import { Decoder, Encoder } from 'cbor-x';
import { MAX_REPLAY_KEY_BYTES } from '../authcore/replay-store.js';

/** Longest key accepted, in UTF-8 bytes (verifier keys are 64 hex characters). */
const MAX_KEY_BYTES = MAX_REPLAY_KEY_BYTES;

/*
 * Journal format 2 (written since issue 18):
 *
 *   header   the CBOR text string "trustplane-replay-journal/2" (28 bytes, always at offset 0)
 *   record   0x83 <a> <b> 0x1a <crc32, 4 bytes big-endian>
 *              entry: a = text key (1..1024 bytes), b = number expiresAt
 *              meta:  a = uint kind (1 = horizon, 2 = fail-closed until), b = number
 *            crc32 = CRC-32 (IEEE, zlib) of every byte of the record before the crc item
 *
 * Format 1 (no header; records 0x82 <text key> <number>, the key '' holding the horizon) is still
 * read; the first compaction rewrites it as format 2. Earlier versions refuse a format-2 journal
 * ("is corrupt at byte 0"), so a downgrade needs the journal moved aside.
 */

/** The header of a format-2 journal. */
export const JOURNAL_HEADER: Uint8Array = new Encoder().encode('trustplane-replay-journal/2') as Uint8Array;
/** Meta record kinds. */
export const META_HORIZON = 1;
export const META_FAIL_CLOSED_UNTIL = 2;
const CRC_ITEM_BYTES = 5;

/** What a journal holds once read. */
export interface JournalContents {
  /** 1 for a journal written before checksums, 2 otherwise (an empty file reads as 2). */
  readonly version: 1 | 2;
  /** Key → its latest expiry. */
  readonly entries: Map<string, number>;
  /** The persisted horizon (keys expiring at or before it may have been dropped). */
  readonly horizon: number | undefined;
  /** The persisted end of a fail-closed window. */
  readonly failClosedUntil: number | undefined;
  /**
   * Damaged bytes skipped (format 2 only: a record whose checksum does not match, bytes that are no
   * record, a torn last record, a zero-filled tail); undefined when there were none. Whatever they
   * held is lost.
   */
  readonly damage:
    { readonly regions: number; readonly bytes: number; readonly firstOffset: number } | undefined;
}

/**
 * Read a journal. Format 2: every byte must belong to a record whose checksum matches; anything else
 * is skipped up to the next such record and reported in `damage` (the caller fails closed); so is a
 * file cut inside its header or zero-filled from its first byte. An empty `data` reads as an empty
 * journal: the caller tells a missing file from an emptied one. Format 1:
 * a truncated last record or a zero-filled tail is dropped; damage anywhere else is refused, as
 * before (there is no checksum to resynchronize on).
 * @throws Error naming the file and byte offset for a format-1 journal corrupt before its tail, or a
 *   record kind this version does not know (a newer format)
 */
export function readJournal(path: string, data: Uint8Array): JournalContents {
  if (data.length === 0 || startsWithHeader(data)) return readVersion2(path, data, JOURNAL_HEADER.length);
  // A format-2 journal cut inside its header, or zero-filled from its first byte (a machine crash
  // before a new journal's data reached the disk): every byte is damage. Format 1 wrote neither (its
  // first byte was always a record's 0x82).
  if (isHeaderPrefix(data) || data.every((b) => b === 0)) return readVersion2(path, data, 0);
  try {
    return readVersion1(path, data);
  } catch (e) {
    // A format-2 journal whose header was damaged: read it as such when checksummed records follow.
    const salvaged = readVersion2(path, data, 0);
    if (salvaged.entries.size > 0 || salvaged.horizon !== undefined) return salvaged;
    throw e;
  }
}

/** CBOR major-type header (`major` 3 = text string, 0 = unsigned integer) for `value` < 2^32, minimal. */
function cborHead(out: Buffer, at: number, major: number, value: number): number {
  const m = major << 5;
  if (value < 24) {
    out[at] = m | value;
    return at + 1;
  }
  if (value < 0x100) {
    out[at] = m | 24;
    out[at + 1] = value;
    return at + 2;
  }
  if (value < 0x10000) {
    out[at] = m | 25;
    out.writeUInt16BE(value, at + 1);
    return at + 3;
  }
  out[at] = m | 26;
  out.writeUInt32BE(value, at + 1);
  return at + 5;
}

/**
 * One format-2 record: `0x83 <a> <b> <crc>` with `a` a text key or a meta kind. An entry of an
 * ASCII key and an integer expiry below 2^32 (every verifier key) is encoded here directly, the
 * same bytes as the CBOR encoder writes (a test checks it); anything else goes through `encoder`.
 */
export function encodeJournalRecord(encoder: Encoder, a: string | number, b: number): Buffer {
  if (
    typeof a === 'string' &&
    a.length <= MAX_KEY_BYTES &&
    Number.isInteger(b) &&
    b >= 0 &&
    b <= 0xffffffff &&
    ASCII.test(a)
  ) {
    const record = Buffer.allocUnsafe(1 + 3 + a.length + 5 + CRC_ITEM_BYTES);
    record[0] = 0x83;
    let at = cborHead(record, 1, 3, a.length);
    at += record.write(a, at, 'latin1');
    at = cborHead(record, at, 0, b);
    record[at] = 0x1a;
    record.writeUInt32BE(crc32(record.subarray(0, at)), at + 1);
    return record.subarray(0, at + CRC_ITEM_BYTES);
  }
  return encodeWithEncoder(encoder, a, b);
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

function encodeWithEncoder(encoder: Encoder, a: string | number, b: number): Buffer {
  // The encoder reuses its buffer: copy the items out.
  const items = Buffer.from(encoder.encode([a, b]) as Uint8Array);
  if (items[0] !== 0x82) throw new Error('unexpected CBOR encoding of a journal record');
  const record = Buffer.alloc(items.length + CRC_ITEM_BYTES);
  items.copy(record);
  record[0] = 0x83;
  record[items.length] = 0x1a;
  record.writeUInt32BE(crc32(record.subarray(0, items.length)), items.length + 1);
  return record;
}

function isHeaderPrefix(data: Uint8Array): boolean {
  return data.length < JOURNAL_HEADER.length && data.every((b, i) => b === JOURNAL_HEADER[i]);
}

function startsWithHeader(data: Uint8Array): boolean {
  return data.length >= JOURNAL_HEADER.length && JOURNAL_HEADER.every((b, i) => b === data[i]);
}

/** A parsed record, or `bad` (not a record, cut short by the end of the data, or a checksum mismatch). */
type Parsed =
  | { readonly status: 'ok'; readonly end: number; readonly a: string | number; readonly b: number }
  | { readonly status: 'bad' };

const BAD: Parsed = { status: 'bad' };
const utf8 = new TextDecoder('utf-8');

/** Parse one format-2 record at `pos` and verify its checksum. */
function parseRecord(data: Uint8Array, pos: number): Parsed {
  if (data[pos] !== 0x83) return BAD;
  let p = pos + 1;
  const first = readHead(data, p);
  if (first === undefined) return BAD;
  let a: string | number;
  if (first.major === 3) {
    if (first.value < 1 || first.value > MAX_KEY_BYTES) return BAD;
    if (first.next + first.value > data.length) return BAD;
    a = utf8.decode(data.subarray(first.next, first.next + first.value));
    p = first.next + first.value;
  } else if (first.major === 0 && first.value <= 255) {
    a = first.value;
    p = first.next;
  } else {
    return BAD;
  }
  const number = readNumber(data, p);
  if (number === undefined) return BAD;
  p = number.next;
  if (p + CRC_ITEM_BYTES > data.length) return BAD;
  if (data[p] !== 0x1a) return BAD;
  const stored = ((data[p + 1]! << 24) | (data[p + 2]! << 16) | (data[p + 3]! << 8) | data[p + 4]!) >>> 0;
  if (crc32(data.subarray(pos, p)) !== stored) return BAD;
  return { status: 'ok', end: p + CRC_ITEM_BYTES, a, b: number.value };
}

function readVersion2(path: string, data: Uint8Array, start: number): JournalContents {
  const entries = new Map<string, number>();
  let horizon: number | undefined;
  let failClosedUntil: number | undefined;
  let regions = 0;
  let damagedBytes = 0;
  let firstOffset = -1;
  let pos = start;
  while (pos < data.length) {
    const parsed = parseRecord(data, pos);
    if (parsed.status === 'ok') {
      const { a, b } = parsed;
      if (typeof a === 'string') {
        const previous = entries.get(a);
        if (previous === undefined || b > previous) entries.set(a, b);
      } else if (a === META_HORIZON) {
        horizon = Math.max(horizon ?? b, b);
      } else if (a === META_FAIL_CLOSED_UNTIL) {
        failClosedUntil = Math.max(failClosedUntil ?? b, b);
      } else {
        throw new Error(
          `replay journal ${path} has a record of kind ${a} at byte ${pos}, unknown to this version ` +
            '(written by a newer one?); upgrade, or move the journal aside (which accepts replays of ' +
            'jtis consumed before the restart)',
        );
      }
      pos = parsed.end;
      continue;
    }
    // Damage: skip to the next record whose checksum matches (or the end). A torn last append or a
    // zero-filled tail counts too: it cannot be told from a damaged length byte, and a machine crash
    // that left one may have lost acknowledged records before it (fsync interval or never).
    const next = nextRecord(data, pos + 1);
    regions++;
    damagedBytes += next - pos;
    if (firstOffset < 0) firstOffset = pos;
    pos = next;
  }
  return {
    version: 2,
    entries,
    horizon,
    failClosedUntil,
    damage: regions === 0 ? undefined : { regions, bytes: damagedBytes, firstOffset },
  };
}

/** The offset of the next complete, checksummed record at or after `from` (data.length if none). */
function nextRecord(data: Uint8Array, from: number): number {
  for (let p = data.indexOf(0x83, from); p >= 0; p = data.indexOf(0x83, p + 1)) {
    if (parseRecord(data, p).status === 'ok') return p;
  }
  return data.length;
}

/** A CBOR number (int or float) at `pos`. */
function readNumber(
  data: Uint8Array,
  pos: number,
): { readonly value: number; readonly next: number } | undefined {
  const first = data[pos];
  if (first === undefined) return undefined;
  const major = first >> 5;
  if ((major === 0 || major === 1) && (first & 0x1f) <= 27) {
    const head = readHead(data, pos);
    if (head === undefined) return undefined;
    return { value: major === 0 ? head.value : -1 - head.value, next: head.next };
  }
  const size = first === 0xf9 ? 2 : first === 0xfa ? 4 : first === 0xfb ? 8 : 0;
  if (size === 0) return undefined;
  if (pos + 1 + size > data.length) return undefined;
  const view = new DataView(data.buffer, data.byteOffset + pos + 1, size);
  const value =
    size === 2 ? halfToNumber(view.getUint16(0)) : size === 4 ? view.getFloat32(0) : view.getFloat64(0);
  return Number.isFinite(value) ? { value, next: pos + 1 + size } : undefined;
}

function halfToNumber(half: number): number {
  const exponent = (half >> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  const sign = half & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * 2 ** -14 * (mantissa / 1024);
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * 2 ** (exponent - 15) * (1 + mantissa / 1024);
}

/**
 * Format 1: check the CBOR sequence structurally before decoding it: every item must be exactly
 * `[text (≤ MAX_KEY_BYTES), number]`. This is what tells a crash-truncated last record (tolerated)
 * from corruption (refused), and it keeps CBOR tags (cbor-x would act on some of them) away from
 * the decoder.
 * @returns the offset just past the last complete record
 */
function scanVersion1(path: string, data: Uint8Array): number {
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

function readVersion1(path: string, data: Uint8Array): JournalContents {
  const end = scanVersion1(path, data);
  const entries = new Map<string, number>();
  let horizon: number | undefined;
  if (end > 0) {
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
      if (key === '') {
        horizon = Math.max(horizon ?? expiresAt, expiresAt);
        return;
      }
      const previous = entries.get(key);
      if (previous === undefined || expiresAt > previous) entries.set(key, expiresAt);
    });
  }
  return { version: 1, entries, horizon, failClosedUntil: undefined, damage: undefined };
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
