import { fork, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { encode, Encoder } from 'cbor-x';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  JournalReplayStore,
  type JournalReplayStoreEvent,
  type JournalReplayStoreOptions,
} from '../../pkg/replay/journal-store.js';
import {
  encodeJournalRecord,
  JOURNAL_HEADER,
  META_FAIL_CLOSED_UNTIL,
  META_HORIZON,
} from '../../pkg/replay/journal-reader.js';
import { TrustplaneError } from '../../pkg/authcore/index.js';

const NOW = 1_767_225_600;

let dir: string;
let journal: string;
const opened: JournalReplayStore[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'trustplane-journal-'));
  journal = path.join(dir, 'replay.cbor');
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

async function open(
  file = journal,
  options: JournalReplayStoreOptions & { at?: number } = {},
): Promise<JournalReplayStore> {
  const { at = NOW, ...rest } = options;
  const store = await JournalReplayStore.open(file, { fsync: 'never', now: () => at, ...rest });
  opened.push(store);
  return store;
}

/** A record of a format-1 journal (before checksums): `[key, expiresAt]`. */
function record(key: string, expiresAt: number): Buffer {
  return Buffer.from(encode([key, expiresAt]));
}

const encoder = new Encoder({ useRecords: false });

/** A record of a format-2 journal: `[key, expiresAt, crc32]`. */
function entry(key: string, expiresAt: number): Buffer {
  return encodeJournalRecord(encoder, key, expiresAt);
}

/** What a compaction writes: the header, the horizon (never below 0), then the live entries. */
function compacted(horizonAt: number, ...entries: ReadonlyArray<readonly [string, number]>): Buffer {
  return Buffer.concat([
    JOURNAL_HEADER,
    encodeJournalRecord(encoder, META_HORIZON, Math.max(0, horizonAt)),
    ...entries.map(([key, expiresAt]) => entry(key, expiresAt)),
  ]);
}

/** A pid that belonged to a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  expect(child.pid).toBeGreaterThan(0);
  return child.pid ?? 0;
}

async function expectUnavailable(promise: Promise<unknown>): Promise<void> {
  const error: unknown = await promise.then(
    (value) => ({ resolved: value }),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TrustplaneError);
  expect(error).toMatchObject({ reason: 'replay_store_unavailable', status: 503 });
}

describe('JournalReplayStore', () => {
  it('first consume is true, second is false', async () => {
    const store = await open();
    expect(await store.consume('iss|jti-1', NOW + 60, NOW)).toBe(true);
    expect(await store.consume('iss|jti-1', NOW + 60, NOW)).toBe(false);
    expect(await store.consume('iss|jti-1', NOW + 60, NOW + 59)).toBe(false);
    expect(await store.consume('iss|jti-2', NOW + 60, NOW)).toBe(true);
    expect(store.size).toBe(2);
  });

  it('creates a missing parent directory', async () => {
    const nested = path.join(dir, 'a', 'b', 'replay.cbor');
    const store = await open(nested);
    expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
    expect(statSync(nested).size).toBeGreaterThan(0);
  });

  it('journals before answering true: the record is in the file when consume resolves', async () => {
    const store = await open();
    const before = statSync(journal).size;
    expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
    expect(statSync(journal).size - before).toBe(entry('k', NOW + 60).length);
    expect(
      readFileSync(journal)
        .subarray(before)
        .equals(entry('k', NOW + 60)),
    ).toBe(true);
    expect(await store.consume('k', NOW + 60, NOW)).toBe(false);
    expect(statSync(journal).size - before).toBe(entry('k', NOW + 60).length);
  });

  it.each(['always', 'interval', 'never'] as const)(
    'survives close and reopen (fsync %s): a consumed key stays refused, an expired one is accepted again',
    async (fsync) => {
      const first = await open(journal, { fsync });
      expect(await first.consume('long', NOW + 600, NOW)).toBe(true);
      expect(await first.consume('short', NOW + 10, NOW)).toBe(true);
      await first.close();

      // Past short's expiry and the 120 s sweep grace. It is kept at open all the same: it expired
      // less than one window (660 s) before the latest expiry in the journal, so a clock stepped
      // forward could not be told from a late restart; the first sweep drops it.
      const second = await open(journal, { fsync, at: NOW + 140 });
      expect(second.size).toBe(2);
      expect(await second.consume('long', NOW + 700, NOW + 140)).toBe(false);
      expect(await second.consume('short', NOW + 700, NOW + 140)).toBe(true);
      await second.close();

      const third = await open(journal, { fsync, at: NOW + 150 });
      expect(await third.consume('short', NOW + 700, NOW + 150)).toBe(false);
    },
  );

  it('the latest expiry of a re-consumed key wins when loading', async () => {
    writeFileSync(
      journal,
      Buffer.concat([record('k', NOW - 5), record('k', NOW + 100), record('k', NOW + 50)]),
    );
    const store = await open(journal, { at: NOW + 60 });
    expect(await store.consume('k', NOW + 200, NOW + 60)).toBe(false);
  });

  describe('crash recovery', () => {
    const partial = record('c', NOW + 60);
    it.each(Array.from({ length: partial.length - 1 }, (_, i) => i + 1))(
      'a truncated trailing record (%i bytes of it) is tolerated and dropped',
      async (bytes) => {
        const whole = Buffer.concat([record('a', NOW + 60), record('b', NOW + 60)]);
        writeFileSync(journal, Buffer.concat([whole, partial.subarray(0, bytes)]));
        const store = await open();
        // read as format 1, rewritten as format 2 (horizon: the latest expiry - 660 s - 120 s grace)
        expect(readFileSync(journal)).toEqual(compacted(NOW - 720, ['a', NOW + 60], ['b', NOW + 60]));
        expect(await store.consume('a', NOW + 60, NOW)).toBe(false);
        expect(await store.consume('b', NOW + 60, NOW)).toBe(false);
        expect(await store.consume('c', NOW + 60, NOW)).toBe(true);
        await store.close();
        const again = await open();
        expect(await again.consume('c', NOW + 60, NOW)).toBe(false);
      },
    );

    it('a truncated record with a long key is tolerated', async () => {
      const long = record('x'.repeat(300), NOW + 60);
      writeFileSync(journal, Buffer.concat([record('a', NOW + 60), long.subarray(0, 200)]));
      const store = await open();
      expect(await store.consume('a', NOW + 60, NOW)).toBe(false);
      expect(store.size).toBe(1);
    });

    it('a zero-filled tail (a machine crash on some filesystems) is tolerated', async () => {
      writeFileSync(journal, Buffer.concat([record('a', NOW + 60), Buffer.alloc(64)]));
      const store = await open();
      expect(await store.consume('a', NOW + 60, NOW)).toBe(false);
      expect(readFileSync(journal)).toEqual(compacted(NOW - 720, ['a', NOW + 60]));
    });

    it('an empty journal file opens empty and fails closed for one window (the store never leaves one)', async () => {
      writeFileSync(journal, '');
      const seen: JournalReplayStoreEvent[] = [];
      const store = await open(journal, { onEvent: (e) => seen.push(e) });
      expect(store.size).toBe(0);
      expect(seen).toEqual([{ type: 'amnesia', cause: 'empty_journal', until: NOW + 660 }]);
      await expect(store.consume('k', NOW + 60, NOW)).rejects.toMatchObject({
        reason: 'replay_store_amnesia',
      });
      // the window is journaled: the rewritten journal is not empty, and a restart keeps the window
      await store.close();
      expect(readFileSync(journal).subarray(0, JOURNAL_HEADER.length)).toEqual(Buffer.from(JOURNAL_HEADER));
      const again = await open();
      expect(await again.health()).toEqual({ ok: false, reason: 'amnesia' });
    });

    it('a missing journal opens empty and healthy, and is created with its header (never empty)', async () => {
      const store = await open();
      expect(await store.health()).toEqual({ ok: true });
      expect(readFileSync(journal).subarray(0, JOURNAL_HEADER.length)).toEqual(Buffer.from(JOURNAL_HEADER));
    });
  });

  describe('corrupt journal', () => {
    const good = record('a', NOW + 60);
    const cases: ReadonlyArray<readonly [string, Buffer]> = [
      ['garbage between records', Buffer.concat([good, Buffer.from([0xff, 0x00]), good])],
      ['a record that is not an array', Buffer.concat([good, Buffer.from(encode({ k: 1 })), good])],
      ['a record of the wrong length', Buffer.concat([good, Buffer.from(encode(['k', 1, 2])), good])],
      ['a record with a numeric key', Buffer.concat([good, Buffer.from(encode([7, NOW])), good])],
      ['a record with a text expiry', Buffer.concat([good, Buffer.from(encode(['k', 'soon'])), good])],
      // tag 27 makes cbor-x call a global function by name: the scanner must never hand it over
      ['attack: CBOR tag 27 (generic object) in place of a record', Buffer.from([0xd8, 0x1b, 0x82, 0x64])],
      [
        'a key longer than any record ever written',
        Buffer.concat([Buffer.from([0x82, 0x79, 0x10, 0x00]), good]),
      ],
      ['a non-zero tail after a zero byte', Buffer.concat([good, Buffer.from([0x00, 0x01])])],
    ];
    it.each(cases)('%s: open rejects with an error naming the file and offset', async (_name, data) => {
      writeFileSync(journal, data);
      const error: unknown = await JournalReplayStore.open(journal, { now: () => NOW }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toContain(journal);
      expect((error as Error).message).toMatch(/is corrupt/);
      // the file is left as it was, and the lock is released
      expect(readFileSync(journal).equals(data)).toBe(true);
      expect(existsSync(`${journal}.lock`)).toBe(false);
    });

    it('names the byte offset of the first bad record', async () => {
      writeFileSync(journal, Buffer.concat([good, good, Buffer.from([0xa1]), good]));
      await expect(JournalReplayStore.open(journal, { now: () => NOW })).rejects.toThrow(
        `is corrupt at byte ${2 * good.length}`,
      );
    });
  });

  describe('compaction', () => {
    it('open drops expired entries and the file shrinks', async () => {
      const store = await open();
      for (let i = 0; i < 100; i++) expect(await store.consume(`short-${i}`, NOW + 10, NOW)).toBe(true);
      expect(await store.consume('long', NOW + 1000, NOW)).toBe(true);
      await store.close();
      const before = statSync(journal).size;

      // Past the short entries' expiry and the 120 s sweep grace.
      const reopened = await open(journal, { at: NOW + 140 });
      const after = statSync(journal).size;
      expect(readFileSync(journal)).toEqual(compacted(NOW + 20, ['long', NOW + 1000]));
      expect(after).toBeLessThan(before);
      expect(reopened.size).toBe(1);
      expect(await reopened.consume('long', NOW + 1000, NOW + 140)).toBe(false);
      expect(await reopened.consume('short-0', NOW + 1000, NOW + 140)).toBe(true);
      expect(existsSync(`${journal}.tmp`)).toBe(false);
    });

    it('runs while consuming once the journal holds more than max(10,000, 2 × live) records', async () => {
      const store = await open();
      for (let i = 0; i < 10_000; i++) expect(await store.consume(`k${i}`, NOW + 1, NOW)).toBe(true);
      const full = statSync(journal).size;
      expect(full).toBeGreaterThan(10_000 * 8);

      // 200 s later every earlier key has expired (beyond the 120 s sweep grace): the 10,001st
      // record triggers a compaction.
      expect(await store.consume('late', NOW + 500, NOW + 200)).toBe(true);
      expect(readFileSync(journal)).toEqual(compacted(NOW + 80, ['late', NOW + 500]));
      // the store keeps appending to the compacted file
      expect(await store.consume('later', NOW + 500, NOW + 200)).toBe(true);
      expect(await store.consume('late', NOW + 500, NOW + 201)).toBe(false);
      await store.close();

      const reopened = await open(journal, { at: NOW + 200 });
      expect(reopened.size).toBe(2);
      expect(await reopened.consume('late', NOW + 500, NOW + 200)).toBe(false);
      expect(await reopened.consume('later', NOW + 500, NOW + 200)).toBe(false);
    });

    it('does not compact while most records are live', async () => {
      const store = await open();
      for (let i = 0; i < 10_050; i++) expect(await store.consume(`k${i}`, NOW + 600, NOW)).toBe(true);
      const size = statSync(journal).size;
      expect(await store.consume('one-more', NOW + 600, NOW + 1)).toBe(true);
      expect(statSync(journal).size).toBe(size + entry('one-more', NOW + 600).length);
    });
  });

  it('attack: a restart a day ahead, then the clock back: the jti is kept (it may still be live) and stays refused', async () => {
    const first = await open();
    expect(await first.consume('a', NOW + 330, NOW)).toBe(true);
    await first.close();
    const ahead = await open(journal, { at: NOW + 86_400 });
    expect(ahead.size).toBe(1);
    await ahead.close();
    const back = await open(journal, { at: NOW });
    expect(await back.consume('a', NOW + 330, NOW)).toBe(false);
    expect(await back.consume('fresh', NOW + 330, NOW)).toBe(true);
    expect(await back.consume('late', NOW + 90_000, NOW)).toBe(true);
  });

  it('attack: a jti dropped under a clock a day ahead (journaled horizon) stays refused once the clock is back', async () => {
    // A format-1 journal whose last life ran a day ahead and swept the key away: only its horizon is left.
    writeFileSync(
      journal,
      Buffer.concat([record('', NOW + 86_400 - 120), record('other', NOW + 86_400 + 300)]),
    );
    const back = await open(journal, { at: NOW });
    expect(await back.consume('a', NOW + 330, NOW)).toBe(false);
  });

  describe('single writer lock', () => {
    it('a second open while the first is open throws', async () => {
      const store = await open();
      expect(readFileSync(`${journal}.lock`, 'utf8').split('\n')[0]).toBe(String(process.pid));
      await expect(JournalReplayStore.open(journal, { now: () => NOW })).rejects.toThrow(
        /replay journal .* is already open in this process/,
      );
      // the first store is unaffected
      expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
    });

    it('a lock held by another live process is refused, naming it', async () => {
      const holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      try {
        expect(holder.pid).toBeGreaterThan(0);
        writeFileSync(`${journal}.lock`, `${holder.pid}\nsomeone-else\n`);
        await expect(JournalReplayStore.open(journal, { now: () => NOW })).rejects.toThrow(
          `replay journal ${journal} is in use by another process (pid ${holder.pid}`,
        );
        expect(readFileSync(`${journal}.lock`, 'utf8')).toBe(`${holder.pid}\nsomeone-else\n`);
      } finally {
        holder.kill('SIGKILL');
        await new Promise((resolve) => holder.once('exit', resolve));
      }
      // its process is gone: the lock is now stale and taken over
      const store = await open();
      expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
    });

    it('a lock naming our own pid that this process does not hold (a restarted pid 1) is taken over', async () => {
      writeFileSync(`${journal}.lock`, `${process.pid}\nprevious-life\nstart=1\n`);
      const store = await open();
      expect(readFileSync(`${journal}.lock`, 'utf8')).not.toContain('previous-life');
      expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
    });

    it('a lock whose live pid started at another time than recorded (pid reused) is taken over', async () => {
      const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      try {
        writeFileSync(`${journal}.lock`, `${other.pid}\nreused\nstart=1\n`);
        const store = await open();
        expect(readFileSync(`${journal}.lock`, 'utf8').split('\n')[0]).toBe(String(process.pid));
        expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
        await store.close();
        // With the holder's real start time recorded, the same live pid is respected.
        const start = readFileSync(`/proc/${other.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
        writeFileSync(`${journal}.lock`, `${other.pid}\nlive\nstart=${start}\n`);
        await expect(JournalReplayStore.open(journal, { now: () => NOW })).rejects.toThrow(
          /in use by another process/,
        );
      } finally {
        other.kill('SIGKILL');
        await new Promise((resolve) => other.once('exit', resolve));
      }
    });

    it('a stale lock from a dead pid is taken over', async () => {
      const pid = await deadPid();
      writeFileSync(`${journal}.lock`, `${pid}\nold\n`);
      const store = await open();
      expect(readFileSync(`${journal}.lock`, 'utf8').split('\n')[0]).toBe(String(process.pid));
      expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
    });

    it.each(['', 'garbage', '-1\n', '0\n'])('a garbled lock file %j counts as stale', async (content) => {
      writeFileSync(`${journal}.lock`, content);
      const store = await open();
      expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
    });

    it('close flushes, releases the lock, and is idempotent; the journal can be reopened', async () => {
      const store = await open();
      expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
      await store.close();
      await store.close();
      expect(existsSync(`${journal}.lock`)).toBe(false);
      const again = await open();
      expect(await again.consume('k', NOW + 60, NOW)).toBe(false);
    });

    it('close does not remove a lock that is no longer its own', async () => {
      const store = await open();
      writeFileSync(`${journal}.lock`, '999999\nnot-ours\n');
      await store.close();
      expect(readFileSync(`${journal}.lock`, 'utf8')).toBe('999999\nnot-ours\n');
    });
  });

  describe('fails closed', () => {
    it('after close, consume and ping reject with replay_store_unavailable', async () => {
      const store = await open();
      await expect(store.ping()).resolves.toBeUndefined();
      expect(await store.health()).toEqual({ ok: true });
      await store.close();
      expect(await store.health()).toEqual({ ok: false, reason: 'unavailable' });
      await expectUnavailable(store.ping());
      await expectUnavailable(store.consume('fresh', NOW + 60, NOW));
    });

    it('a failing journal write rejects with replay_store_unavailable and never answers true', async () => {
      const store = await open();
      expect(await store.consume('before', NOW + 60, NOW)).toBe(true);

      // Swap the journal's descriptor for /dev/full (every write fails with ENOSPC, like a full disk).
      const target = realpathSync(journal);
      const fds = readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === target;
        } catch {
          return false;
        }
      });
      expect(fds).toHaveLength(1);
      const fd = Number(fds[0]);
      closeSync(fd);
      expect(openSync('/dev/full', 'a')).toBe(fd);

      await expectUnavailable(store.consume('during', NOW + 60, NOW));
      // the failed write could not be rolled back (a device cannot be truncated): the store stays
      // unavailable, for new keys and for the key of the failed write alike
      await expectUnavailable(store.consume('during', NOW + 60, NOW));
      await expectUnavailable(store.consume('after', NOW + 60, NOW));
      await expectUnavailable(store.ping());
      // a replay is still refused rather than answered
      await expectUnavailable(store.consume('before', NOW + 60, NOW));
      expect(await store.health()).toEqual({ ok: false, reason: 'journal_write_failed' });
    });

    it('a short write (file size limit) is rolled back: consume rejects, the journal stays readable', async () => {
      // A child with RLIMIT_FSIZE = 8 KiB: the append that crosses it is written partially, then fails
      // with EFBIG (Node ignores SIGXFSZ). The store must cut the partial record off again.
      const script = path.join(dir, 'limited.mts');
      const moduleUrl = pathToFileURL(path.resolve('pkg/replay/journal-store.ts')).href;
      writeFileSync(
        script,
        [
          `const { JournalReplayStore } = await import(${JSON.stringify(moduleUrl)});`,
          `const store = await JournalReplayStore.open(process.argv[2], { fsync: 'never', now: () => ${NOW} });`,
          `const acknowledged = [];`,
          `let failure;`,
          `for (let i = 0; i < 10_000 && failure === undefined; i++) {`,
          `  const key = 'key-' + String(i).padStart(6, '0');`, // 17-byte records: 8 KiB is not a multiple
          `  try { if (await store.consume(key, ${NOW + 600}, ${NOW})) acknowledged.push(key); }`,
          `  catch (e) { failure = { key, reason: e.reason, error: e.details?.error }; }`,
          `}`,
          `const healthy = await store.ping().then(() => true, () => false);`,
          `const health = await store.health();`,
          `const retry = await store.consume('retry-0000', ${NOW + 600}, ${NOW}).then(String, (e) => e.reason);`,
          `await store.close();`,
          `console.log(JSON.stringify({ acknowledged, failure, healthy, health, retry }));`,
        ].join('\n'),
      );
      const child = spawn(
        'sh',
        ['-c', 'ulimit -f 16 && exec "$0" "$@"', process.execPath, '--import', 'tsx', script, journal],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TSX_DISABLE_CACHE: '1' } },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise((resolve) => child.once('exit', resolve));
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const result = JSON.parse(stdout) as {
        acknowledged: string[];
        failure?: { key: string; reason: string; error: string };
        healthy: boolean;
        health: unknown;
        retry: string;
      };
      expect(result.failure).toMatchObject({ reason: 'replay_store_unavailable', error: 'EFBIG' });
      expect(result.acknowledged.length).toBeGreaterThan(100);
      // rolled back, so the store is still usable (this write fails again, for lack of room)
      expect(result.healthy).toBe(true);
      expect(result.retry).toBe('replay_store_unavailable');
      // readiness says so (its probe write fails too: the disk still refuses)
      expect(result.health).toEqual({ ok: false, reason: 'journal_write_failed' });
      // every byte on disk is a whole record
      expect(readFileSync(journal)).toEqual(
        compacted(Number.NEGATIVE_INFINITY, ...result.acknowledged.map((key) => [key, NOW + 600] as const)),
      );

      const store = await open();
      expect(store.size).toBe(result.acknowledged.length);
      const replays = await Promise.all(result.acknowledged.map((key) => store.consume(key, NOW + 600, NOW)));
      expect(replays.filter(Boolean)).toEqual([]);
      // the failed key was never accepted, so it was never journaled
      expect(await store.consume(result.failure?.key ?? '', NOW + 600, NOW)).toBe(true);
    });

    it('a store full of live entries refuses new keys with replay_store_unavailable', async () => {
      const store = await open(journal, { maxEntries: 2 });
      expect(await store.consume('a', NOW + 60, NOW)).toBe(true);
      expect(await store.consume('b', NOW + 60, NOW)).toBe(true);
      await expectUnavailable(store.consume('c', NOW + 60, NOW));
      expect(await store.consume('a', NOW + 60, NOW)).toBe(false);
    });

    it('a journal with more live entries than maxEntries refuses to open', async () => {
      writeFileSync(
        journal,
        Buffer.concat([record('a', NOW + 60), record('b', NOW + 60), record('c', NOW + 60)]),
      );
      await expect(JournalReplayStore.open(journal, { maxEntries: 2, now: () => NOW })).rejects.toThrow(
        `replay journal ${journal} holds more live entries than maxEntries (2)`,
      );
      expect(existsSync(`${journal}.lock`)).toBe(false);
    });
  });

  describe('caller misuse', () => {
    it('rejects bad options eagerly', async () => {
      await expect(
        JournalReplayStore.open(journal, { fsync: 'sometimes' as unknown as 'always' }),
      ).rejects.toBeInstanceOf(RangeError);
      await expect(JournalReplayStore.open(journal, { maxEntries: 0 })).rejects.toBeInstanceOf(RangeError);
      await expect(JournalReplayStore.open('')).rejects.toBeInstanceOf(TypeError);
      expect(existsSync(`${journal}.lock`)).toBe(false);
    });

    it('rejects malformed keys and times without journaling them', async () => {
      const store = await open();
      const size = statSync(journal).size;
      await expect(store.consume('', NOW + 60, NOW)).rejects.toBeInstanceOf(TypeError);
      await expect(store.consume('k'.repeat(1025), NOW + 60, NOW)).rejects.toBeInstanceOf(RangeError);
      await expect(store.consume('k', Number.NaN, NOW)).rejects.toBeInstanceOf(RangeError);
      await expect(store.consume('k', NOW + 60, Number.POSITIVE_INFINITY)).rejects.toBeInstanceOf(RangeError);
      expect(statSync(journal).size).toBe(size);
      expect(await store.consume('k'.repeat(1024), NOW + 60, NOW)).toBe(true);
    });
  });

  it('attack: replay race: 200 concurrent consumes of one key, exactly one wins, also after a restart', async () => {
    const store = await open();
    const results = await Promise.all(
      Array.from({ length: 200 }, () => store.consume('race', NOW + 60, NOW)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    await store.close();
    const reopened = await open();
    const again = await Promise.all(
      Array.from({ length: 50 }, () => reopened.consume('race', NOW + 60, NOW)),
    );
    expect(again.filter(Boolean)).toHaveLength(0);
  });

  it('attack: replay after a crash: keys acknowledged by a SIGKILLed process stay refused', async () => {
    const script = path.join(dir, 'consumer.mts');
    const moduleUrl = pathToFileURL(path.resolve('pkg/replay/journal-store.ts')).href;
    writeFileSync(
      script,
      [
        `const { JournalReplayStore } = await import(${JSON.stringify(moduleUrl)});`,
        `const store = await JournalReplayStore.open(process.argv[2], { now: () => ${NOW} });`,
        `process.send({ ready: true });`,
        `for (let i = 0; ; i++) {`,
        `  if (await store.consume('k' + i, ${NOW + 600}, ${NOW})) process.send({ key: 'k' + i });`,
        `  if (i % 20 === 0) await new Promise((resolve) => setImmediate(resolve));`,
        `}`,
      ].join('\n'),
    );
    const child = fork(script, [journal], { execArgv: ['--import', 'tsx'], stdio: 'pipe' });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const acknowledged: string[] = [];
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_code, signal) => resolve(signal)),
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`child did not consume in time: ${stderr}`)), 15_000);
        child.once('exit', () => reject(new Error(`child exited early: ${stderr}`)));
        child.on('message', (message: { ready?: boolean; key?: string }) => {
          if (message.key !== undefined) acknowledged.push(message.key);
          if (acknowledged.length === 500) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      // while it runs, the journal is refused to everyone else
      await expect(JournalReplayStore.open(journal, { now: () => NOW })).rejects.toThrow(
        `in use by another process (pid ${child.pid}`,
      );
    } finally {
      child.kill('SIGKILL');
    }
    expect(await exited).toBe('SIGKILL');
    expect(existsSync(`${journal}.lock`)).toBe(true);

    const store = await open();
    expect(store.size).toBeGreaterThanOrEqual(acknowledged.length);
    const replays = await Promise.all(acknowledged.map((key) => store.consume(key, NOW + 600, NOW)));
    expect(replays.filter(Boolean)).toEqual([]);
    expect(await store.consume('never-seen', NOW + 600, NOW)).toBe(true);
  });

  it('appends after reopening rather than overwriting', async () => {
    const store = await open();
    expect(await store.consume('a', NOW + 60, NOW)).toBe(true);
    await store.close();
    const again = await open();
    expect(await again.consume('b', NOW + 60, NOW)).toBe(true);
    await again.close();
    const third = await open();
    expect(third.size).toBe(2);
  });
});

describe('JournalReplayStore format 2: per-record checksums', () => {
  function events(): { list: JournalReplayStoreEvent[]; onEvent: (e: JournalReplayStoreEvent) => void } {
    const list: JournalReplayStoreEvent[] = [];
    return { list, onEvent: (e) => list.push(e) };
  }

  it('a new journal starts with the format-2 header and holds checksummed records', async () => {
    const store = await open();
    expect(await store.consume('k', NOW + 60, NOW)).toBe(true);
    const data = readFileSync(journal);
    expect(data.subarray(0, JOURNAL_HEADER.length)).toEqual(Buffer.from(JOURNAL_HEADER));
    expect(data.subarray(data.length - entry('k', NOW + 60).length)).toEqual(entry('k', NOW + 60));
  });

  it('a format-1 journal is read and rewritten as format 2', async () => {
    writeFileSync(journal, Buffer.concat([record('', NOW - 500), record('a', NOW + 60)]));
    const store = await open();
    expect(await store.consume('a', NOW + 60, NOW)).toBe(false);
    expect(await store.health()).toEqual({ ok: true });
    expect(readFileSync(journal).subarray(0, JOURNAL_HEADER.length)).toEqual(Buffer.from(JOURNAL_HEADER));
  });

  it.each([
    ['a flipped byte in the middle record', (d: Buffer, at: number) => void (d[at + 4] = d[at + 4]! ^ 0x20)],
    [
      'a flipped checksum byte',
      (d: Buffer, at: number, len: number) => void (d[at + len - 1] = d[at + len - 1]! ^ 1),
    ],
    [
      'garbage in place of the record',
      (d: Buffer, at: number, len: number) => void d.fill(0xff, at, at + len),
    ],
  ])(
    '%s: the records around it are kept, the store fails closed for one window, and says where',
    async (_name, damage) => {
      const ev = events();
      const first = await open();
      for (const key of ['a', 'b', 'c']) expect(await first.consume(key, NOW + 300, NOW)).toBe(true);
      await first.close();
      const data = readFileSync(journal);
      const at = data.indexOf(entry('b', NOW + 300));
      expect(at).toBeGreaterThan(0);
      damage(data, at, entry('b', NOW + 300).length);
      writeFileSync(journal, data);

      const store = await open(journal, { at: NOW + 10, onEvent: ev.onEvent });
      expect(store.size).toBe(2);
      const until = NOW + 300 + 660; // the later of now and the latest expiry, plus the window
      expect(ev.list).toEqual([
        {
          type: 'amnesia',
          cause: 'damaged_records',
          until,
          bytes: entry('b', NOW + 300).length,
          firstOffset: at,
        },
      ]);
      for (const key of ['a', 'b', 'c', 'new']) {
        await expect(store.consume(key, NOW + 330, NOW + 10)).rejects.toMatchObject({
          reason: 'replay_store_amnesia',
          status: 503,
        });
      }
      // a passport issued after the window's start with an expiry past it cannot predate the damage
      expect(await store.consume('late', until + 1, NOW + 10)).toBe(true);
      // the damaged bytes are gone, the window is journaled: a restart keeps it, without a new loss
      await store.close();
      const restarted = events();
      const again = await open(journal, { at: NOW + 20, onEvent: restarted.onEvent });
      expect(restarted.list).toEqual([{ type: 'amnesia', cause: 'restored', until }]);
      expect(
        readFileSync(journal).includes(encodeJournalRecord(encoder, META_FAIL_CLOSED_UNTIL, until)),
      ).toBe(true);
      expect(await again.health()).toEqual({ ok: false, reason: 'amnesia' });
      await again.close();
      const after = events();
      const later = await open(journal, { at: until, onEvent: after.onEvent });
      expect(after.list).toEqual([]);
      expect(await later.health()).toEqual({ ok: true });
      expect(await later.consume('a', until + 330, until)).toBe(true);
    },
  );

  it.each([
    ['a torn last record', (d: Buffer) => d.subarray(0, d.length - 3)],
    ['a zero-filled tail', (d: Buffer) => Buffer.concat([d, Buffer.alloc(64)])],
    [
      'a damaged header',
      (d: Buffer) => Buffer.concat([d.subarray(0, 5), Buffer.from([d[5]! ^ 1]), d.subarray(6)]),
    ],
  ])('%s also fails closed (it cannot be told from damage)', async (_name, cut) => {
    const first = await open();
    for (const key of ['a', 'b']) expect(await first.consume(key, NOW + 300, NOW)).toBe(true);
    await first.close();
    writeFileSync(journal, cut(readFileSync(journal)));
    const store = await open(journal, { at: NOW + 1 });
    expect(await store.health()).toEqual({ ok: false, reason: 'amnesia' });
    await expect(store.consume('b', NOW + 300, NOW + 1)).rejects.toMatchObject({
      reason: 'replay_store_amnesia',
    });
  });

  it('a record kind of a newer version is refused, naming it', async () => {
    writeFileSync(journal, Buffer.concat([JOURNAL_HEADER, encodeJournalRecord(encoder, 9, 1)]));
    await expect(JournalReplayStore.open(journal, { now: () => NOW })).rejects.toThrow(/kind 9 .*newer/);
    expect(existsSync(`${journal}.lock`)).toBe(false);
  });

  it('rejects a bad checkIntervalMs', async () => {
    for (const checkIntervalMs of [0, -1, 1.5, Number.NaN]) {
      await expect(JournalReplayStore.open(journal, { checkIntervalMs })).rejects.toThrow(RangeError);
    }
    expect(existsSync(`${journal}.lock`)).toBe(false);
  });

  it('ping rejects with replay_store_unavailable while a lost journal file cannot be rewritten, then resolves', async () => {
    const store = await open();
    expect(await store.consume('a', NOW + 60, NOW)).toBe(true);
    unlinkSync(journal);
    mkdirSync(`${journal}.tmp`);
    await expect(store.ping()).rejects.toMatchObject({ reason: 'replay_store_unavailable' });
    rmdirSync(`${journal}.tmp`);
    await expect(store.ping()).resolves.toBeUndefined();
    expect(await store.consume('a', NOW + 60, NOW)).toBe(false);
  });

  it('close rewrites a journal replaced while open, and rejects when it cannot', async () => {
    const store = await open();
    expect(await store.consume('a', NOW + 60, NOW)).toBe(true);
    writeFileSync(`${journal}.other`, 'not a journal');
    renameSync(`${journal}.other`, journal);
    await store.close();
    const again = await open();
    expect(await again.consume('a', NOW + 60, NOW)).toBe(false);
    unlinkSync(journal);
    mkdirSync(`${journal}.tmp`);
    await expect(again.close()).rejects.toMatchObject({ reason: 'replay_store_unavailable' });
    expect(existsSync(`${journal}.lock`)).toBe(false);
  });

  it('rejects a bad amnesiaWindowSeconds', async () => {
    await expect(JournalReplayStore.open(journal, { amnesiaWindowSeconds: 0 })).rejects.toThrow(RangeError);
  });
});
