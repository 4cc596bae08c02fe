import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { Encoder } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import { encodeJournalRecord, readJournal, JOURNAL_HEADER } from '../../pkg/replay/journal-reader.js';

// encodeJournalRecord writes verifier entries (ASCII key, integer expiry below 2^32) by hand; the
// bytes must be exactly what the CBOR encoder writes, and read back to the same entry.

/** The reference encoding: the CBOR array [a, b] as the encoder writes it, made a 3-item record with its CRC. */
function reference(a: string | number, b: number): Buffer {
  const items = Buffer.from(new Encoder({ useRecords: false }).encode([a, b]) as Uint8Array);
  const record = Buffer.alloc(items.length + 5);
  items.copy(record);
  record[0] = 0x83;
  record[items.length] = 0x1a;
  record.writeUInt32BE(crc32(record.subarray(0, items.length)), items.length + 1);
  return record;
}

const expiries = fc.oneof(
  fc.constantFrom(
    0,
    1,
    23,
    24,
    255,
    256,
    65_535,
    65_536,
    1_767_225_900,
    2 ** 31,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 40,
    1.5,
  ),
  fc.integer({ min: 0, max: 2 ** 32 + 10 }),
);
const keys = fc.oneof(
  fc.stringMatching(/^[0-9a-f]{64}$/),
  fc.string({ minLength: 1, maxLength: 300, unit: 'binary-ascii' }),
  fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }),
  fc.constantFrom(
    'a',
    'x'.repeat(23),
    'x'.repeat(24),
    'x'.repeat(255),
    'x'.repeat(256),
    'é',
    'x'.repeat(1024),
  ),
);

describe('journal record encoding', () => {
  it('equals the CBOR encoder byte for byte (20,000 generated keys and expiries), and reads back', () => {
    const encoder = new Encoder({ useRecords: false });
    fc.assert(
      fc.property(keys, expiries, (key, expiresAt) => {
        const mine = encodeJournalRecord(encoder, key, expiresAt);
        expect(Buffer.from(mine).equals(reference(key, expiresAt))).toBe(true);
        const back = readJournal('test.journal', Buffer.concat([JOURNAL_HEADER, mine]));
        expect(back.damage).toBeUndefined();
        expect(back.entries.get(key)).toBe(expiresAt);
      }),
      { numRuns: 20_000, seed: 1818 },
    );
  });
});
