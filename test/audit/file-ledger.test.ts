import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, open as openFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TrustplaneError } from '../../pkg/authcore/errors.js';
import { GENESIS_HASH, verifyChain } from '../../pkg/audit/chain.js';
import { AUDIT_EVENT_SCHEMA, type AuditEvent } from '../../pkg/audit/event.js';
import { FileLedgerSink, type FileLedgerSinkOptions } from '../../pkg/audit/file-ledger-sink.js';
import { formatTable } from '../../pkg/audit/format-table.js';
import { queryRecords, type QueriedRecord } from '../../pkg/audit/query-records.js';
import { MAX_LEDGER_LINE_BYTES, readLedgerFile } from '../../pkg/audit/read-ledger-file.js';
import { StdoutLedgerSink } from '../../pkg/audit/stdout-ledger-sink.js';
import { UnreadableRecord } from '../../pkg/audit/unreadable-record.js';
import { verifyLedgerStream } from '../../pkg/audit/verify-ledger-stream.js';

const T0 = Date.UTC(2026, 0, 31, 12, 0, 0);

function event(i: number, overrides: Record<string, unknown> = {}): AuditEvent {
  const deny = i % 3 === 2;
  return {
    schema: AUDIT_EVENT_SCHEMA,
    event_id: `evt-${i}`,
    time: new Date(T0 + i * 1000).toISOString(),
    event_type: 'authorization_decision',
    component: 'adapter',
    decision: deny ? 'deny' : 'allow',
    status: deny ? 401 : 200,
    ...(deny ? { reason: 'jti_replay', stage: 'replay' } : {}),
    route_id: i % 2 === 0 ? 'orders.create' : 'orders.read',
    iss: 'https://issuer.example',
    sub: `service:client-${i % 4}`,
    jti: `jti-${i}`,
    ...overrides,
  } as AuditEvent;
}

let dir: string;
let file: string;
const opened: FileLedgerSink[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'trustplane-ledger-'));
  file = path.join(dir, 'ledger.jsonl');
});

afterEach(async () => {
  vi.restoreAllMocks();
  for (const sink of opened.splice(0)) await sink.close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

async function openLedger(
  target = file,
  options: Partial<FileLedgerSinkOptions> = {},
): Promise<FileLedgerSink> {
  const sink = await FileLedgerSink.open(target, { chainId: 'adapter-1', fsync: 'never', ...options });
  opened.push(sink);
  return sink;
}

async function writeLedger(count: number, target = file, first = 1): Promise<void> {
  const sink = await openLedger(target);
  for (let i = first; i < first + count; i++) sink.write(event(i));
  await sink.close();
}

function lines(target = file): string[] {
  return readFileSync(target, 'utf8').split('\n').slice(0, -1);
}

async function verifyFile(target = file) {
  return verifyLedgerStream(readLedgerFile(target));
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** A process that stays alive until killed. */
function liveProcess() {
  return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
}

/** Record the order of fdatasync calls (start and end) against other events. */
async function traceDatasync(log: string[]) {
  const probe = await openFile(path.join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync(): Promise<void> };
  await probe.close();
  const original = proto.datasync;
  return vi.spyOn(proto, 'datasync').mockImplementation(async function (this: unknown) {
    log.push('sync-start');
    await original.call(this);
    log.push('sync-end');
  });
}

describe('FileLedgerSink', () => {
  it('appends chained JSON lines to a new 0600 file (parent directories created)', async () => {
    const target = path.join(dir, 'a', 'b', 'ledger.jsonl');
    const sink = await openLedger(target);
    expect(sink.head).toEqual({ chainId: 'adapter-1', seq: 0, hash: GENESIS_HASH });
    sink.write(event(1));
    await sink.writeDurable(event(2));
    sink.write(event(3));
    await sink.close();
    expect(statSync(target).mode & 0o777).toBe(0o600);
    const records = lines(target).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => [r.seq, r.event_id])).toEqual([
      [1, 'evt-1'],
      [2, 'evt-2'],
      [3, 'evt-3'],
    ]);
    expect(verifyChain(records)).toMatchObject({ ok: true, count: 3 });
    expect(sink.head).toEqual({ chainId: 'adapter-1', seq: 3, hash: records[2]!.record_hash });
    expect(existsSync(`${target}.lock`)).toBe(false);
  });

  it('resumes the chain across reopen: one file, one chain', async () => {
    await writeLedger(3);
    const reopened = await openLedger();
    expect(reopened.head.seq).toBe(3);
    expect(reopened.head.hash).toBe((JSON.parse(lines()[2]!) as { record_hash: string }).record_hash);
    reopened.write(event(4));
    await reopened.writeDurable(event(5));
    await reopened.close();
    await writeLedger(2, file, 6);
    expect(await verifyFile()).toMatchObject({ ok: true, count: 7, head: { chainId: 'adapter-1', seq: 7 } });
  });

  it('reads only the tail on open, not the whole file', async () => {
    await writeLedger(3);
    // Garbage at the start of the file is not looked at (verify would find it).
    const content = readFileSync(file, 'utf8');
    writeFileSync(file, `${'x'.repeat(3 * MAX_LEDGER_LINE_BYTES)}\n${content}`);
    const sink = await openLedger();
    expect(sink.head.seq).toBe(3);
  });

  describe('a crash mid-append', () => {
    it('a torn last line (no newline) is cut off and reported; the chain goes on', async () => {
      await writeLedger(3);
      const intact = statSync(file).size;
      appendFileSync(file, '{"schema":"trustplane-auth-audit-event-v0.1","event_id":"ev');
      const errors: Error[] = [];
      const sink = await openLedger(file, { onError: (e) => errors.push(e) });
      expect(errors).toHaveLength(1);
      expect(errors[0]!.message).toMatch(/torn last line \(\d+ bytes without a newline/);
      expect(statSync(file).size).toBe(intact);
      expect(sink.head.seq).toBe(3);
      await sink.writeDurable(event(4));
      await sink.close();
      expect(await verifyFile()).toMatchObject({ ok: true, count: 4 });
    });

    it('a zero-filled tail (machine crash) is cut off too', async () => {
      await writeLedger(2);
      appendFileSync(file, Buffer.alloc(4096));
      const errors: Error[] = [];
      const sink = await openLedger(file, { onError: (e) => errors.push(e) });
      expect(errors).toHaveLength(1);
      expect(sink.head.seq).toBe(2);
    });

    it('a file holding only a torn line starts the chain', async () => {
      writeFileSync(file, '{"schema":');
      const errors: Error[] = [];
      const sink = await openLedger(file, { onError: (e) => errors.push(e) });
      expect(errors).toHaveLength(1);
      expect(sink.head).toEqual({ chainId: 'adapter-1', seq: 0, hash: GENESIS_HASH });
      expect(statSync(file).size).toBe(0);
    });
  });

  describe('refuses to open rather than start a second chain', () => {
    it('a file of another chain', async () => {
      await writeLedger(2);
      const before = readFileSync(file);
      await expect(FileLedgerSink.open(file, { chainId: 'adapter-2' })).rejects.toThrow(
        `audit ledger ${file} holds chain "adapter-1", not "adapter-2"`,
      );
      expect(readFileSync(file)).toEqual(before);
      // The lock was released: the right chain id opens it.
      expect((await openLedger()).head.seq).toBe(2);
    });

    it.each([
      [
        'an edited last record',
        (l: string) => l.replace('"decision":"allow"', '"decision":"deny"'),
        /modified/,
      ],
      ['a last line that is not JSON', () => 'not json', /not JSON/],
      ['a last line that is not a record', () => '{"hello":"world"}', /missing or invalid chain_id/],
      [
        'a last line with duplicate members',
        (l: string) => l.replace('{', '{"sub":"x",'),
        /not in ledger form/,
      ],
    ])('%s', async (_, edit, why) => {
      await writeLedger(4); // record 4 is an allow
      const all = lines();
      all[3] = edit(all[3]!);
      writeFileSync(file, `${all.join('\n')}\n`);
      const before = readFileSync(file);
      const error = await FileLedgerSink.open(file, { chainId: 'adapter-1' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toContain(`audit ledger ${file} ends with a corrupt record`);
      expect((error as Error).message).toMatch(why);
      expect((error as Error).message).toContain('trustplane audit verify');
      expect(readFileSync(file)).toEqual(before);
      expect(existsSync(`${file}.lock`)).toBe(false);
    });

    it('a last line longer than the line bound', async () => {
      writeFileSync(file, `${'x'.repeat(MAX_LEDGER_LINE_BYTES + 10)}\n`);
      await expect(FileLedgerSink.open(file, { chainId: 'adapter-1' })).rejects.toThrow(/longer than/);
      writeFileSync(file, 'y'.repeat(MAX_LEDGER_LINE_BYTES + 10));
      await expect(FileLedgerSink.open(file, { chainId: 'adapter-1' })).rejects.toThrow(/without a newline/);
    });
  });

  describe('single writer lock', () => {
    it('a second open in this process is refused while the first is open', async () => {
      const first = await openLedger();
      await expect(FileLedgerSink.open(file, { chainId: 'adapter-1' })).rejects.toThrow(
        `audit ledger ${file} is already open in this process (lock ${file}.lock)`,
      );
      await first.close();
      await openLedger();
    });

    it('a lock held by another live process is refused, naming it', async () => {
      const holder = liveProcess();
      try {
        expect(holder.pid).toBeGreaterThan(0);
        writeFileSync(`${file}.lock`, `${holder.pid}\nsomeone-else\n`);
        await expect(FileLedgerSink.open(file, { chainId: 'adapter-1' })).rejects.toThrow(
          `audit ledger ${file} is in use by another process (pid ${holder.pid}`,
        );
        expect(readFileSync(`${file}.lock`, 'utf8')).toBe(`${holder.pid}\nsomeone-else\n`);
      } finally {
        holder.kill('SIGKILL');
        await new Promise((resolve) => holder.once('exit', resolve));
      }
      // its process is gone: the stale lock is taken over
      await openLedger();
      expect(readFileSync(`${file}.lock`, 'utf8').split('\n')[0]).toBe(String(process.pid));
    });

    it('a live pid that started at another time than recorded (pid reused) is stale', async () => {
      const other = liveProcess();
      try {
        writeFileSync(`${file}.lock`, `${other.pid}\nreused\nstart=1\n`);
        await openLedger();
        expect(readFileSync(`${file}.lock`, 'utf8').split('\n')[0]).toBe(String(process.pid));
      } finally {
        other.kill('SIGKILL');
      }
    });
  });

  describe('durability', () => {
    it('writeDurable resolves only after fdatasync has completed', async () => {
      const log: string[] = [];
      const spy = await traceDatasync(log);
      const sink = await openLedger(file, { fsync: 'never' });
      sink.write(event(1));
      await sink.flush();
      log.length = 0;
      spy.mockClear();
      sink.write(event(2));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(spy).not.toHaveBeenCalled(); // 'never': a plain write is not flushed
      await sink.writeDurable(event(3)).then(() => log.push('resolved'));
      expect(log).toEqual(['sync-start', 'sync-end', 'resolved']);
      expect(lines()).toHaveLength(3);
    });

    it('concurrent durable writes share flushes (group commit)', async () => {
      const log: string[] = [];
      const spy = await traceDatasync(log);
      const sink = await openLedger(file, { fsync: 'never' });
      await Promise.all(Array.from({ length: 50 }, (_, i) => sink.writeDurable(event(i + 1))));
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(1);
      expect(spy.mock.calls.length).toBeLessThan(10);
      expect(await verifyFile()).toMatchObject({ ok: true, count: 50 });
    });

    it("fsync 'always' flushes after plain writes; 'interval' within a second", async () => {
      const log: string[] = [];
      const spy = await traceDatasync(log);
      const always = await openLedger(file, { fsync: 'always' });
      always.write(event(1));
      await vi.waitFor(() => expect(log).toContain('sync-end'), { timeout: 2000 });
      await always.close();
      spy.mockClear();
      log.length = 0;
      const interval = await openLedger(path.join(dir, 'interval.jsonl'), { fsync: 'interval' });
      interval.write(event(1));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(spy).not.toHaveBeenCalled();
      await vi.waitFor(() => expect(log).toContain('sync-end'), { timeout: 3000, interval: 50 });
    });

    it('writeDurable rejects with audit_unavailable when the write fails (/dev/full), and the sink stays failed', async () => {
      const full = path.join(dir, 'full.jsonl');
      symlinkSync('/dev/full', full);
      const errors: Error[] = [];
      const sink = await openLedger(full, { onError: (e) => errors.push(e) });
      expect(sink.durableAvailable).toBe(true);
      const error = await sink.writeDurable(event(1)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TrustplaneError);
      expect(error).toMatchObject({ reason: 'audit_unavailable', status: 503 });
      expect((error as Error).message).toMatch(/write failed.*ENOSPC/);
      // A device cannot be cut back: the sink refuses everything until reopened.
      expect(sink.durableAvailable).toBe(false);
      await expect(sink.writeDurable(event(2))).rejects.toMatchObject({ reason: 'audit_unavailable' });
      sink.write(event(3));
      await vi.waitFor(() => expect(errors).toHaveLength(1));
      expect(errors[0]!.message).toMatch(/\(1 event not durably recorded\)/);
      await expect(sink.flush()).rejects.toMatchObject({ reason: 'audit_unavailable' });
    });

    it('writeDurable rejects when fdatasync fails (/dev/null cannot be synced)', async () => {
      const sink = await openLedger(path.join(dir, 'null.jsonl'));
      await sink.close();
      await rm(path.join(dir, 'null.jsonl'));
      symlinkSync('/dev/null', path.join(dir, 'null.jsonl'));
      const errors: Error[] = [];
      const nul = await openLedger(path.join(dir, 'null.jsonl'), { onError: (e) => errors.push(e) });
      nul.write(event(1)); // fsync 'never': written, no flush asked
      await expect(nul.writeDurable(event(2))).rejects.toThrow(/flush failed \(EINVAL\)/);
      expect(nul.durableAvailable).toBe(false);
      await expect(nul.writeDurable(event(3))).rejects.toMatchObject({ reason: 'audit_unavailable' });
    });

    it('a failed write (disk full) is cut back out; the events it lost are counted in a gap record chained by the next write, which verify reports', async () => {
      const probe = await openFile(path.join(dir, 'probe'), 'w');
      const proto = Object.getPrototypeOf(probe) as {
        write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
      };
      await probe.close();
      const original = proto.write;
      let full = false;
      vi.spyOn(proto, 'write').mockImplementation(async function (
        this: unknown,
        buffer: Buffer,
        offset: number,
        length: number,
      ) {
        if (full) {
          // A partial write first, as on a disk that fills up mid-append, then ENOSPC.
          full = false;
          await original.call(this, buffer, offset, Math.min(length, 10));
          throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        }
        return original.call(this, buffer, offset, length);
      });
      const errors: Error[] = [];
      const sink = await openLedger(file, { onError: (e) => errors.push(e) });
      for (let i = 1; i <= 3; i++) sink.write(event(i));
      await sink.flush();
      full = true;
      for (let i = 4; i <= 8; i++) sink.write(event(i));
      await vi.waitFor(() => expect(errors).toHaveLength(1));
      expect(errors[0]).toMatchObject({ reason: 'ledger_unavailable' });
      expect(errors[0]!.message).toMatch(/\(5 events not durably recorded\)/);
      expect(sink.health()).toEqual({ ok: false, reason: 'write_failed' });
      expect(sink.pendingLost).toBe(5);
      expect(lines()).toHaveLength(3); // the torn append was cut back out
      sink.write(event(9));
      await sink.flush();
      expect(sink.health()).toEqual({ ok: true });
      expect(sink.pendingLost).toBe(0);
      await sink.close();
      const records = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(records.map((r) => r.event_id ?? r.event_type)).toEqual([
        'evt-1',
        'evt-2',
        'evt-3',
        records[3]!.event_id,
        'evt-9',
      ]);
      expect(records[3]).toMatchObject({
        schema: 'trustplane-ledger-gap-v1',
        reason: 'ledger_event_dropped',
        lost: 5,
        seq: 4,
      });
      expect(await verifyFile()).toMatchObject({
        ok: true,
        count: 5,
        gaps: { records: 1, lost: 5, listed: [{ seq: 4, reason: 'ledger_event_dropped', lost: 5 }] },
      });
    });

    it('an event that cannot be chained is refused alone; the chain is unharmed', async () => {
      const errors: Error[] = [];
      const sink = await openLedger(file, { onError: (e) => errors.push(e) });
      await expect(sink.writeDurable(event(1, { detail: 10n }))).rejects.toThrow(TypeError);
      await expect(
        sink.writeDurable(event(1, { detail: 'x'.repeat(MAX_LEDGER_LINE_BYTES) })),
      ).rejects.toThrow(RangeError);
      sink.write(event(1, { path: new Date() }));
      await sink.writeDurable(event(2));
      expect(errors).toHaveLength(1);
      expect(sink.durableAvailable).toBe(true);
      await sink.close();
      // The unawaited event that was refused is not forgotten: a gap record counts it.
      expect(await verifyFile()).toMatchObject({
        ok: true,
        count: 2,
        gaps: { records: 1, lost: 1, listed: [{ seq: 2, reason: 'ledger_event_dropped', lost: 1 }] },
      });
    });
  });

  it('attack: write race — concurrent callers are chained and written in call order', async () => {
    const sink = await openLedger(file, { fsync: 'always' });
    const pending: Promise<void>[] = [];
    for (let i = 1; i <= 600; i++) {
      if (i % 7 === 0) pending.push(sink.writeDurable(event(i)));
      else sink.write(event(i));
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(pending);
    await sink.close();
    const records = lines().map((l) => JSON.parse(l) as { seq: number; event_id: string });
    expect(records.map((r) => r.event_id)).toEqual(Array.from({ length: 600 }, (_, i) => `evt-${i + 1}`));
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    expect(await verifyFile()).toMatchObject({ ok: true, count: 600 });
  });

  it('close flushes, releases the lock, is idempotent; later writes fail', async () => {
    const errors: Error[] = [];
    const sink = await openLedger(file, { onError: (e) => errors.push(e) });
    sink.write(event(1));
    await Promise.all([sink.close(), sink.close()]);
    expect(lines()).toHaveLength(1);
    expect(existsSync(`${file}.lock`)).toBe(false);
    expect(sink.durableAvailable).toBe(false);
    await expect(sink.writeDurable(event(2))).rejects.toThrow('audit ledger is closed');
    sink.write(event(3));
    expect(errors).toHaveLength(1);
  });

  it('refuses invalid options', async () => {
    await expect(FileLedgerSink.open('', { chainId: 'a' })).rejects.toThrow(TypeError);
    await expect(FileLedgerSink.open(file, { chainId: '' })).rejects.toThrow(TypeError);
    await expect(FileLedgerSink.open(file, { chainId: 'a'.repeat(257) })).rejects.toThrow(TypeError);
    await expect(
      FileLedgerSink.open(file, {
        chainId: 'a',
        fsync: 'sometimes' as FileLedgerSinkOptions['fsync'] & string,
      }),
    ).rejects.toThrow(RangeError);
    expect(existsSync(file)).toBe(false);
  });
});

describe('verify of a ledger file (readLedgerFile + verifyLedgerStream)', () => {
  beforeEach(async () => {
    await writeLedger(6);
  });

  function rewrite(edit: (all: string[]) => string[]): void {
    writeFileSync(file, `${edit(lines()).join('\n')}\n`);
  }

  it('an untouched file verifies, with its head', async () => {
    const last = JSON.parse(lines()[5]!) as { record_hash: string };
    expect(await verifyFile()).toEqual({
      ok: true,
      count: 6,
      head: { chainId: 'adapter-1', seq: 6, hash: last.record_hash },
    });
  });

  it.each([1, 2, 3, 4, 5, 6])('attack: editing line %i is detected at that position', async (position) => {
    rewrite((all) => all.map((l, i) => (i === position - 1 ? l.replace(/"status":\d+/, '"status":503') : l)));
    expect((await verifyFile()).firstBreak).toMatchObject({
      position,
      seq: position,
      problem: 'record_hash_mismatch',
    });
  });

  it.each([1, 3, 5])('attack: deleting line %i gives seq_gap at that position', async (position) => {
    rewrite((all) => all.filter((_, i) => i !== position - 1));
    expect((await verifyFile()).firstBreak).toMatchObject({
      position,
      seq: position + 1,
      problem: 'seq_gap',
    });
  });

  it.each([
    [1, 2],
    [3, 4],
    [2, 6],
  ])('attack: swapping lines %i and %i is detected at %i', async (a, b) => {
    rewrite((all) => {
      [all[a - 1], all[b - 1]] = [all[b - 1]!, all[a - 1]!];
      return all;
    });
    expect((await verifyFile()).firstBreak).toMatchObject({ position: a, seq: b, problem: 'seq_gap' });
  });

  it.each([
    ['a line that is not JSON', () => '{"seq":', 'line is not JSON'],
    ['an empty line', () => '', 'empty line'],
    [
      'a line with a duplicate member',
      (l: string) => l.replace('{', '{"decision":"deny",'),
      'line is not in ledger form (duplicate members, or reformatted)',
    ],
    [
      'a reformatted line',
      (l: string) => l.replace(/,"/g, ', "'),
      'line is not in ledger form (duplicate members, or reformatted)',
    ],
    ['a line that is a JSON array', () => '[1,2]', 'not a JSON object'],
  ])('attack: %s is malformed_record at its position', async (_, edit, message) => {
    rewrite((all) => all.map((l, i) => (i === 2 ? edit(l) : l)));
    expect((await verifyFile()).firstBreak).toMatchObject({
      position: 3,
      problem: 'malformed_record',
      message,
    });
  });

  it('a line longer than the bound is unreadable at its position; reading goes on', async () => {
    rewrite((all) => [...all.slice(0, 2), 'x'.repeat(MAX_LEDGER_LINE_BYTES + 1), ...all.slice(2)]);
    expect((await verifyFile()).firstBreak).toMatchObject({
      position: 3,
      problem: 'malformed_record',
      message: `line longer than ${MAX_LEDGER_LINE_BYTES} bytes`,
    });
    const values = await collect(readLedgerFile(file));
    expect(values).toHaveLength(7);
    expect(values[2]).toBeInstanceOf(UnreadableRecord);
    expect(values[3]).toMatchObject({ seq: 3 });
  });

  it('bytes that are not UTF-8 make the line unreadable', async () => {
    const all = lines();
    writeFileSync(
      file,
      Buffer.concat([
        Buffer.from(`${all[0]}\n`),
        Buffer.from([0xff, 0xfe, 0x0a]),
        Buffer.from(`${all[1]}\n`),
      ]),
    );
    expect((await verifyFile()).firstBreak).toMatchObject({ position: 2, message: 'line is not UTF-8' });
  });

  it('a last line without a newline is read as it is', async () => {
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, -1));
    expect(await verifyFile()).toMatchObject({ ok: true, count: 6 });
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, -10));
    expect((await verifyFile()).firstBreak).toMatchObject({ position: 6, problem: 'malformed_record' });
  });

  it('a missing file fails while reading', async () => {
    await expect(verifyFile(path.join(dir, 'missing.jsonl'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('StdoutLedgerSink', () => {
  it('writes chained lines to the stream and has no writeDurable', async () => {
    const stream = new PassThrough();
    let out = '';
    stream.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const sink = new StdoutLedgerSink({ chainId: 'stdout-1', stream });
    expect('writeDurable' in sink).toBe(false);
    for (let i = 1; i <= 4; i++) sink.write(event(i));
    await sink.close();
    const records = out
      .split('\n')
      .slice(0, -1)
      .map((l) => JSON.parse(l) as unknown);
    expect(verifyChain(records)).toMatchObject({ ok: true, count: 4, head: { chainId: 'stdout-1', seq: 4 } });
    expect(sink.head.seq).toBe(4);
  });

  it('continues from a head; an unchainable event goes to onError and does not break the chain', () => {
    const stream = new PassThrough();
    const chunks: string[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
    const errors: Error[] = [];
    const head = { chainId: 'stdout-1', seq: 10, hash: 'a'.repeat(64) };
    const sink = new StdoutLedgerSink({
      chainId: 'stdout-1',
      stream,
      from: head,
      onError: (e) => errors.push(e),
    });
    sink.write(event(1, { detail: 1n }));
    sink.write(event(2));
    expect(errors).toHaveLength(1);
    expect(sink.head.seq).toBe(11);
    expect(() => new StdoutLedgerSink({ chainId: 'x', from: head })).toThrow(TypeError);
    expect(() => new StdoutLedgerSink({ chainId: '' })).toThrow(TypeError);
  });
});

describe('queryRecords and formatTable', () => {
  beforeEach(async () => {
    await writeLedger(12);
  });

  const query = (filter: Parameters<typeof queryRecords>[1]) =>
    collect(queryRecords(readLedgerFile(file), filter)).then((rs) => rs.map((r) => r.event_id));

  it('filters on every field, combined with AND', async () => {
    expect(await query({})).toHaveLength(12);
    expect(await query({ decision: 'deny' })).toEqual(['evt-2', 'evt-5', 'evt-8', 'evt-11']);
    expect(await query({ decision: 'deny', routeId: 'orders.create' })).toEqual(['evt-2', 'evt-8']);
    expect(await query({ sub: 'service:client-1' })).toEqual(['evt-1', 'evt-5', 'evt-9']);
    expect(await query({ jti: 'jti-7' })).toEqual(['evt-7']);
    expect(await query({ iss: 'https://issuer.example', reason: 'jti_replay', limit: 2 })).toEqual([
      'evt-2',
      'evt-5',
    ]);
    expect(await query({ eventType: 'passport_issued' })).toEqual([]);
    expect(await query({ iss: 'https://other.example' })).toEqual([]);
  });

  it('since is inclusive, until exclusive', async () => {
    const at = (i: number) => new Date(T0 + i * 1000);
    expect(await query({ since: at(10) })).toEqual(['evt-10', 'evt-11', 'evt-12']);
    expect(await query({ until: at(3) })).toEqual(['evt-1', 'evt-2']);
    expect(await query({ since: at(4), until: at(6) })).toEqual(['evt-4', 'evt-5']);
  });

  it('skips unreadable lines and reports them; stops reading at limit', async () => {
    appendFileSync(file, 'garbage\n[1]\n');
    const skipped: [number, string][] = [];
    const all = await collect(
      queryRecords(readLedgerFile(file), {}, { onSkipped: (p, why) => skipped.push([p, why]) }),
    );
    expect(all).toHaveLength(12);
    expect(skipped).toEqual([
      [13, 'line is not JSON'],
      [14, 'not a JSON object'],
    ]);
    const limited = await collect(
      queryRecords(readLedgerFile(file), { limit: 1 }, { onSkipped: () => skipped.push([0, '']) }),
    );
    expect(limited).toHaveLength(1);
    expect(skipped).toHaveLength(2);
  });

  it('refuses a bad limit or date eagerly', () => {
    expect(() => queryRecords([], { limit: 0 })).toThrow(RangeError);
    expect(() => queryRecords([], { limit: 1.5 })).toThrow(RangeError);
    expect(() => queryRecords([], { since: new Date('nope') })).toThrow(RangeError);
  });

  it('formatTable: fixed-width columns, - for absent, no control characters, long cells cut', () => {
    const rows: QueriedRecord[] = [
      { time: '2026-01-31T12:00:01.000Z', decision: 'allow', status: 200 },
      { time: '2026-01-31T12:00:02.000Z', decision: 'deny', status: 401, reason: 'jti_replay' },
      { decision: 'deny\u001b[31m\u202e', status: 403, reason: 'x'.repeat(100) },
    ];
    const table = formatTable(rows, ['time', 'decision', 'status', 'reason'], { maxWidth: 24 });
    expect(table).toBe(
      [
        'time                      decision    status  reason',
        '2026-01-31T12:00:01.000Z  allow       200     -',
        '2026-01-31T12:00:02.000Z  deny        401     jti_replay',
        `-                         deny?[31m?  403     ${'x'.repeat(23)}…`,
        '',
      ].join('\n'),
    );
    // eslint-disable-next-line no-control-regex
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(formatTable([], ['time'])).toBe('time\n');
    expect(() => formatTable([], [])).toThrow(RangeError);
  });
});
