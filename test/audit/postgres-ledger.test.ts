import { mkdir, mkdtemp, open as openFile, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { GENESIS_HASH, HashChain, verifyChain, type LedgerRecord } from '../../pkg/audit/chain.js';
import { isRetryableReason } from '../../pkg/authcore/reason-codes.js';
import { AUDIT_EVENT_SCHEMA, type AuditEvent } from '../../pkg/audit/event.js';
import { LEDGER_MIGRATIONS_TABLE, migrateLedger } from '../../pkg/audit/ledger-migrations.js';
import { AuditUnavailableError } from '../../pkg/audit/audit-unavailable-error.js';
import { redactConnectionString } from '../../pkg/audit/connection-string.js';
import { LedgerError } from '../../pkg/audit/ledger-error.js';
import { queryPostgresLedger } from '../../pkg/audit/postgres-ledger-query.js';
import { PostgresLedgerSink, type PostgresLedgerSinkOptions } from '../../pkg/audit/postgres-ledger-sink.js';
import { verifyPostgresLedger } from '../../pkg/audit/postgres-ledger-verify.js';
import { SPILL_GROUP_BYTES, SPILL_GROUP_RECORDS, SpillBuffer } from '../../pkg/audit/spill-buffer.js';
import { hasPostgres, PG_BIN_DIR, startPostgres, type PostgresServer } from '../helpers/postgres.js';

/** Trust authentication ignores it: it is here to prove no message ever repeats it. */
const PASSWORD = 'Sup3r-s3cret-pw';
const BASE_TIME = Date.parse('2026-01-31T12:00:00.000Z');

let server: PostgresServer | undefined;
let startError: unknown;
let scratch: string;

/** The server; every test fails (none is skipped) when it could not start. */
function pgServer(): PostgresServer {
  if (server === undefined) {
    throw new Error(
      `PostgreSQL did not start: ${startError instanceof Error ? startError.message : 'unknown'}`,
    );
  }
  return server;
}

/** The server URL for `database`, with a password in it. */
function dbUrl(database = 'postgres'): string {
  return `postgresql://postgres:${PASSWORD}@127.0.0.1:${pgServer().port}/${database}`;
}

async function sql<R extends pg.QueryResultRow = Record<string, unknown>>(
  text: string,
  params: unknown[] = [],
  database = 'postgres',
): Promise<R[]> {
  const client = new pg.Client({ connectionString: dbUrl(database) });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}

let databases = 0;
async function freshDatabase(): Promise<string> {
  const name = `ledger_${++databases}`;
  await sql(`CREATE DATABASE ${name}`);
  return name;
}

function event(i: number, extra: Partial<AuditEvent> = {}): AuditEvent {
  const deny = i % 5 === 0;
  return {
    schema: AUDIT_EVENT_SCHEMA,
    event_id: `evt-${i}`,
    time: new Date(BASE_TIME + i * 1000).toISOString(),
    event_type: 'authorization_decision',
    component: 'adapter',
    instance: 'adapter-test',
    decision: deny ? 'deny' : 'allow',
    status: deny ? 401 : 200,
    ...(deny ? { reason: 'jti_replay' } : {}),
    route_id: `route-${i % 3}`,
    iss: 'https://issuer.example',
    sub: `spiffe://example.local/client-${i % 4}`,
    jti: `jti-${i}`,
    ...extra,
  } as AuditEvent;
}

async function openSink(
  chainId: string,
  options: Partial<PostgresLedgerSinkOptions> = {},
): Promise<PostgresLedgerSink> {
  return PostgresLedgerSink.open({ url: dbUrl(), chainId, flushIntervalMs: 10, ...options });
}

async function chainRows(chainId: string): Promise<{ seq: string; event_id: string }[]> {
  return sql<{ seq: string; event_id: string }>(
    "SELECT seq::text AS seq, record->>'event_id' AS event_id FROM trustplane_ledger WHERE chain_id = $1 ORDER BY trustplane_ledger.seq",
    [chainId],
  );
}

async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Write events `from`..`to`, yielding to the event loop every `chunk` events. */
async function writeRange(
  sink: PostgresLedgerSink,
  from: number,
  to: number,
  chunk = 100,
  pauseMs = 1,
): Promise<void> {
  for (let i = from; i <= to; i++) {
    sink.write(event(i));
    if (i % chunk === 0) await sleep(pauseMs);
  }
}

function expectNoSecret(errors: readonly Error[]): void {
  for (const e of errors) {
    expect(e.message).not.toContain(PASSWORD);
    expect(String(e.stack)).not.toContain(PASSWORD);
  }
}

describe('PostgreSQL audit ledger', () => {
  it('PostgreSQL is installed (required: install the Debian package postgresql, see .ci/run)', () => {
    expect(
      hasPostgres(),
      `PostgreSQL server binaries not found (PG_BIN_DIR=${PG_BIN_DIR ?? 'unset'}); install postgresql`,
    ).toBe(true);
  });

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'trustplane-ledger-test-'));
    try {
      server = await startPostgres();
    } catch (e) {
      // Not thrown here: a failed beforeAll would mark the tests skipped; they fail instead.
      startError = e;
    }
  }, 60_000);

  // A test that stopped PostgreSQL and failed before restarting it must not fail the next ones.
  afterEach(async () => {
    await server?.start();
  });

  afterAll(async () => {
    await server?.close();
    await rm(scratch, { recursive: true, force: true });
  });

  describe('migrateLedger', () => {
    it('creates the table and indexes once; running it again changes nothing', async () => {
      const database = await freshDatabase();
      const pool = new pg.Pool({ connectionString: dbUrl(database) });
      try {
        expect(await migrateLedger(pool)).toEqual({ applied: [1], version: 1 });
        expect(await migrateLedger(pool)).toEqual({ applied: [], version: 1 });
        const client = await pool.connect();
        try {
          expect(await migrateLedger(client)).toEqual({ applied: [], version: 1 });
        } finally {
          client.release();
        }
      } finally {
        await pool.end();
      }
      const columns = await sql<{ column_name: string; data_type: string; is_nullable: string }>(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'trustplane_ledger'",
        [],
        database,
      );
      const byName = new Map(columns.map((c) => [c.column_name, c]));
      expect(byName.get('seq')?.data_type).toBe('bigint');
      expect(byName.get('record')?.data_type).toBe('jsonb');
      expect(byName.get('record')?.is_nullable).toBe('NO');
      expect(byName.get('receipt')?.is_nullable).toBe('YES');
      expect(byName.get('prev_hash')?.data_type).toBe('character');
      expect(byName.get('time')?.data_type).toBe('timestamp with time zone');
      const indexes = await sql<{ indexdef: string }>(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'trustplane_ledger'",
        [],
        database,
      );
      const defs = indexes.map((i) => i.indexdef.replace(/^.* USING btree /, ''));
      expect(defs).toEqual(
        expect.arrayContaining([
          '(chain_id, seq)',
          '(record_hash)',
          '(sub, "time")',
          '(jti)',
          '(route_id, "time")',
          '("time")',
        ]),
      );
      const versions = await sql(`SELECT version, name FROM ${LEDGER_MIGRATIONS_TABLE}`, [], database);
      expect(versions).toHaveLength(1);
    });

    it('concurrent migrators apply each migration exactly once', async () => {
      const database = await freshDatabase();
      const clients = Array.from({ length: 6 }, () => new pg.Client({ connectionString: dbUrl(database) }));
      await Promise.all(clients.map((c) => c.connect()));
      try {
        const results = await Promise.all(clients.map((c) => migrateLedger(c)));
        expect(results.filter((r) => r.applied.length > 0)).toEqual([{ applied: [1], version: 1 }]);
        expect(results.every((r) => r.version === 1)).toBe(true);
      } finally {
        await Promise.all(clients.map((c) => c.end()));
      }
      expect(await sql(`SELECT version FROM ${LEDGER_MIGRATIONS_TABLE}`, [], database)).toEqual([
        { version: 1 },
      ]);
    });
  });

  describe('PostgresLedgerSink', () => {
    it('5,000 events become exactly 5,000 rows, seq 1..5000 in order, and the chain verifies', async () => {
      const depths: number[] = [];
      const sink = await openSink('bulk', { metrics: { bufferDepth: (d) => depths.push(d) } });
      await writeRange(sink, 1, 5000, 500);
      await sink.flush();
      expect(sink.bufferDepth).toBe(0);
      await sink.close();
      const rows = await chainRows('bulk');
      expect(rows).toHaveLength(5000);
      expect(rows.every((r, i) => r.seq === String(i + 1) && r.event_id === `evt-${i + 1}`)).toBe(true);
      const [columns] = await sql<{ sub: string; decision: string; time: Date; status: number }>(
        'SELECT sub, decision, "time", status FROM trustplane_ledger WHERE chain_id = \'bulk\' AND seq = 10',
      );
      expect(columns).toEqual({
        sub: 'spiffe://example.local/client-2',
        decision: 'deny',
        time: new Date(BASE_TIME + 10_000),
        status: 401,
      });
      const result = await verifyPostgresLedger(dbUrl(), 'bulk');
      expect(result).toMatchObject({ ok: true, count: 5000, head: { chainId: 'bulk', seq: 5000 } });
      expect(Math.max(...depths)).toBeGreaterThan(0);
      expect(depths.at(-1)).toBe(0);
    });

    it('PostgreSQL stopped mid-stream: writes continue (memory, then the disk spill), and after the restart all 5,000 are there once, in order', async () => {
      const db = pgServer();
      const spillPath = path.join(scratch, 'outage', 'spill.jsonl');
      const depths: number[] = [];
      const errors: Error[] = [];
      const sink = await openSink('outage', {
        maxBufferedEvents: 300,
        spillPath,
        maxRetryDelayMs: 200,
        onError: (e) => errors.push(e),
        metrics: { bufferDepth: (d) => depths.push(d) },
      });
      await writeRange(sink, 1, 1500, 50);
      await waitFor('a first commit', () => sink.committedSeq > 0);
      // Stop while writing: the writes below run during the shutdown and after it. They are paced
      // (50 records per 5 ms): the spill writer shares the process with this producer, and on a
      // starved machine an unpaced producer outruns it and the sink drops (and counts) records, as
      // its bounded memory requires; this test is about the outage, not about overload.
      const stopping = db.stop();
      await writeRange(sink, 1501, 3000, 50, 5);
      await stopping;
      await writeRange(sink, 3001, 4000, 50, 5);
      await waitFor('a failed retry', () => errors.length > 0);
      // The spill is written in groups (at most 250 ms apart): wait for it rather than assume a
      // time, which a loaded machine may overrun.
      await waitFor(
        'records in the spill file',
        async () => ((await stat(spillPath).catch(() => undefined))?.size ?? 0) > 0,
      );
      expect((await stat(spillPath)).size).toBeGreaterThan(0);
      expect(sink.bufferDepth).toBeGreaterThan(300);
      expect(sink.droppedEvents).toBe(0);
      expect(sink.healthy).toBe(false);

      await db.start();
      await writeRange(sink, 4001, 5000, 50);
      await sink.flush();
      expect(sink.bufferDepth).toBe(0);
      expect(sink.healthy).toBe(true);
      await waitFor('the drained spill file to be truncated', async () => (await stat(spillPath)).size === 0);
      await sink.close();

      const rows = await chainRows('outage');
      expect(rows).toHaveLength(5000);
      expect(rows.every((r, i) => r.seq === String(i + 1) && r.event_id === `evt-${i + 1}`)).toBe(true);
      const [dupes] = await sql<{ n: string }>(
        "SELECT count(*) - count(DISTINCT record->>'event_id') AS n FROM trustplane_ledger WHERE chain_id = 'outage'",
      );
      expect(dupes?.n).toBe('0');
      expect(await verifyPostgresLedger(dbUrl(), 'outage')).toMatchObject({ ok: true, count: 5000 });
      expect(Math.max(...depths)).toBeGreaterThan(300);
      expect(depths.at(-1)).toBe(0);
      expect(errors.every((e) => e instanceof LedgerError)).toBe(true);
      expectNoSecret(errors);
      expect(errors.some((e) => e.message.includes('postgres:***@127.0.0.1'))).toBe(true);
    }, 40_000);

    it('writeDurable rejects audit_unavailable while PostgreSQL is down (bounded) and resolves once it is back; the event is kept', async () => {
      const db = pgServer();
      const errors: Error[] = [];
      const sink = await openSink('durable', {
        durableTimeoutMs: 1500,
        maxRetryDelayMs: 200,
        onError: (e) => errors.push(e),
      });
      await sink.writeDurable(event(1));
      expect(await chainRows('durable')).toHaveLength(1);

      await db.stop();
      const started = Date.now();
      const failure = await sink.writeDurable(event(2)).catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(2500);
      expect(failure).toBeInstanceOf(AuditUnavailableError);
      expect(failure).toMatchObject({ reason: 'audit_unavailable', status: 503 });
      expect(sink.bufferDepth).toBe(1);

      await db.start();
      await waitFor(
        'a durable write to succeed',
        () =>
          sink.writeDurable(event(3)).then(
            () => true,
            () => false,
          ),
        10_000,
      );
      await sink.close();
      const rows = await chainRows('durable');
      expect(rows.slice(0, 3)).toEqual([
        { seq: '1', event_id: 'evt-1' },
        { seq: '2', event_id: 'evt-2' },
        { seq: '3', event_id: 'evt-3' },
      ]);
      expect((await verifyPostgresLedger(dbUrl(), 'durable')).ok).toBe(true);
      expectNoSecret(errors);
    }, 30_000);

    it('reopening resumes the chain where it stopped', async () => {
      const first = await openSink('resume');
      await writeRange(first, 1, 10);
      await first.close();
      const second = await openSink('resume');
      expect(second.head).toMatchObject({ chainId: 'resume', seq: 10 });
      await writeRange(second, 11, 15);
      await second.close();
      const rows = await chainRows('resume');
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 15 }, (_, i) => String(i + 1)));
      expect(await verifyPostgresLedger(dbUrl(), 'resume')).toMatchObject({ ok: true, count: 15 });
    });

    it.each([
      // Both spill from the first failed commit on; the small one overflows memory as well.
      ['memory limit below the backlog', 50],
      ['memory limit above the backlog', 1000],
    ])(
      'records not committed at close (PostgreSQL crashed) stay in the spill file and the next open writes them (%s)',
      async (label, maxBufferedEvents) => {
        const db = pgServer();
        const chainId = `restart-${maxBufferedEvents}`;
        const spillPath = path.join(scratch, chainId, 'spill.jsonl');
        const errors: Error[] = [];
        const first = await openSink(chainId, {
          spillPath,
          maxBufferedEvents,
          flushTimeoutMs: 300,
          onError: (e) => errors.push(e),
        });
        await writeRange(first, 1, 5);
        await first.flush();
        await db.kill();
        await writeRange(first, 6, 100);
        await first.close();
        expect(
          errors.some((e) => e.message.includes('flush timed out')),
          label,
        ).toBe(true);
        expectNoSecret(errors);
        const kept = (await readFile(spillPath, 'utf8')).trim().split('\n');
        expect(JSON.parse(kept.at(-1) ?? '{}')).toMatchObject({ seq: 100, event_id: 'evt-100' });

        await db.start();
        const second = await openSink(chainId, { spillPath });
        expect(second.head.seq).toBe(100);
        expect(second.bufferDepth).toBe(95);
        second.write(event(101));
        await second.flush();
        await second.close();
        const rows = await chainRows(chainId);
        expect(rows.map((r) => r.event_id)).toEqual(Array.from({ length: 101 }, (_, i) => `evt-${i + 1}`));
        expect(await verifyPostgresLedger(dbUrl(), chainId)).toMatchObject({ ok: true, count: 101 });
        expect((await stat(spillPath)).size).toBe(0);
      },
      30_000,
    );

    it('a batch retried after a commit that did land (ambiguous failure) is not duplicated', async () => {
      // The sink opened before the rows landed, as if its COMMIT succeeded but the reply was lost:
      // its records 1..5 are already stored (byte for byte: same events, same chain).
      const errors: Error[] = [];
      const retrying = await openSink('retry', { onError: (e) => errors.push(e) });
      const earlier = await openSink('retry');
      await writeRange(earlier, 1, 5);
      await earlier.close();
      await writeRange(retrying, 1, 10);
      await retrying.flush();
      await retrying.close();
      expect(errors).toEqual([]);
      expect((await chainRows('retry')).map((r) => r.event_id)).toEqual(
        Array.from({ length: 10 }, (_, i) => `evt-${i + 1}`),
      );
      expect(await verifyPostgresLedger(dbUrl(), 'retry')).toMatchObject({ ok: true, count: 10 });
    });

    it('writeDurable rejects when the commit does not happen in time (table locked); the record is written afterwards', async () => {
      const sink = await openSink('slow', { durableTimeoutMs: 300 });
      const locker = new pg.Client({ connectionString: dbUrl() });
      await locker.connect();
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE trustplane_ledger IN EXCLUSIVE MODE');
        const started = Date.now();
        await expect(sink.writeDurable(event(1))).rejects.toMatchObject({ reason: 'audit_unavailable' });
        expect(Date.now() - started).toBeLessThan(1500);
        await locker.query('COMMIT');
      } finally {
        await locker.end();
      }
      await sink.flush();
      await sink.close();
      expect(await chainRows('slow')).toEqual([{ seq: '1', event_id: 'evt-1' }]);
    });

    it('strings PostgreSQL cannot store (U+0000, lone surrogates) are made storable before chaining', async () => {
      const sink = await openSink('unstorable');
      sink.write(event(1, { detail: 'nul\u0000here', path: '/a\uD800b' }));
      await sink.flush();
      await sink.close();
      const [row] = await sql<{ record: Record<string, unknown> }>(
        "SELECT record FROM trustplane_ledger WHERE chain_id = 'unstorable'",
      );
      expect(row?.record).toMatchObject({ detail: 'nul\uFFFDhere', path: '/a\uFFFDb' });
      expect((await verifyPostgresLedger(dbUrl(), 'unstorable')).ok).toBe(true);
    });

    it('without a spill file, events beyond the memory bound are dropped before chaining and counted in a gap record (the chain stays whole, verify reports the gap)', async () => {
      const db = pgServer();
      const errors: Error[] = [];
      const sink = await openSink('bounded', {
        maxBufferedEvents: 10,
        flushTimeoutMs: 200,
        onError: (e) => errors.push(e),
      });
      await db.stop();
      try {
        await writeRange(sink, 1, 15);
        expect(sink.droppedEvents).toBe(5);
        expect(sink.head.seq).toBe(10);
        expect(errors.some((e) => e.message.includes('backlog over its limit'))).toBe(true);
        expect(sink.health()).toEqual({ ok: false, reason: 'backlog_over_limit' });
      } finally {
        await db.start();
      }
      await sink.flush();
      // Room again: the gap record went in where the events were dropped, after seq 10.
      await waitFor('the gap record', () => sink.head.seq === 11);
      await sink.flush();
      expect(sink.health()).toEqual({ ok: true });
      await sink.close();
      const result = await verifyPostgresLedger(dbUrl(), 'bounded');
      expect(result).toMatchObject({
        ok: true,
        count: 11,
        gaps: { records: 1, lost: 5, listed: [{ seq: 11, reason: 'ledger_event_dropped', lost: 5 }] },
      });
      const [gap] = await sql<{ record: Record<string, unknown> }>(
        "SELECT record FROM trustplane_ledger WHERE chain_id = 'bounded' AND event_type = 'ledger_gap'",
      );
      expect(gap?.record).toMatchObject({
        schema: 'trustplane-ledger-gap-v1',
        reason: 'ledger_event_dropped',
        lost: 5,
        first_time: expect.any(String),
        last_time: expect.any(String),
      });
    });

    it('PostgreSQL slow (table locked): records uncommitted for spillAfterMs are on disk before any commit, and committed once afterwards', async () => {
      const spillPath = path.join(scratch, 'slow-spill', 'spill.jsonl');
      const sink = await openSink('slow-spill', { spillPath, spillAfterMs: 100 });
      const locker = new pg.Client({ connectionString: dbUrl() });
      await locker.connect();
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE trustplane_ledger IN EXCLUSIVE MODE');
        await writeRange(sink, 1, 30);
        await waitFor('the spill file to hold all 30 records', async () => {
          const text = await readFile(spillPath, 'utf8').catch(() => '');
          return text.split('\n').filter((l) => l !== '').length === 30;
        });
        expect(sink.spilling).toBe(true);
        expect(sink.committedSeq).toBe(0);
        expect(sink.health()).toEqual({ ok: true });
        await locker.query('COMMIT');
      } finally {
        await locker.end();
      }
      await sink.flush();
      // The file is truncated inside the drain's last step and the flag cleared right after it: wait
      // for both (on a loaded machine a poll can land between the two).
      await waitFor(
        'the drained spill file to be truncated and spilling to end',
        async () => (await stat(spillPath)).size === 0 && !sink.spilling,
      );
      await sink.close();
      expect((await chainRows('slow-spill')).map((r) => r.event_id)).toEqual(
        Array.from({ length: 30 }, (_, i) => `evt-${i + 1}`),
      );
    });

    it('attack: a fork loser keeps its spilled records: set aside at open in a conflict file (error, metric), a gap record names them, audit verify reports it', async () => {
      const spillPath = path.join(scratch, 'fork-aside', 'spill.jsonl');
      const winner = await openSink('fork-aside');
      const loserErrors: Error[] = [];
      const loser = await openSink('fork-aside', {
        spillPath,
        flushTimeoutMs: 5_000,
        onError: (e) => loserErrors.push(e),
      });
      await writeRange(winner, 1, 5);
      await winner.flush();
      await writeRange(loser, 101, 110);
      await waitFor('the fork report', () =>
        loserErrors.some((e) => (e as LedgerError).reason === 'ledger_chain_fork'),
      );
      expect(loser.health()).toEqual({ ok: false, reason: 'chain_fork' });
      // A fork does not heal by waiting: flush fails at once, not at its timeout.
      const started = Date.now();
      await expect(loser.flush()).rejects.toMatchObject({ reason: 'ledger_chain_fork' });
      expect(Date.now() - started).toBeLessThan(2_000);
      await loser.close();
      expect((await readFile(spillPath, 'utf8')).trim().split('\n')).toHaveLength(10);
      await writeRange(winner, 6, 20);
      await winner.close();

      const errors: Error[] = [];
      const conflicts: number[] = [];
      const reopened = await openSink('fork-aside', {
        spillPath,
        onError: (e) => errors.push(e),
        metrics: { conflicts: (n) => conflicts.push(n) },
      });
      expect(conflicts).toEqual([10]);
      const aside = (await readdir(path.dirname(spillPath))).filter((f) => f.includes('.conflict-'));
      expect(aside).toHaveLength(1);
      const asidePath = path.join(path.dirname(spillPath), aside[0]!);
      const kept = (await readFile(asidePath, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as LedgerRecord);
      expect(kept.map((r) => [r.seq, r.event_id])).toEqual(
        Array.from({ length: 10 }, (_, i) => [i + 1, `evt-${101 + i}`]),
      );
      expect(verifyChain(kept).ok).toBe(true);
      expect((await stat(asidePath)).mode & 0o777).toBe(0o600);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        reason: 'ledger_chain_fork',
        details: { count: 10, set_aside: asidePath },
      });
      expect(errors[0]!.message).toMatch(
        /10 spilled records \(seq 1\.\.10\) conflict with the committed chain/,
      );
      expect(reopened.head.seq).toBe(21);
      await reopened.close();
      expect((await stat(spillPath)).size).toBe(0);

      const result = await verifyPostgresLedger(dbUrl(), 'fork-aside');
      expect(result).toMatchObject({
        ok: true,
        count: 21,
        gaps: {
          records: 1,
          lost: 10,
          listed: [
            { seq: 21, reason: 'ledger_chain_fork', lost: 10, fromSeq: 1, toSeq: 10, setAside: asidePath },
          ],
        },
      });
    });

    it('a spill file left by a crash: records PostgreSQL already holds are skipped; records after a hole are set aside as ledger_records_lost', async () => {
      const sink = await openSink('crash-left');
      await writeRange(sink, 1, 5);
      await sink.close();
      const stored = await sql<{ record: LedgerRecord }>(
        "SELECT record FROM trustplane_ledger WHERE chain_id = 'crash-left' ORDER BY trustplane_ledger.seq",
      );
      const chain = new HashChain({
        chainId: 'crash-left',
        seq: 5,
        hash: stored.at(-1)!.record.record_hash,
      });
      const next = [6, 7, 8].map((i) => chain.append(event(i)));

      // Committed 4..5, then spilled 6..8: the committed ones are skipped, the rest written once.
      const okPath = path.join(scratch, 'crash-left', 'ok.jsonl');
      await mkdir(path.dirname(okPath), { recursive: true });
      await writeFile(
        okPath,
        [...stored.slice(3).map((r) => r.record), ...next].map((r) => `${JSON.stringify(r)}\n`).join(''),
      );
      const errors: Error[] = [];
      const resumed = await openSink('crash-left', { spillPath: okPath, onError: (e) => errors.push(e) });
      expect(resumed.head.seq).toBe(8);
      await resumed.close();
      expect(errors).toEqual([]);
      expect((await chainRows('crash-left')).map((r) => r.event_id)).toEqual(
        Array.from({ length: 8 }, (_, i) => `evt-${i + 1}`),
      );

      // A spill file starting at seq 11 (9 and 10 reached neither PostgreSQL nor the disk).
      for (const i of [9, 10]) chain.append(event(i));
      const after = [11, 12, 13].map((i) => chain.append(event(i)));
      const holePath = path.join(scratch, 'crash-left', 'hole.jsonl');
      await writeFile(holePath, after.map((r) => `${JSON.stringify(r)}\n`).join(''));
      const conflicts: number[] = [];
      const holed = await openSink('crash-left', {
        spillPath: holePath,
        onError: (e) => errors.push(e),
        metrics: { conflicts: (n) => conflicts.push(n) },
      });
      expect(holed.head.seq).toBe(9);
      await holed.close();
      expect(conflicts).toEqual([3]);
      expect(errors.map((e) => (e as LedgerError).reason)).toEqual(['ledger_records_lost']);
      const result = await verifyPostgresLedger(dbUrl(), 'crash-left');
      expect(result).toMatchObject({
        ok: true,
        count: 9,
        gaps: {
          records: 1,
          lost: 5,
          listed: [{ seq: 9, reason: 'ledger_records_lost', fromSeq: 9, toSeq: 13 }],
        },
      });
    });

    it('attack: a second writer on the same chain id (fork) is detected, not silently dropped', async () => {
      const errors: Error[] = [];
      const a = await openSink('fork');
      const b = await openSink('fork', { flushTimeoutMs: 300, onError: (e) => errors.push(e) });
      a.write(event(1));
      await a.flush();
      b.write(event(2));
      await waitFor('the fork report', () =>
        errors.some((e) => (e as LedgerError).reason === 'ledger_chain_fork'),
      );
      await a.close();
      await b.close();
      expect(await chainRows('fork')).toEqual([{ seq: '1', event_id: 'evt-1' }]);
    });

    it('a refusal is ledger_error with its SQLSTATE (not retryable); a damaged spill file is ledger_error too', async () => {
      const missing = await verifyPostgresLedger(dbUrl('no_such_database')).then(
        () => new Error('verified'),
        (e: unknown) => e,
      );
      expect(missing).toBeInstanceOf(LedgerError);
      expect(missing).toMatchObject({ reason: 'ledger_error', status: 500, details: { sqlstate: '3D000' } });
      expect(isRetryableReason((missing as LedgerError).reason)).toBe(false);
      expectNoSecret([missing as Error]);

      const spillPath = path.join(scratch, 'damaged-spill.jsonl');
      await writeFile(spillPath, 'not json\n');
      const damaged = await PostgresLedgerSink.open({ url: dbUrl(), chainId: 'damaged', spillPath }).then(
        () => new Error('opened'),
        (e: unknown) => e,
      );
      expect(damaged).toMatchObject({ reason: 'ledger_error', message: /not JSON/ });
      expectNoSecret([damaged as Error]);
    });

    it('open fails with a LedgerError that does not repeat the password', async () => {
      const closed = `postgresql://postgres:${PASSWORD}@127.0.0.1:1/postgres`;
      const failure = await PostgresLedgerSink.open({
        url: closed,
        chainId: 'x',
        connectTimeoutMs: 1000,
      }).then(
        () => new Error('opened'),
        (e: unknown) => e as Error,
      );
      expect(failure).toBeInstanceOf(LedgerError);
      expect(failure).toMatchObject({ reason: 'ledger_unavailable', status: 503 });
      expect(isRetryableReason((failure as LedgerError).reason)).toBe(true);
      expect(failure.message).toContain('postgresql://postgres:***@127.0.0.1:1/postgres');
      expectNoSecret([failure]);
      await expect(verifyPostgresLedger(closed, undefined, { connectTimeoutMs: 1000 })).rejects.toSatisfy(
        (e: Error) => e instanceof LedgerError && !e.message.includes(PASSWORD),
      );
      expect(redactConnectionString('postgres://u:p%40ss@h/db?password=x&sslmode=require')).toBe(
        'postgres://u:***@h/db?password=***&sslmode=require',
      );
      await expect(PostgresLedgerSink.open({ url: 'mysql://x', chainId: 'x' })).rejects.toThrow(TypeError);
      await expect(PostgresLedgerSink.open({ url: dbUrl(), chainId: 'x', batchSize: 0 })).rejects.toThrow(
        RangeError,
      );
    });
  });

  describe('verifyPostgresLedger: tampering', () => {
    async function seed(chainId: string, count = 50): Promise<void> {
      const sink = await openSink(chainId);
      await writeRange(sink, 1, count);
      await sink.close();
      expect((await verifyPostgresLedger(dbUrl(), chainId)).ok).toBe(true);
    }

    it('attack: an edited record (jsonb_set) breaks the chain at its position', async () => {
      await seed('t-edit');
      await sql(
        "UPDATE trustplane_ledger SET record = jsonb_set(record, '{decision}', '\"allow\"') WHERE chain_id = 't-edit' AND seq = 25",
      );
      const result = await verifyPostgresLedger(dbUrl(), 't-edit');
      expect(result).toMatchObject({
        ok: false,
        firstBreak: { position: 25, seq: 25, problem: 'record_hash_mismatch' },
        head: { seq: 24 },
      });
    });

    it('attack: an edited indexed column (record untouched) breaks the chain at its position', async () => {
      await seed('t-column');
      await sql(
        "UPDATE trustplane_ledger SET sub = 'spiffe://example.local/innocent' WHERE chain_id = 't-column' AND seq = 7",
      );
      const result = await verifyPostgresLedger(dbUrl(), 't-column');
      expect(result.firstBreak).toMatchObject({
        position: 7,
        seq: 7,
        problem: 'record_hash_mismatch',
        column: 'sub',
      });
    });

    it('attack: a deleted row breaks the chain where it was', async () => {
      await seed('t-delete');
      await sql("DELETE FROM trustplane_ledger WHERE chain_id = 't-delete' AND seq = 30");
      const result = await verifyPostgresLedger(dbUrl(), 't-delete');
      expect(result).toMatchObject({ ok: false, firstBreak: { position: 30, seq: 31, problem: 'seq_gap' } });
    });

    it('attack: two rows with their seq swapped break the chain at the first of them', async () => {
      await seed('t-swap');
      await sql(
        `BEGIN;
         UPDATE trustplane_ledger SET seq = 1000000 WHERE chain_id = 't-swap' AND seq = 10;
         UPDATE trustplane_ledger SET seq = 10 WHERE chain_id = 't-swap' AND seq = 20;
         UPDATE trustplane_ledger SET seq = 20 WHERE chain_id = 't-swap' AND seq = 1000000;
         COMMIT`,
      );
      const result = await verifyPostgresLedger(dbUrl(), 't-swap');
      expect(result).toMatchObject({ ok: false, firstBreak: { position: 10, seq: 20 } });
    });

    it('every chain is verified on its own when no chain id is given', async () => {
      const result = await verifyPostgresLedger(dbUrl(), undefined, { pageSize: 7 });
      expect(result.ok).toBe(false);
      const byChain = new Map(result.chains.map((c) => [c.chainId, c]));
      expect(byChain.get('bulk')).toMatchObject({ ok: true, count: 5000, rows: 5000 });
      expect(byChain.get('t-delete')).toMatchObject({ ok: false, rows: 49, firstBreak: { position: 30 } });
      expect(byChain.get('t-edit')?.firstBreak?.position).toBe(25);
      expect(result.firstBreak?.message).toMatch(/^chain t-/);
      expect(await verifyPostgresLedger(dbUrl(), 'no-such-chain')).toMatchObject({ ok: true, count: 0 });
    });
  });

  describe('queryPostgresLedger', () => {
    async function collect(
      filter: Parameters<typeof queryPostgresLedger>[1],
    ): Promise<Record<string, unknown>[]> {
      const out: Record<string, unknown>[] = [];
      for await (const r of queryPostgresLedger(dbUrl(), { chainId: 'bulk', ...filter }, { pageSize: 50 })) {
        out.push(r);
      }
      return out;
    }

    it('filters by sub, jti, route, decision, reason and time window, oldest first', async () => {
      const bySub = await collect({ sub: 'spiffe://example.local/client-1', limit: 3 });
      expect(bySub.map((r) => r.event_id)).toEqual(['evt-1', 'evt-5', 'evt-9']);
      expect(await collect({ jti: 'jti-4321' })).toMatchObject([{ seq: 4321, chain_id: 'bulk' }]);
      const denies = await collect({
        routeId: 'route-0',
        decision: 'deny',
        reason: 'jti_replay',
        since: new Date(BASE_TIME + 100_000),
        until: new Date(BASE_TIME + 200_000),
      });
      // i in [100, 200), i % 15 == 0 (deny and route-0)
      expect(denies.map((r) => r.seq)).toEqual([105, 120, 135, 150, 165, 180, 195]);
      expect(await collect({ iss: 'https://other.example' })).toEqual([]);
      expect(() => queryPostgresLedger(dbUrl(), { limit: 0 })).toThrow(RangeError);
      expect(() => queryPostgresLedger(dbUrl(), { since: new Date(NaN) })).toThrow(RangeError);
    });
  });

  describe('SpillBuffer', () => {
    function records(n: number, chainId = 'spill'): LedgerRecord[] {
      const chain = new HashChain({ chainId, seq: 0, hash: GENESIS_HASH });
      return Array.from({ length: n }, (_, i) => chain.append(event(i + 1)));
    }

    it('keeps order across memory and disk, survives reopening, cuts a torn last line, truncates when drained', async () => {
      const file = path.join(scratch, 'spill-unit', 'a.jsonl');
      const all = records(30);
      const spill = await SpillBuffer.open(file, { chainId: 'spill' });
      for (const r of all.slice(0, 20)) spill.push(r);
      await spill.sync();
      for (const r of all.slice(20)) spill.push(r);
      expect((await spill.peek(25)).map((r) => r.seq)).toEqual(all.slice(0, 25).map((r) => r.seq));
      await spill.consume(5);
      expect(spill.size).toBe(25);
      await expect(SpillBuffer.open(file)).rejects.toThrow(/already open in this process/);
      await spill.close();

      // A crash in the middle of an append leaves a torn line: it is cut off at the next open.
      await writeFile(file, (await readFile(file, 'utf8')) + '{"chain_id":"spill","se');
      const reopened = await SpillBuffer.open(file, { chainId: 'spill' });
      expect(reopened.size).toBe(30);
      expect(reopened.last?.seq).toBe(30);
      const back = await reopened.peek(100);
      expect(verifyChain(back).ok).toBe(true);
      await reopened.consume(30);
      expect(reopened.size).toBe(0);
      expect((await stat(file)).size).toBe(0);
      await reopened.close();

      await writeFile(file, `${JSON.stringify(records(1, 'other')[0])}\n`);
      await expect(SpillBuffer.open(file, { chainId: 'spill' })).rejects.toThrow(/another chain/);
      await writeFile(file, 'not json\n');
      await expect(SpillBuffer.open(file)).rejects.toThrow(/not JSON/);
    });

    it('appends incrementally: a disk that fills up keeps every whole group that fit, cuts the torn one, retries it, and never reorders', async () => {
      const file = path.join(scratch, 'spill-unit', 'groups.jsonl');
      const all = records(700);
      const writes: Buffer[] = [];
      const probe = await openFile(path.join(scratch, 'spill-unit', 'probe'), 'w');
      const proto = Object.getPrototypeOf(probe) as {
        write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
      };
      await probe.close();
      const original = proto.write;
      let budget = Infinity; // bytes the disk still takes
      const spy = vi.spyOn(proto, 'write').mockImplementation(async function (
        this: unknown,
        buffer: Buffer,
        offset: number,
        length: number,
      ) {
        if (budget <= 0) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        const take = Math.min(length, budget);
        budget -= take;
        writes.push(Buffer.from(buffer.subarray(offset, offset + take)));
        return original.call(this, buffer, offset, take);
      });
      const failures: Error[] = [];
      try {
        const spill = await SpillBuffer.open(file, {
          chainId: 'spill',
          onWriteError: (e) => failures.push(e),
        });
        for (const r of all.slice(0, 300)) spill.push(r);
        await spill.sync();
        // Room for about 1.5 groups more: one whole group goes in, the next one is cut.
        const lineBytes = Buffer.byteLength(`${JSON.stringify(all[300])}\n`);
        budget = Math.floor(lineBytes * SPILL_GROUP_RECORDS * 1.5);
        for (const r of all.slice(300)) spill.push(r);
        await waitFor('a failed append', () => spill.writeFailing);
        const onDisk = (await readFile(file, 'utf8')).split('\n');
        expect(onDisk.at(-1)).toBe(''); // no torn line in the file
        expect(onDisk.length - 1).toBe(300 + SPILL_GROUP_RECORDS);
        expect(spill.stagedCount).toBe(400 - SPILL_GROUP_RECORDS);
        expect(spill.size).toBe(700);
        expect(failures.length).toBeGreaterThan(0);
        // Every append was one group at most.
        for (const w of writes) {
          expect(w.length).toBeLessThanOrEqual(SPILL_GROUP_BYTES);
          expect(w.toString('utf8').split('\n').length - 1).toBeLessThanOrEqual(SPILL_GROUP_RECORDS);
        }
        budget = Infinity; // space again: the retry (100 ms on) writes the rest
        await waitFor('the retried groups', () => spill.stagedCount === 0, 5_000);
        expect(spill.writeFailing).toBe(false);
        const back = await spill.peek(1000);
        expect(back.map((r) => r.seq)).toEqual(all.map((r) => r.seq));
        expect(verifyChain(back).ok).toBe(true);
        await spill.close();
        const reopened = await SpillBuffer.open(file, { chainId: 'spill' });
        expect([reopened.size, reopened.discontinuity]).toEqual([700, undefined]);
        await reopened.close();
      } finally {
        spy.mockRestore();
      }
    });

    it('setAside moves the records from an index on into a new 0600 file and cuts them from the spill file', async () => {
      const file = path.join(scratch, 'spill-unit', 'aside.jsonl');
      const aside = path.join(scratch, 'spill-unit', 'aside.conflict.jsonl');
      const all = records(10);
      const spill = await SpillBuffer.open(file, { chainId: 'spill' });
      for (const r of all) spill.push(r);
      await spill.sync();
      const moved = await spill.setAside(4, aside);
      expect(moved).toMatchObject({ path: aside, count: 6, firstSeq: 5, lastSeq: 10 });
      expect(spill.size).toBe(4);
      expect(spill.last?.seq).toBe(4);
      expect(
        (await readFile(aside, 'utf8'))
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as LedgerRecord).seq),
      ).toEqual([5, 6, 7, 8, 9, 10]);
      expect((await stat(aside)).mode & 0o777).toBe(0o600);
      await expect(spill.setAside(0, aside)).rejects.toThrow(/EEXIST|exists/);
      await spill.close();
      const reopened = await SpillBuffer.open(file, { chainId: 'spill' });
      expect([reopened.size, reopened.last?.seq]).toEqual([4, 4]);
      await reopened.close();

      // A file whose records do not form one run says where the run breaks.
      const other = records(3, 'spill');
      await writeFile(file, [...all.slice(0, 4), ...other].map((r) => `${JSON.stringify(r)}\n`).join(''));
      const broken = await SpillBuffer.open(file, { chainId: 'spill' });
      expect(broken.discontinuity).toBe(4);
      await broken.close();
    });
  });
});
