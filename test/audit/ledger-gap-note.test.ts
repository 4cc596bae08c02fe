import { mkdtemp, open as openFile, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AUDIT_EVENT_SCHEMA, type AuditEvent } from '../../pkg/audit/event.js';
import {
  GAP_NOTE_BYTES,
  GAP_NOTE_MAX_GAP_RECORDS,
  gapFromNote,
  LedgerGapNote,
} from '../../pkg/audit/ledger-gap-note.js';
import { LedgerError } from '../../pkg/audit/ledger-error.js';
import { PostgresLedgerSink } from '../../pkg/audit/postgres-ledger-sink.js';
import { verifyPostgresLedger } from '../../pkg/audit/postgres-ledger-verify.js';
import { hasPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';

// Red-team finding C1 (issue 18, points 1 and 7): records that wait in memory for a spill write
// that fails (disk full, ulimit -f) are lost at a stop or a crash. The gap note next to the spill
// file counts them, and the next open turns it into a chained gap record, exactly once.

let scratch: string;
let server: PostgresServer | undefined;
let startError: unknown;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'tp-gap-note-'));
  try {
    server = await startPostgres();
  } catch (e) {
    startError = e;
  }
}, 60_000);

afterAll(async () => {
  await server?.close();
});

function db(): PostgresServer {
  if (server === undefined) {
    throw new Error(
      `PostgreSQL did not start: ${startError instanceof Error ? startError.message : 'unknown'}`,
    );
  }
  return server;
}

function event(i: number): AuditEvent {
  return {
    schema: AUDIT_EVENT_SCHEMA,
    event_id: `evt-${i}`,
    time: new Date(Date.UTC(2026, 0, 31, 12, 0, 0, i)).toISOString(),
    event_type: 'authorization_decision',
    component: 'adapter',
    decision: 'deny',
    status: 401,
  } as AuditEvent;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function rows(chainId: string): Promise<{ event_type: string; record: Record<string, unknown> }[]> {
  const client = new pg.Client({ connectionString: db().url });
  await client.connect();
  try {
    const r = await client.query<{ event_type: string; record: Record<string, unknown> }>(
      'SELECT event_type, record FROM trustplane_ledger WHERE chain_id = $1 ORDER BY seq',
      [chainId],
    );
    return r.rows;
  } finally {
    await client.end();
  }
}

describe('LedgerGapNote', () => {
  it('is created full size (0600) and never grows; the newest valid slot wins; a torn write leaves the previous note', async () => {
    const file = path.join(scratch, 'unit', 'a.jsonl.gaps');
    const note = await LedgerGapNote.open(file, 'c1');
    expect([note.previous, note.empty]).toEqual([undefined, true]);
    const created = await stat(file);
    expect([created.size, created.mode & 0o777]).toEqual([GAP_NOTE_BYTES, 0o600]);
    // Real blocks, not a sparse file: overwriting them needs no new disk space.
    expect(created.blocks * 512).toBeGreaterThanOrEqual(GAP_NOTE_BYTES);

    const first = { chainedTo: 120, gapRecords: [], dropped: 0, lastTime: '2026-01-31T12:00:00.000Z' };
    const second = { chainedTo: 180, gapRecords: [{ seq: 150, lost: 7 }], dropped: 2 };
    await note.write(first);
    await note.write(second);
    await note.close();
    expect((await stat(file)).size).toBe(GAP_NOTE_BYTES);
    const again = await LedgerGapNote.open(file, 'c1');
    expect(again.previous).toEqual(second);
    await again.close();

    // Tear the newer slot (generation 2 lives in slot 0): the older note is read instead.
    const handle = await openFile(file, 'r+');
    await handle.write(Buffer.from('torn'), 0, 4, 40);
    await handle.close();
    const torn = await LedgerGapNote.open(file, 'c1');
    expect(torn.previous).toEqual(first);
    await torn.write(undefined);
    await torn.close();
    const cleared = await LedgerGapNote.open(file, 'c1');
    expect([cleared.previous, cleared.empty]).toEqual([undefined, true]);
    await cleared.close();
  });

  it('a non-empty note of another chain is refused; an empty one is reused', async () => {
    const file = path.join(scratch, 'unit', 'b.jsonl.gaps');
    const note = await LedgerGapNote.open(file, 'one');
    await note.write({ chainedTo: 5, gapRecords: [], dropped: 0 });
    await note.close();
    await expect(LedgerGapNote.open(file, 'two')).rejects.toThrow(/loss of chain one, not two/);
    const mine = await LedgerGapNote.open(file, 'one');
    await mine.write(undefined);
    await mine.close();
    const other = await LedgerGapNote.open(file, 'two');
    expect(other.previous).toBeUndefined();
    await other.close();
  });

  it(`keeps at most ${GAP_NOTE_MAX_GAP_RECORDS} gap records, folding the oldest (counts kept)`, async () => {
    const file = path.join(scratch, 'unit', 'c.jsonl.gaps');
    const note = await LedgerGapNote.open(file, 'c');
    const gapRecords = Array.from({ length: 40 }, (_, i) => ({ seq: i + 1, lost: 1000 + i }));
    await note.write({ chainedTo: 40, gapRecords, dropped: 0 });
    await note.close();
    const back = await LedgerGapNote.open(file, 'c');
    const kept = back.previous?.gapRecords ?? [];
    expect(kept).toHaveLength(GAP_NOTE_MAX_GAP_RECORDS);
    expect(kept.reduce((n, g) => n + g.lost, 0)).toBe(gapRecords.reduce((n, g) => n + g.lost, 0));
    expect(kept.at(-1)).toEqual({ seq: 40, lost: 1039 });
    await back.close();
  });
});

describe('gapFromNote', () => {
  it('counts only what is past the durable head: records lost, lost gap records replaced by their counts, drops', () => {
    const note = {
      chainedTo: 4010,
      gapRecords: [
        { seq: 1000, lost: 9 }, // durable: not counted again
        { seq: 2000, lost: 30 }, // lost with the rest: its 30 count, it does not
      ],
      dropped: 4,
      firstTime: 't1',
      lastTime: 't2',
    };
    expect(gapFromNote(note, 1478)).toEqual({
      reason: 'ledger_records_lost',
      lost: 4010 - 1478 - 1 + 30 + 4,
      fromSeq: 1479,
      toSeq: 4010,
      firstTime: 't1',
      lastTime: 't2',
      detail: expect.stringMatching(/records 1479\.\.4010 .*2565 events are lost \(34 of them counted/),
    });
    // Everything reached PostgreSQL or the spill file after the note was written: nothing lost.
    expect(
      gapFromNote({ chainedTo: 50, gapRecords: [{ seq: 50, lost: 3 }], dropped: 0 }, 50),
    ).toBeUndefined();
    expect(gapFromNote({ chainedTo: 50, gapRecords: [], dropped: 0 }, 70)).toBeUndefined();
    // Only drops whose gap record was never chained.
    expect(gapFromNote({ chainedTo: 50, gapRecords: [], dropped: 6 }, 50)).toMatchObject({
      reason: 'ledger_event_dropped',
      lost: 6,
    });
  });
});

describe('PostgresLedgerSink and the gap note', () => {
  it('PostgreSQL is installed (required: install the Debian package postgresql, see .ci/run)', () => {
    expect(hasPostgres()).toBe(true);
    db();
  });

  it('attack: a full spill at close: records waiting in memory become one gap record at the next open (records + lost = written, exactly once), and the note is cleared once it is durable', async () => {
    const chainId = 'full-spill-close';
    const spillPath = path.join(scratch, chainId, 'spill.jsonl');
    const errors: Error[] = [];
    const options = {
      url: db().url,
      chainId,
      spillPath,
      flushIntervalMs: 10,
      flushTimeoutMs: 300,
      onError: (e: Error) => errors.push(e),
    };
    let sink = await PostgresLedgerSink.open(options);
    for (let i = 1; i <= 10; i++) sink.write(event(i));
    await sink.flush();

    // Appends (no position: the spill file) fail once 300 records are on disk; positioned writes
    // (the gap note, overwritten in place) still work, as on a full disk.
    const probe = await openFile(path.join(scratch, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as {
      write(buffer: Buffer, offset: number, length: number, position?: number): Promise<unknown>;
    };
    await probe.close();
    const original = proto.write;
    let appendsLeft = Infinity;
    const spy = vi.spyOn(proto, 'write').mockImplementation(async function (
      this: unknown,
      buffer: Buffer,
      offset: number,
      length: number,
      position?: number,
    ) {
      if (position === undefined && appendsLeft-- <= 0) {
        throw Object.assign(new Error('file too large'), { code: 'EFBIG' });
      }
      return original.call(this, buffer, offset, length, position);
    });
    const TOTAL = 1000;
    try {
      await db().stop();
      for (let i = 11; i <= 300; i++) sink.write(event(i));
      await waitFor('300 records spilled', () => sink.spilling && sink.head.seq === 300);
      await waitFor('the spill file written', async () => {
        const text = await readFile(spillPath, 'utf8').catch(() => '');
        return text.split('\n').length - 1 >= 290;
      });
      appendsLeft = 0;
      for (let i = 301; i <= TOTAL; i++) sink.write(event(i));
      await waitFor('spill writes failing', () => sink.health().reason === 'spill_failed');
      await sink.close();
    } finally {
      spy.mockRestore();
      await db().start();
    }
    const onDisk = (await readFile(spillPath, 'utf8')).split('\n').filter((l) => l !== '').length;
    expect(errors.some((e) => e instanceof LedgerError && /spill write failed/.test(e.message))).toBe(true);

    sink = await PostgresLedgerSink.open(options);
    await sink.flush();
    await sink.close();
    const stored = await rows(chainId);
    const decisions = stored.filter((r) => r.event_type === 'authorization_decision').length;
    const gaps = stored.filter((r) => r.event_type === 'ledger_gap').map((r) => r.record);
    expect(decisions).toBe(10 + onDisk);
    expect(gaps).toEqual([
      expect.objectContaining({
        reason: 'ledger_records_lost',
        lost: TOTAL - decisions,
        from_seq: decisions + 1,
        to_seq: TOTAL,
        first_time: event(decisions + 1).time,
        last_time: event(TOTAL).time,
      }),
    ]);
    expect(errors.some((e) => e instanceof LedgerError && e.reason === 'ledger_records_lost')).toBe(true);
    const verified = await verifyPostgresLedger(db().url, chainId);
    expect(verified).toMatchObject({ ok: true, gaps: { records: 1, lost: TOTAL - decisions } });

    // The gap record is durable: the note was cleared, a third open adds nothing.
    const note = await LedgerGapNote.open(`${spillPath}.gaps`, chainId);
    expect(note.previous).toBeUndefined();
    await note.close();
    sink = await PostgresLedgerSink.open(options);
    await sink.close();
    expect((await rows(chainId)).length).toBe(stored.length);
  }, 60_000);

  it('the loss found in a note is carried by the next note until its gap record is durable: a crash before that counts it once, not twice and not never', async () => {
    const chainId = 'carried-note';
    const spillPath = path.join(scratch, chainId, 'spill.jsonl');
    const notePath = `${spillPath}.gaps`;
    const options = { url: db().url, chainId, spillPath, flushIntervalMs: 10, flushTimeoutMs: 2_000 };
    let sink = await PostgresLedgerSink.open(options);
    for (let i = 1; i <= 5; i++) sink.write(event(i));
    await sink.flush();
    await sink.close();
    // A previous life chained up to seq 25; only 5 of them survived.
    const left = await LedgerGapNote.open(notePath, chainId);
    await left.write({ chainedTo: 25, gapRecords: [], dropped: 0 });
    await left.close();

    // PostgreSQL down at open: the sink cannot start (it needs the chain head); the note is kept.
    await db().stop();
    try {
      await expect(PostgresLedgerSink.open(options)).rejects.toMatchObject({ reason: 'ledger_unavailable' });
    } finally {
      await db().start();
    }
    const kept = await LedgerGapNote.open(notePath, chainId);
    expect(kept.previous).toEqual({ chainedTo: 25, gapRecords: [], dropped: 0 });
    await kept.close();

    // The gap record (seq 6, lost 20) waits uncommitted: the note now names it instead.
    sink = await PostgresLedgerSink.open({ ...options, flushIntervalMs: 60_000, spillAfterMs: 600_000 });
    expect(sink.head.seq).toBe(6);
    const carried = await LedgerGapNote.open(notePath, chainId);
    const state = carried.previous;
    await carried.close();
    expect(state).toMatchObject({ chainedTo: 6, gapRecords: [{ seq: 6, lost: 20 }], dropped: 0 });
    // Were the process to die now, the next open would count the 20 once (from this note) ...
    expect(gapFromNote(state!, 5)).toMatchObject({ reason: 'ledger_records_lost', lost: 20 });
    // ... and nothing once the gap record is committed.
    expect(gapFromNote(state!, 6)).toBeUndefined();

    await sink.close();
    const cleared = await LedgerGapNote.open(notePath, chainId);
    expect(cleared.previous).toBeUndefined();
    await cleared.close();
    sink = await PostgresLedgerSink.open(options);
    await sink.close();
    const gaps = (await rows(chainId)).filter((r) => r.event_type === 'ledger_gap').map((r) => r.record);
    expect(gaps).toEqual([
      expect.objectContaining({ reason: 'ledger_records_lost', lost: 20, from_seq: 6, to_seq: 25 }),
    ]);
  }, 60_000);
});
