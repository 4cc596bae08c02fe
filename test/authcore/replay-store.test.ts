import { describe, expect, it } from 'vitest';
import { MemoryReplayStore, type ReplayStore, TrustplaneError } from '../../pkg/authcore/index.js';

const NOW = 1_767_225_600;

describe('MemoryReplayStore', () => {
  it('first consume is true, second is false', async () => {
    const store: ReplayStore = new MemoryReplayStore();
    expect(await store.consume('iss|jti-1', NOW + 60, NOW)).toBe(true);
    expect(await store.consume('iss|jti-1', NOW + 60, NOW)).toBe(false);
    expect(await store.consume('iss|jti-1', NOW + 60, NOW + 59)).toBe(false);
  });

  it('keys are independent', async () => {
    const store = new MemoryReplayStore();
    expect(await store.consume('a', NOW + 60, NOW)).toBe(true);
    expect(await store.consume('b', NOW + 60, NOW)).toBe(true);
    expect(await store.consume('A', NOW + 60, NOW)).toBe(true);
    expect(await store.consume('a', NOW + 60, NOW)).toBe(false);
  });

  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty'])(
    'prototype-ish key %j behaves like any other',
    async (key) => {
      const store = new MemoryReplayStore();
      expect(await store.consume(key, NOW + 60, NOW)).toBe(true);
      expect(await store.consume(key, NOW + 60, NOW)).toBe(false);
    },
  );

  it('after expiry the key is accepted again', async () => {
    const store = new MemoryReplayStore();
    expect(await store.consume('k', NOW + 10, NOW)).toBe(true);
    expect(await store.consume('k', NOW + 10, NOW + 9)).toBe(false);
    expect(await store.consume('k', NOW + 20, NOW + 10)).toBe(true);
    expect(await store.consume('k', NOW + 20, NOW + 15)).toBe(false);
  });

  it('attack: replay race: 200 concurrent consumes of one key, exactly one wins', async () => {
    const store = new MemoryReplayStore();
    const results = await Promise.all(
      Array.from({ length: 200 }, () => store.consume('iss|race', NOW + 60, NOW)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(results.filter((r) => !r)).toHaveLength(199);
  });

  it('concurrent consumes of distinct keys all win', async () => {
    const store = new MemoryReplayStore();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => store.consume(`k${i}`, NOW + 60, NOW)),
    );
    expect(results.every(Boolean)).toBe(true);
    expect(store.size).toBe(200);
  });

  describe('bounded', () => {
    it('full of live entries: a third distinct key fails closed with replay_store_unavailable', async () => {
      const store = new MemoryReplayStore({ maxEntries: 2 });
      expect(await store.consume('a', NOW + 60, NOW)).toBe(true);
      expect(await store.consume('b', NOW + 60, NOW)).toBe(true);
      const p = store.consume('c', NOW + 60, NOW + 1);
      await expect(p).rejects.toMatchObject({ reason: 'replay_store_unavailable', status: 503 });
      await expect(p).rejects.toBeInstanceOf(TrustplaneError);
      // A live entry was not evicted to make room: replays of a and b are still refused.
      expect(await store.consume('a', NOW + 60, NOW + 1)).toBe(false);
      expect(await store.consume('b', NOW + 60, NOW + 1)).toBe(false);
      expect(store.size).toBe(2);
    });

    it('the refused key was not recorded (it succeeds once there is room)', async () => {
      const store = new MemoryReplayStore({ maxEntries: 2, sweepGraceSeconds: 0 });
      await store.consume('a', NOW + 10, NOW);
      await store.consume('b', NOW + 60, NOW);
      await expect(store.consume('c', NOW + 60, NOW + 1)).rejects.toMatchObject({
        reason: 'replay_store_unavailable',
      });
      expect(await store.consume('c', NOW + 60, NOW + 10)).toBe(true);
      expect(await store.consume('c', NOW + 60, NOW + 11)).toBe(false);
    });

    it('expired entries are swept to make room', async () => {
      const store = new MemoryReplayStore({ maxEntries: 2, sweepGraceSeconds: 0 });
      expect(await store.consume('a', NOW + 5, NOW)).toBe(true);
      expect(await store.consume('b', NOW + 6, NOW)).toBe(true);
      expect(await store.consume('c', NOW + 60, NOW + 6)).toBe(true);
      expect(await store.consume('d', NOW + 60, NOW + 6)).toBe(true);
      expect(store.size).toBe(2);
      await expect(store.consume('e', NOW + 60, NOW + 7)).rejects.toMatchObject({
        reason: 'replay_store_unavailable',
        status: 503,
      });
    });

    it('a replay of a live key answers false even when full (not unavailable)', async () => {
      const store = new MemoryReplayStore({ maxEntries: 1 });
      expect(await store.consume('a', NOW + 60, NOW)).toBe(true);
      expect(await store.consume('a', NOW + 60, NOW)).toBe(false);
    });

    it('a replay race against a full store: nobody gets true', async () => {
      const store = new MemoryReplayStore({ maxEntries: 1 });
      await store.consume('live', NOW + 60, NOW);
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, () => store.consume('new', NOW + 60, NOW)),
      );
      expect(results.every((r) => r.status === 'rejected')).toBe(true);
    });
  });

  it('sweep and entries drop entries expired for longer than the grace period (default 120 s)', async () => {
    const store = new MemoryReplayStore();
    await store.consume('a', NOW + 5, NOW);
    await store.consume('b', NOW + 50, NOW);
    expect([...store.entries(NOW + 5)]).toEqual([
      ['a', NOW + 5],
      ['b', NOW + 50],
    ]);
    expect([...store.entries(NOW + 125)]).toEqual([['b', NOW + 50]]);
    store.sweep(NOW + 170);
    expect(store.size).toBe(0);
    const strict = new MemoryReplayStore({ sweepGraceSeconds: 0 });
    await strict.consume('a', NOW + 5, NOW);
    expect([...strict.entries(NOW + 5)]).toEqual([]);
  });

  describe('attack: one caller fills the store', () => {
    it('a scope beyond maxEntriesPerScope is refused replay_quota_exceeded (429); other scopes are not', async () => {
      const store = new MemoryReplayStore({ maxEntries: 100, maxEntriesPerScope: 3 });
      for (let i = 0; i < 3; i++) expect(await store.consume(`a${i}`, NOW + 60, NOW, 'caller-a')).toBe(true);
      await expect(store.consume('a3', NOW + 60, NOW, 'caller-a')).rejects.toMatchObject({
        reason: 'replay_quota_exceeded',
        status: 429,
      });
      // A replay of a held key is still a replay, not a quota refusal.
      expect(await store.consume('a0', NOW + 60, NOW, 'caller-a')).toBe(false);
      expect(await store.consume('b0', NOW + 60, NOW, 'caller-b')).toBe(true);
      // Once its entries expire (and the grace passes), the caller has room again.
      expect(await store.consume('a4', NOW + 400, NOW + 200, 'caller-a')).toBe(true);
    });

    it('the default share is a quarter of maxEntries', async () => {
      const store = new MemoryReplayStore({ maxEntries: 8 });
      for (let i = 0; i < 2; i++) expect(await store.consume(`k${i}`, NOW + 60, NOW, 's')).toBe(true);
      await expect(store.consume('k2', NOW + 60, NOW, 's')).rejects.toMatchObject({
        reason: 'replay_quota_exceeded',
      });
      expect(() => new MemoryReplayStore({ maxEntriesPerScope: 0 })).toThrow(RangeError);
    });
  });

  describe('attack: a clock stepped forward, then back', () => {
    it('within the grace period nothing is forgotten: the consumed key stays refused, new ones work', async () => {
      const store = new MemoryReplayStore();
      expect(await store.consume('a', NOW + 330, NOW)).toBe(true);
      // 400 s ahead: a is expired by 70 s (inside the 120 s grace), a sweep keeps it.
      expect(await store.consume('b', NOW + 730, NOW + 400)).toBe(true);
      store.sweep(NOW + 400);
      // back: a is refused; a new key expiring after the horizon works.
      expect(await store.consume('a', NOW + 330, NOW)).toBe(false);
      expect(await store.consume('c', NOW + 330, NOW)).toBe(true);
    });

    it('beyond it, a key that may have been swept is refused (fail closed), never accepted again', async () => {
      const store = new MemoryReplayStore();
      expect(await store.consume('a', NOW + 330, NOW)).toBe(true);
      // A day ahead: a is swept.
      store.sweep(NOW + 86_400);
      expect(store.size).toBe(0);
      expect(store.horizon).toBe(NOW + 86_400 - 120);
      // Back: a (and any key expiring before the horizon) cannot be proven unused: refused.
      expect(await store.consume('a', NOW + 330, NOW)).toBe(false);
      expect(await store.consume('never-seen', NOW + 330, NOW)).toBe(false);
      // Keys expiring after the horizon are unaffected.
      expect(await store.consume('late', NOW + 90_000, NOW)).toBe(true);
    });

    it('sweepGraceSeconds must be a non-negative number', () => {
      expect(() => new MemoryReplayStore({ sweepGraceSeconds: -1 })).toThrow(RangeError);
      expect(() => new MemoryReplayStore({ sweepGraceSeconds: Number.NaN })).toThrow(RangeError);
    });
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
    'maxEntries %s is caller misuse (RangeError)',
    (maxEntries) => {
      expect(() => new MemoryReplayStore({ maxEntries })).toThrow(RangeError);
    },
  );

  it('ping resolves', async () => {
    await expect(new MemoryReplayStore().ping()).resolves.toBeUndefined();
  });
});
