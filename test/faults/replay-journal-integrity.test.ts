import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TrustplaneError } from '../../pkg/authcore/index.js';
import {
  JournalReplayStore,
  type JournalReplayStoreEvent,
  type JournalReplayStoreOptions,
} from '../../pkg/replay/journal-store.js';

// Issue 18, point 8: the replay journal's integrity was structural only. A flipped byte in a key or
// an expiry silently re-opened that jti, and a clock stepped forward across a restart purged live
// entries (and, once the clock was corrected, refused new passports as replays). Each test consumes
// 200 jtis as the verifier would (key = SHA-256 of issuer and jti, expiresAt = exp + skew), damages
// the journal or the clock between two lives of the store, and replays the same 200.

const T0 = 1_767_225_600;
const N = 200;
const LIFETIME = 300;
const SKEW = 30;
/** The default window: maximum passport lifetime (600) + 2 × skew (30). */
const WINDOW = 660;

const keySet = (name: string) =>
  Array.from({ length: N }, (_, i) =>
    createHash('sha256').update(`https://issuer.example\n${name}-${i}`).digest('hex'),
  );
const keys = keySet('jti');

let dir: string;
let journal: string;
const opened: JournalReplayStore[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'trustplane-journal-fault-'));
  journal = path.join(dir, 'replay.journal');
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

async function open(clock: { now: number }, options: JournalReplayStoreOptions = {}) {
  const store = await JournalReplayStore.open(journal, { fsync: 'never', now: () => clock.now, ...options });
  opened.push(store);
  return store;
}

interface Tally {
  accepted: number;
  replays: number;
  refused: Record<string, number>;
}

async function tally(
  store: JournalReplayStore,
  now: number,
  which: readonly string[] = keys,
  expiresAt = now + LIFETIME + SKEW,
): Promise<Tally> {
  const out: Tally = { accepted: 0, replays: 0, refused: {} };
  for (const key of which) {
    try {
      if (await store.consume(key, expiresAt, now)) out.accepted++;
      else out.replays++;
    } catch (e) {
      const reason = e instanceof TrustplaneError ? e.reason : String(e);
      out.refused[reason] = (out.refused[reason] ?? 0) + 1;
    }
  }
  return out;
}

/** Consume the 200 keys at T0 and close the store: the journal holds them. */
async function consumeAll(clock: { now: number }): Promise<void> {
  const store = await open(clock);
  expect((await tally(store, T0)).accepted).toBe(N);
  await store.close();
}

/** Where key `i` is in the journal file (its text bytes). */
function keyOffset(data: Buffer, i: number): number {
  const at = data.indexOf(Buffer.from(keys[i]!, 'utf8'));
  expect(at).toBeGreaterThan(0);
  return at;
}

describe('fault: a damaged replay journal never re-opens a jti', () => {
  it('a flipped byte in a key: 0 of 200 replays accepted; the store fails closed (amnesia) for one window, then recovers', async () => {
    const clock = { now: T0 };
    await consumeAll(clock);
    const data = readFileSync(journal);
    const at = keyOffset(data, 123) + 10;
    data[at] = data[at]! ^ 0x01; // '0'..'9','a'..'f' stay printable: still a well-formed record
    writeFileSync(journal, data);

    clock.now = T0 + 5;
    const store = await open(clock).catch((e: unknown) => e);
    // Either outcome keeps the jti refused; this store fails closed rather than refusing to start.
    expect(store).toBeInstanceOf(JournalReplayStore);
    const replay = await tally(store as JournalReplayStore, clock.now);
    console.log(`flipped key byte, replayed: ${JSON.stringify(replay)}`);
    expect(replay.accepted).toBe(0);
    expect(replay.refused).toEqual({ replay_store_amnesia: N });
    expect(await (store as JournalReplayStore).health()).toEqual({ ok: false, reason: 'amnesia' });

    // The fail-closed window is journaled: a restart inside it does not forget it.
    await (store as JournalReplayStore).close();
    const again = await open(clock);
    expect((await tally(again, clock.now)).accepted).toBe(0);
    expect(await again.health()).toEqual({ ok: false, reason: 'amnesia' });

    // The window runs from the later of the open and the latest expiry in the journal (a clock
    // stepped back at open cannot shorten it): T0 + 330 + 660.
    clock.now = T0 + LIFETIME + SKEW + WINDOW - 1;
    expect(await again.health()).toEqual({ ok: false, reason: 'amnesia' });
    clock.now += 1;
    expect(await again.health()).toEqual({ ok: true });
    expect((await tally(again, clock.now, keySet('later'))).accepted).toBe(N);
  });

  it('a flipped byte in an expiry: 0 of 200 replays accepted', async () => {
    const clock = { now: T0 };
    await consumeAll(clock);
    const data = readFileSync(journal);
    // The expiry follows the key: a uint32 head (0x1a) and 4 bytes, most significant first. Clear
    // the lowest set bit of its top byte: the expiry moves months into the past.
    const head = keyOffset(data, 42) + keys[42]!.length;
    expect(data[head]).toBe(0x1a);
    const top = data[head + 1]!;
    data[head + 1] = top ^ (top & -top);
    writeFileSync(journal, data);

    clock.now = T0 + 5;
    const store = await open(clock);
    const replay = await tally(store, clock.now);
    console.log(`flipped expiry byte, replayed: ${JSON.stringify(replay)}`);
    expect(replay.accepted).toBe(0);
    expect(await store.health()).toEqual({ ok: false, reason: 'amnesia' });
  });
});

describe('fault: the clock stepped forward across a restart', () => {
  it('live entries are kept; once the clock is corrected 0 of 200 replays are accepted and new passports are', async () => {
    const clock = { now: T0 };
    await consumeAll(clock);

    // Restarted with the clock an hour ahead.
    clock.now = T0 + 3_600;
    const ahead = await open(clock);
    console.log(`entries kept after a restart an hour ahead: ${ahead.size} of ${N}`);
    expect(ahead.size).toBe(N);
    await ahead.close();

    // NTP steps it back; the adapter restarts again.
    clock.now = T0 + 10;
    const back = await open(clock);
    const replay = await tally(back, clock.now);
    expect(replay.accepted).toBe(0);
    expect(replay.replays).toBe(N);
    const fresh = await tally(back, clock.now, keySet('fresh'));
    console.log(`after the correction, new passports: ${JSON.stringify(fresh)}`);
    expect(fresh.accepted).toBe(N);
    expect(await back.health()).toEqual({ ok: true });
  });
});

// Red team B2–B4: the journal file itself lost while the store runs (unlinked, or replaced by another
// file), emptied, or zero-filled from its first byte between two lives of the store.
describe('fault: a lost, emptied or zero-filled journal file never re-opens a jti', () => {
  /** Poll `check` every 50 ms for at most `ms` (bounded: never a tight timeout). */
  async function eventually(check: () => boolean, ms = 10_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (check()) return true;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return check();
  }

  /**
   * What a restart would find if the process died now (SIGKILL, no `close`): a copy of whatever the
   * journal path names on disk, opened as a journal of its own (a missing file opens empty).
   */
  async function openCrashCopy(clock: { now: number }): Promise<JournalReplayStore> {
    const copy = path.join(dir, 'after-crash.journal');
    if (existsSync(journal)) copyFileSync(journal, copy);
    const store = await JournalReplayStore.open(copy, { fsync: 'never', now: () => clock.now });
    opened.push(store);
    return store;
  }

  it('attack: journal unlinked while the store runs, then a clean restart: 0 of 200 replays accepted', async () => {
    const clock = { now: T0 };
    const store = await open(clock);
    expect((await tally(store, T0, keys.slice(0, 100))).accepted).toBe(100);
    unlinkSync(journal);
    expect((await tally(store, T0, keys.slice(100))).accepted).toBe(100);
    await store.close();

    clock.now = T0 + 5;
    const again = await open(clock);
    const replay = await tally(again, clock.now);
    console.log(`journal unlinked while running, replayed after a restart: ${JSON.stringify(replay)}`);
    expect(replay.accepted).toBe(0);
    expect(replay.replays).toBe(N);
  });

  it('attack: journal unlinked while the store runs: the periodic check rewrites it; a crash after that replays 0 of 200', async () => {
    const clock = { now: T0 };
    const seen: JournalReplayStoreEvent[] = [];
    const store = await open(clock, {
      checkIntervalMs: 200,
      onEvent: (e) => seen.push(e),
    } as JournalReplayStoreOptions);
    expect((await tally(store, T0, keys.slice(0, 100))).accepted).toBe(100);
    unlinkSync(journal);
    expect((await tally(store, T0, keys.slice(100))).accepted).toBe(100);
    // No call into the store: only its timer can notice.
    const rewritten = await eventually(() => existsSync(journal));
    console.log(`journal rewritten by the periodic check: ${rewritten}; events ${JSON.stringify(seen)}`);

    clock.now = T0 + 5;
    const crashed = await openCrashCopy(clock);
    const replay = await tally(crashed, clock.now);
    console.log(`journal unlinked while running, replayed after a crash: ${JSON.stringify(replay)}`);
    expect(replay.accepted).toBe(0);
    expect(replay.replays).toBe(N);
    expect(seen).toContainEqual({ type: 'journal_rewritten', cause: 'missing' });
    expect(await store.health()).toEqual({ ok: true });
  });

  it('attack: journal replaced by an older copy while the store runs: health() rewrites it; a crash after that replays 0 of 200', async () => {
    const clock = { now: T0 };
    const seen: JournalReplayStoreEvent[] = [];
    const store = await open(clock, { onEvent: (e) => seen.push(e) });
    expect((await tally(store, T0, keys.slice(0, 100))).accepted).toBe(100);
    const older = path.join(dir, 'older.journal');
    copyFileSync(journal, older);
    expect((await tally(store, T0, keys.slice(100))).accepted).toBe(100);
    renameSync(older, journal);

    const health = await store.health();
    clock.now = T0 + 5;
    const crashed = await openCrashCopy(clock);
    const replay = await tally(crashed, clock.now);
    console.log(
      `journal replaced while running, health ${JSON.stringify(health)}, replayed after a crash: ${JSON.stringify(replay)}`,
    );
    expect(replay.accepted).toBe(0);
    expect(replay.replays).toBe(N);
    expect(health).toEqual({ ok: true });
    expect(seen).toEqual([{ type: 'journal_rewritten', cause: 'replaced' }]);
  });

  it('journal unlinked and it cannot be rewritten: health says journal_write_failed and consume fails closed until it can', async () => {
    const clock = { now: T0 };
    const seen: JournalReplayStoreEvent[] = [];
    const store = await open(clock, { onEvent: (e) => seen.push(e) });
    expect((await tally(store, T0, keys.slice(0, 100))).accepted).toBe(100);
    unlinkSync(journal);
    // The rewrite goes through `<journal>.tmp`: a directory there makes it fail (also for root).
    mkdirSync(`${journal}.tmp`);
    const failing = await store.health();
    const during = await tally(store, T0, keySet('during'));
    console.log(
      `while the journal cannot be rewritten: health ${JSON.stringify(failing)}, new jtis ${JSON.stringify(during)}`,
    );
    expect(failing).toEqual({ ok: false, reason: 'journal_write_failed' });
    expect(during.accepted).toBe(0);
    expect(during.refused).toEqual({ replay_store_unavailable: N });
    expect(seen).toEqual([{ type: 'journal_rewrite_failed', cause: 'missing', error: 'EISDIR' }]);

    rmdirSync(`${journal}.tmp`);
    expect(await store.health()).toEqual({ ok: true });
    expect(seen.at(-1)).toEqual({ type: 'journal_rewritten', cause: 'missing' });
    expect((await tally(store, T0, keys.slice(100))).accepted).toBe(100);
    clock.now = T0 + 5;
    const crashed = await openCrashCopy(clock);
    const replay = await tally(crashed, clock.now);
    expect(replay.accepted).toBe(0);
    expect(replay.replays).toBe(N);
  });

  it.each([
    ['truncated to 0 bytes', 0, 'empty_journal'],
    ['cut inside its header (10 bytes left)', 10, 'damaged_records'],
  ] as const)(
    'attack: an existing journal %s: 0 of 200 replays accepted; the store fails closed (amnesia) for one window',
    async (_name, length, cause) => {
      const clock = { now: T0 };
      await consumeAll(clock);
      truncateSync(journal, length);

      clock.now = T0 + 5;
      const seen: JournalReplayStoreEvent[] = [];
      const store = await open(clock, { onEvent: (e) => seen.push(e) }).catch((e: unknown) => e);
      console.log(
        `journal ${_name}: open gave ${store instanceof JournalReplayStore ? 'a store' : String(store)}`,
      );
      expect(store).toBeInstanceOf(JournalReplayStore);
      const replay = await tally(store as JournalReplayStore, clock.now);
      console.log(`journal ${_name}, replayed: ${JSON.stringify(replay)}`);
      expect(replay.accepted).toBe(0);
      expect(replay.refused).toEqual({ replay_store_amnesia: N });
      expect(await (store as JournalReplayStore).health()).toEqual({ ok: false, reason: 'amnesia' });
      expect(seen).toMatchObject([{ type: 'amnesia', cause, until: clock.now + WINDOW }]);
    },
  );

  it('attack: a journal zero-filled from its first byte (machine crash before its data reached the disk): 0 of 200 replays accepted', async () => {
    const clock = { now: T0 };
    await consumeAll(clock);
    const size = statSync(journal).size;
    writeFileSync(journal, Buffer.alloc(size));

    clock.now = T0 + 5;
    const seen: JournalReplayStoreEvent[] = [];
    const store = await open(clock, { onEvent: (e) => seen.push(e) });
    const replay = await tally(store, clock.now);
    console.log(`journal zero-filled (${size} bytes), replayed: ${JSON.stringify(replay)}`);
    expect(replay.accepted).toBe(0);
    expect(replay.refused).toEqual({ replay_store_amnesia: N });
    expect(await store.health()).toEqual({ ok: false, reason: 'amnesia' });
    expect(seen).toEqual([
      { type: 'amnesia', cause: 'damaged_records', until: clock.now + WINDOW, bytes: size, firstOffset: 0 },
    ]);
  });
});
