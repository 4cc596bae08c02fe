import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  GENESIS_HASH,
  HashChain,
  LEDGER_RECORD_PREFIX,
  ledgerRecordHash,
  verifyChain,
  type ChainHead,
  type LedgerEntry,
  type LedgerRecord,
} from '../../pkg/audit/chain.js';
import { LEDGER_GAP_SCHEMA, chainGapOf, ledgerGapEvent } from '../../pkg/audit/ledger-gap.js';
import { AUDIT_EVENT_SCHEMA, auditEventSchema, type AuditEvent } from '../../pkg/audit/event.js';
import { UnreadableRecord } from '../../pkg/audit/unreadable-record.js';
import { verifyLedgerStream } from '../../pkg/audit/verify-ledger-stream.js';
import { canonicalizeJson } from '../../pkg/internal/jcs.js';
import { sha256HexSync } from '../../pkg/internal/sha256.js';

const T0 = Date.UTC(2026, 0, 31, 12, 0, 0);

/** A valid audit event; `i` varies every member so that edits of any member are meaningful. */
function sampleEvent(i: number, overrides: Partial<AuditEvent> = {}): AuditEvent {
  const deny = i % 3 === 2;
  return auditEventSchema.parse({
    schema: AUDIT_EVENT_SCHEMA,
    event_id: `evt-${i}`,
    time: new Date(T0 + i * 1000).toISOString(),
    event_type: 'authorization_decision',
    component: 'adapter',
    instance: 'adapter-1',
    decision: deny ? 'deny' : 'allow',
    status: deny ? 401 : 200,
    ...(deny ? { reason: 'jti_replay', stage: 'replay' } : {}),
    method: 'POST',
    path: `/v1/orders/${i}`,
    route_id: i % 2 === 0 ? 'orders.create' : 'orders.read',
    iss: 'https://issuer.example',
    sub: `service:client-${i % 4}`,
    jti: `jti-${i}`,
    latency_us: 100 + i,
    ...overrides,
  });
}

function chainOf(count: number, chainId = 'adapter-1', from?: ChainHead): LedgerRecord[] {
  const chain = new HashChain(from ?? { chainId, seq: 0, hash: GENESIS_HASH });
  return Array.from({ length: count }, (_, i) => chain.append(sampleEvent((from?.seq ?? 0) + i + 1)));
}

/** A replacement value of the same JSON type (so only the hash can tell). */
function altered(value: unknown): unknown {
  if (typeof value === 'string') return /^[0-9a-f]{64}$/.test(value) ? `${'f'.repeat(63)}0` : `${value}x`;
  if (typeof value === 'number') return value + 1;
  return 'changed';
}

describe('HashChain and verifyChain', () => {
  it('round trip: appended records verify, with their head', () => {
    const records = chainOf(5);
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(records[0]!.prev_hash).toBe(GENESIS_HASH);
    for (let i = 1; i < records.length; i++) expect(records[i]!.prev_hash).toBe(records[i - 1]!.record_hash);
    for (const r of records) expect(r.record_hash).toBe(ledgerRecordHash(r));
    const result = verifyChain(records);
    expect(result).toEqual({
      ok: true,
      count: 5,
      head: { chainId: 'adapter-1', seq: 5, hash: records[4]!.record_hash },
    });
    // Records survive a JSON round trip (the way files and databases hand them back).
    expect(verifyChain(records.map((r) => JSON.parse(JSON.stringify(r)) as unknown)).ok).toBe(true);
    // A chained record is still a valid audit event.
    expect(auditEventSchema.safeParse(records[2]).success).toBe(true);
  });

  it('appendLine: the line is the canonical JSON of the record, serialized once with its hash input', () => {
    const chain = new HashChain({ chainId: 'adapter-1', seq: 0, hash: GENESIS_HASH });
    const gap = ledgerGapEvent({ reason: 'ledger_event_dropped', lost: 3, detail: 'test' });
    const events = [sampleEvent(1), sampleEvent(2), gap, sampleEvent(3, { reason: 'jti_replay' })];
    const out = events.map((e) => chain.appendLine(e));
    const reference = new HashChain({ chainId: 'adapter-1', seq: 0, hash: GENESIS_HASH });
    for (const [i, { record, line }] of out.entries()) {
      expect(line).toBe(canonicalizeJson(record));
      expect(JSON.parse(line)).toEqual(record);
      expect(record.record_hash).toBe(ledgerRecordHash(record));
      // The same records as append gives.
      expect(record).toEqual(reference.append(events[i]!));
    }
    expect(verifyChain(out.map((o) => JSON.parse(o.line) as unknown)).ok).toBe(true);
  });

  it('an empty chain verifies with no head', () => {
    expect(verifyChain([])).toEqual({ ok: true, count: 0, head: undefined });
  });

  it('chain fields already in an event are replaced, not trusted', () => {
    const chain = new HashChain({ chainId: 'c', seq: 0, hash: GENESIS_HASH });
    const forged = { ...sampleEvent(1), chain_id: 'other', seq: 99, prev_hash: 'a'.repeat(64) };
    const record = chain.append(forged);
    expect(record).toMatchObject({ chain_id: 'c', seq: 1, prev_hash: GENESIS_HASH });
    expect(verifyChain([record]).ok).toBe(true);
  });

  describe('attack: edited record', () => {
    const records = chainOf(4);
    const cases = records.flatMap((record, index) =>
      Object.keys(record)
        .filter((key) => key !== 'record_hash')
        .map((key) => [index + 1, key] as const),
    );
    it.each(cases)('editing record %i field %s is detected there (record_hash_mismatch)', (position, key) => {
      const copy = records.map((r) => ({ ...r }) as Record<string, unknown>);
      const target = copy[position - 1]!;
      target[key] = altered(target[key]);
      const result = verifyChain(copy);
      expect(result.ok).toBe(false);
      expect(result.firstBreak).toMatchObject({ position, problem: 'record_hash_mismatch' });
      // The head verified so far is the record before.
      expect(result.head?.seq ?? 0).toBe(position - 1);
    });

    it('adding a member to a record is detected', () => {
      const copy = records.map((r) => ({ ...r }) as Record<string, unknown>);
      copy[2]!.detail = 'inserted';
      expect(verifyChain(copy).firstBreak).toMatchObject({ position: 3, problem: 'record_hash_mismatch' });
    });

    it('removing a member from a record is detected', () => {
      const copy = records.map((r) => ({ ...r }) as Record<string, unknown>);
      delete copy[1]!.reason;
      delete copy[1]!.sub;
      expect(verifyChain(copy).firstBreak).toMatchObject({ position: 2, problem: 'record_hash_mismatch' });
    });

    it('an edit with a recomputed record_hash breaks the link of the next record', () => {
      const copy = records.map((r) => ({ ...r }) as Record<string, unknown>);
      copy[1]!.decision = 'allow';
      copy[1]!.record_hash = ledgerRecordHash(copy[1]!);
      expect(verifyChain(copy).firstBreak).toMatchObject({
        position: 3,
        problem: 'prev_hash_mismatch',
        seq: 3,
      });
    });

    it('rewriting the last record with a recomputed hash is only caught against a saved head', () => {
      const copy = records.map((r) => ({ ...r }) as Record<string, unknown>);
      const savedHead = verifyChain(records).head!;
      copy[3]!.status = 599;
      copy[3]!.record_hash = ledgerRecordHash(copy[3]!);
      const rewritten = verifyChain(copy);
      expect(rewritten.ok).toBe(true);
      expect(rewritten.head!.hash).not.toBe(savedHead.hash);
    });
  });

  describe('attack: deleted record', () => {
    it.each([1, 2, 3, 4])('deleting record %i gives seq_gap at the next position', (position) => {
      const records = chainOf(5);
      records.splice(position - 1, 1);
      const result = verifyChain(records);
      expect(result.ok).toBe(false);
      if (position === 1) {
        // The chain now starts at seq 2: nothing links it to genesis.
        expect(result.firstBreak).toMatchObject({ position: 1, problem: 'seq_gap', seq: 2 });
      } else {
        expect(result.firstBreak).toMatchObject({ position, problem: 'seq_gap', seq: position + 1 });
      }
    });

    it('deleting the last record is only caught against a saved head', () => {
      const records = chainOf(5);
      const savedHead = verifyChain(records).head!;
      const truncated = verifyChain(records.slice(0, 4));
      expect(truncated.ok).toBe(true);
      expect(truncated.head!.seq).toBeLessThan(savedHead.seq);
    });

    it('deleting a record and renumbering the rest breaks the link (prev_hash_mismatch)', () => {
      const records = chainOf(5).map((r) => ({ ...r }) as Record<string, unknown>);
      records.splice(1, 1);
      for (let i = 1; i < records.length; i++) {
        records[i]!.seq = i + 1;
        records[i]!.record_hash = ledgerRecordHash(records[i]!);
      }
      expect(verifyChain(records).firstBreak).toMatchObject({ position: 2, problem: 'prev_hash_mismatch' });
    });
  });

  describe('attack: reordered records', () => {
    it.each([
      [1, 2],
      [2, 3],
      [2, 5],
      [4, 5],
    ])('swapping records %i and %i is detected at %i', (a, b) => {
      const records = chainOf(5);
      [records[a - 1], records[b - 1]] = [records[b - 1]!, records[a - 1]!];
      const result = verifyChain(records);
      expect(result.ok).toBe(false);
      expect(result.firstBreak).toMatchObject({ position: a, problem: 'seq_gap', seq: b });
    });

    it('a duplicated (replayed) record is detected', () => {
      const records = chainOf(4);
      records.splice(2, 0, records[1]!);
      expect(verifyChain(records).firstBreak).toMatchObject({ position: 3, problem: 'seq_gap', seq: 2 });
    });
  });

  describe('attack: record from another chain', () => {
    it('a record of another chain spliced in is chain_id_mismatch at its position', () => {
      const ours = chainOf(4, 'adapter-1');
      const theirs = chainOf(4, 'adapter-2');
      const mixed = [...ours.slice(0, 2), theirs[2]!, ...ours.slice(3)];
      const result = verifyChain(mixed);
      expect(result.firstBreak).toMatchObject({ position: 3, problem: 'chain_id_mismatch', seq: 3 });
      expect(result.firstBreak!.message).toContain('adapter-2');
    });

    it('a chain verified from a checkpoint of another chain fails at the first record', () => {
      const theirs = chainOf(2, 'adapter-2');
      const result = verifyChain(theirs, { chainId: 'adapter-1', seq: 0, hash: GENESIS_HASH });
      expect(result.firstBreak).toMatchObject({ position: 1, problem: 'chain_id_mismatch' });
    });
  });

  describe('malformed records', () => {
    it.each([
      ['null', null],
      ['a string', 'record'],
      ['an array', []],
      ['an object without chain fields', { schema: AUDIT_EVENT_SCHEMA }],
    ])('%s is malformed_record at its position', (_, bad) => {
      const records: unknown[] = [...chainOf(3)];
      records.splice(1, 0, bad);
      expect(verifyChain(records).firstBreak).toMatchObject({ position: 2, problem: 'malformed_record' });
    });

    it('a seq that is not an integer is malformed', () => {
      const records = chainOf(2).map((r) => ({ ...r }) as Record<string, unknown>);
      records[1]!.seq = '2';
      expect(verifyChain(records).firstBreak).toMatchObject({ position: 2, problem: 'malformed_record' });
    });
  });

  describe('resuming from a head', () => {
    it('a chain continued from a head verifies whole, and on its own from that head', () => {
      const first = chainOf(3);
      const head = verifyChain(first).head!;
      const rest = chainOf(4, 'adapter-1', head);
      expect(rest[0]).toMatchObject({ seq: 4, prev_hash: first[2]!.record_hash });
      expect(verifyChain([...first, ...rest])).toMatchObject({ ok: true, count: 7, head: { seq: 7 } });
      expect(verifyChain(rest, head)).toMatchObject({ ok: true, count: 4, head: { seq: 7 } });
      // Without the head, the continued part is not a chain from genesis.
      expect(verifyChain(rest).firstBreak).toMatchObject({ position: 1, problem: 'seq_gap' });
      // A wrong head (right seq, wrong hash) is a broken link.
      expect(verifyChain(rest, { ...head, hash: 'a'.repeat(64) }).firstBreak).toMatchObject({
        position: 1,
        problem: 'prev_hash_mismatch',
      });
    });

    it('refuses an invalid head', () => {
      expect(() => new HashChain({ chainId: 'c', seq: -1, hash: GENESIS_HASH })).toThrow(RangeError);
      expect(() => new HashChain({ chainId: 'c', seq: 0, hash: 'XYZ' })).toThrow(TypeError);
    });
  });

  describe('hash stability (RFC 8785)', () => {
    it('the record hash does not depend on member order', () => {
      const records = chainOf(3);
      const reversed = records.map(
        (r) => Object.fromEntries(Object.entries(r).reverse()) as Record<string, unknown>,
      );
      expect(JSON.stringify(reversed[1])).not.toBe(JSON.stringify(records[1]));
      expect(reversed.map((r) => ledgerRecordHash(r))).toEqual(records.map((r) => r.record_hash));
      expect(verifyChain(reversed).ok).toBe(true);
    });

    it('property: any member order, same hash; any member change, another hash', () => {
      const record = chainOf(1)[0]!;
      const keys = Object.keys(record).filter((k) => k !== 'record_hash');
      fc.assert(
        fc.property(
          fc.shuffledSubarray(keys, { minLength: keys.length }),
          fc.constantFrom(...keys),
          (order, key) => {
            const shuffled = Object.fromEntries(
              order.map((k) => [k, (record as Record<string, unknown>)[k]]),
            );
            expect(ledgerRecordHash(shuffled)).toBe(record.record_hash);
            shuffled[key] = altered(shuffled[key]);
            expect(ledgerRecordHash(shuffled)).not.toBe(record.record_hash);
          },
        ),
      );
    });

    it('the hash is SHA-256 of the domain prefix and the JCS form without record_hash', () => {
      const record = new HashChain({ chainId: 'vector', seq: 0, hash: GENESIS_HASH }).append(sampleEvent(1));
      const { record_hash: _ignored, ...body } = record;
      expect(record.record_hash).toBe(sha256HexSync(LEDGER_RECORD_PREFIX + canonicalizeJson(body)));
      expect(record.record_hash).not.toBe(sha256HexSync(canonicalizeJson(body)));
      expect(ledgerRecordHash({ ...record, record_hash: 'ignored' })).toBe(record.record_hash);
    });
  });
});

describe('verifyLedgerStream', () => {
  async function* stream(values: readonly unknown[]): AsyncGenerator<unknown> {
    for (const v of values) yield await Promise.resolve(v);
  }

  it('gives the result verifyChain gives, across batch boundaries', async () => {
    const records: unknown[] = chainOf(2500);
    expect(await verifyLedgerStream(stream(records))).toEqual(verifyChain(records));
    for (const position of [1, 1024, 1025, 2048, 2049, 2500]) {
      const edited = records.map((r) => ({ ...(r as object) }) as Record<string, unknown>);
      edited[position - 1]!.status = 599;
      const expected = verifyChain(edited);
      expect(expected.firstBreak?.position).toBe(position);
      expect(await verifyLedgerStream(stream(edited))).toEqual(expected);
    }
    const swapped = [...records];
    [swapped[1500], swapped[1501]] = [swapped[1501], swapped[1500]];
    expect(await verifyLedgerStream(swapped)).toEqual(verifyChain(swapped));
  });

  it('reports an unreadable input as malformed_record at its position, with its problem', async () => {
    const records: unknown[] = [...chainOf(1500)];
    records.splice(1200, 0, new UnreadableRecord('line is not JSON'));
    expect((await verifyLedgerStream(stream(records))).firstBreak).toEqual({
      position: 1201,
      seq: undefined,
      problem: 'malformed_record',
      message: 'line is not JSON',
    });
  });

  it('continues from a head', async () => {
    const first = chainOf(3);
    const head = verifyChain(first).head!;
    expect(await verifyLedgerStream(chainOf(2, 'adapter-1', head), head)).toMatchObject({
      ok: true,
      count: 2,
      head: { seq: 5 },
    });
    expect(await verifyLedgerStream([], head)).toEqual({ ok: true, count: 0, head });
  });
});

describe('gap records', () => {
  /** 2,500 records with a gap record after every 1,000th, across verifyLedgerStream batches. */
  function gappedChain(): { records: LedgerEntry[]; gapSeqs: number[] } {
    const chain = new HashChain({ chainId: 'adapter-1', seq: 0, hash: GENESIS_HASH });
    const records: LedgerEntry[] = [];
    const gapSeqs: number[] = [];
    for (let i = 1; i <= 2_500; i++) {
      records.push(chain.append(sampleEvent(i)));
      if (i % 1000 === 0) {
        const gap = chain.append(
          ledgerGapEvent({
            reason: 'ledger_event_dropped',
            lost: i / 1000,
            detail: 'backlog over its limit',
          }),
        );
        gapSeqs.push(gap.seq);
        records.push(gap);
      }
    }
    return { records, gapSeqs };
  }

  it('are links like any record: the chain verifies, and the gaps are counted next to ok', async () => {
    const { records, gapSeqs } = gappedChain();
    const expected = {
      records: 2,
      lost: 3,
      listed: [
        { seq: gapSeqs[0], reason: 'ledger_event_dropped', lost: 1, detail: 'backlog over its limit' },
        { seq: gapSeqs[1], reason: 'ledger_event_dropped', lost: 2, detail: 'backlog over its limit' },
      ],
    };
    expect(verifyChain(records)).toMatchObject({ ok: true, count: 2_502, gaps: expected });
    expect(await verifyLedgerStream(records)).toMatchObject({ ok: true, count: 2_502, gaps: expected });
    expect(verifyChain(records.slice(0, 999)).gaps).toBeUndefined();
  });

  it('attack: editing a gap record (fewer lost) or deleting it breaks the chain there', () => {
    const { records, gapSeqs } = gappedChain();
    const at = records.findIndex((r) => r.seq === gapSeqs[0]);
    const edited = records.map((r, i) => (i === at ? { ...r, lost: 0 } : r));
    expect(verifyChain(edited)).toMatchObject({
      ok: false,
      firstBreak: { position: at + 1, problem: 'record_hash_mismatch' },
    });
    const deleted = records.filter((_, i) => i !== at);
    expect(verifyChain(deleted)).toMatchObject({
      ok: false,
      firstBreak: { position: at + 1, problem: 'seq_gap' },
    });
  });

  it('chainGapOf reads only gap records, and bounds what it copies', () => {
    expect(chainGapOf(chainOf(1)[0]!)).toBeUndefined();
    const gap = ledgerGapEvent({
      reason: 'ledger_chain_fork',
      lost: 7,
      fromSeq: 3,
      toSeq: 9,
      setAside: '/var/lib/trustplane/audit-spill.jsonl.conflict-1.jsonl',
      detail: 'x'.repeat(2000),
    });
    expect(gap).toMatchObject({ schema: LEDGER_GAP_SCHEMA, event_type: 'ledger_gap', lost: 7 });
    expect(gap.detail).toHaveLength(512);
    expect(chainGapOf({ ...gap, seq: 12 })).toMatchObject({
      seq: 12,
      reason: 'ledger_chain_fork',
      lost: 7,
      fromSeq: 3,
      toSeq: 9,
      setAside: '/var/lib/trustplane/audit-spill.jsonl.conflict-1.jsonl',
    });
    expect(() => ledgerGapEvent({ reason: 'ledger_event_dropped', lost: -1, detail: '' })).toThrow(
      RangeError,
    );
  });
});
