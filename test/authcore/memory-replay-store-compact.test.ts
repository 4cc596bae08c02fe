// The compact MemoryReplayStore (issue 13, memory): 64-hex keys in an open-addressing table of typed
// arrays, every other key in a Map. What the structure adds: its memory per entry, growth by
// rehash, backward-shift deletion, expiries that do not fit uint32, many scopes, and behaviour equal
// to the Map-only store it replaced (a reference model below, driven by the same random operations).

import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { MemoryReplayStore, TrustplaneError } from '../../pkg/authcore/index.js';

const NOW = 1_767_225_600;
const hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/** global.gc without --expose-gc on the command line. */
function gcFunction(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** A small deterministic PRNG (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * The store as it was before the compact table (commit 0dbea31), kept as the reference model: two
 * Maps and a full sweep every 30 s. Its observable answers (true, false, which error) are the
 * contract the compact store keeps.
 */
class ReferenceStore {
  readonly #entries = new Map<string, number>();
  readonly #scopeOf = new Map<string, string>();
  readonly #perScope = new Map<string, number>();
  #nextSweep = 0;
  #horizon = Number.NEGATIVE_INFINITY;
  constructor(
    readonly maxEntries: number,
    readonly maxPerScope: number,
    readonly grace: number,
  ) {}
  get size(): number {
    return this.#entries.size;
  }
  get horizon(): number {
    return this.#horizon;
  }
  consumeSync(key: string, expiresAt: number, now: number, scope?: string): boolean {
    if (expiresAt <= this.#horizon) return false;
    const existing = this.#entries.get(key);
    if (existing !== undefined && existing > now) return false;
    if (existing === undefined && this.#entries.size >= this.maxEntries) {
      this.sweep(now);
      if (this.#entries.size >= this.maxEntries) {
        throw new TrustplaneError('replay_store_unavailable', 'replay store is full');
      }
    } else if (now >= this.#nextSweep) {
      this.sweep(now);
    }
    if (scope !== undefined && existing === undefined) {
      const held = this.#perScope.get(scope) ?? 0;
      if (held >= this.maxPerScope) {
        this.sweep(now);
        if ((this.#perScope.get(scope) ?? 0) >= this.maxPerScope) {
          throw new TrustplaneError('replay_quota_exceeded', 'quota');
        }
      }
      this.#perScope.set(scope, (this.#perScope.get(scope) ?? 0) + 1);
      this.#scopeOf.set(key, scope);
    }
    this.#entries.set(key, expiresAt);
    return true;
  }
  sweep(now: number): void {
    const cutoff = now - this.grace;
    for (const [k, exp] of this.#entries) {
      if (exp > cutoff) continue;
      this.#entries.delete(k);
      const scope = this.#scopeOf.get(k);
      if (scope !== undefined) {
        this.#scopeOf.delete(k);
        const left = (this.#perScope.get(scope) ?? 1) - 1;
        if (left > 0) this.#perScope.set(scope, left);
        else this.#perScope.delete(scope);
      }
    }
    if (cutoff > this.#horizon) this.#horizon = cutoff;
    this.#nextSweep = now + 30;
  }
  entries(now: number): [string, number][] {
    this.sweep(now);
    return [...this.#entries];
  }
}

const outcome = (f: () => boolean): string => {
  try {
    return String(f());
  } catch (e) {
    return e instanceof TrustplaneError ? e.reason : `threw ${String(e)}`;
  }
};
const sorted = (xs: Iterable<[string, number]>): [string, number][] =>
  [...xs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));

describe('MemoryReplayStore: compact table', () => {
  it('holds 200,000 live entries (64-hex keys, 1,000 scopes) in at most 100 bytes each', () => {
    const gc = gcFunction();
    const n = 200_000;
    const heap = () => {
      gc();
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const before = heap();
    const store = new MemoryReplayStore({ maxEntries: n });
    for (let i = 0; i < n; i++) {
      // Fresh strings, as the verifier makes them: only the store keeps them alive.
      const ok = store.consumeSync(
        hex(`https://issuer.example\njti-${i}`),
        NOW + 300 + (i % 361),
        NOW,
        hex(`https://issuer.example\nservice:client-${i % 1000}`),
      );
      if (!ok) throw new Error(`fresh key ${i} refused`);
    }
    const perEntry = (heap() - before) / n;
    console.log(`bytes per live entry at ${n}: ${perEntry.toFixed(1)}`);
    expect(store.size).toBe(n);
    expect(perEntry).toBeLessThanOrEqual(100);
    // Still a working store after all that: a replay of the first key is refused.
    expect(store.consumeSync(hex('https://issuer.example\njti-0'), NOW + 300, NOW + 1)).toBe(false);
  }, 60_000);

  it('grows by rehash from 64 slots to 50,000 entries: every key is found again, none lost or doubled', () => {
    const store = new MemoryReplayStore({ maxEntries: 50_000 });
    const keys = Array.from({ length: 50_000 }, (_, i) => hex(`k${i}`));
    keys.forEach((k, i) => expect(store.consumeSync(k, NOW + 100 + (i % 50), NOW)).toBe(true));
    expect(store.size).toBe(50_000);
    let replays = 0;
    for (const k of keys) if (!store.consumeSync(k, NOW + 100, NOW + 1)) replays++;
    expect(replays).toBe(50_000);
    const live = sorted(store.entries(NOW + 1));
    expect(live).toEqual(sorted(keys.map((k, i) => [k, NOW + 100 + (i % 50)])));
    // Full of live entries: a new key fails closed, as before.
    expect(() => store.consumeSync(hex('one more'), NOW + 100, NOW + 2)).toThrow(
      expect.objectContaining({ reason: 'replay_store_unavailable' }),
    );
  });

  it('deletion shifts probe runs back: after sweeping every other entry, each survivor is still found', () => {
    // A small table, nearly full, so probe runs are long and wrap around the end.
    const store = new MemoryReplayStore({ maxEntries: 96, sweepGraceSeconds: 0 });
    const rounds = 40;
    let found = 0;
    let accepted = 0;
    for (let r = 0; r < rounds; r++) {
      const t = NOW + r * 1000;
      const keys = Array.from({ length: 96 }, (_, i) => hex(`round-${r}-${i}`));
      // Half expire at t + 10, half at t + 500.
      keys.forEach((k, i) => expect(store.consumeSync(k, t + (i % 2 === 0 ? 10 : 500), t)).toBe(true));
      store.sweep(t + 10);
      expect(store.size).toBe(48);
      keys.forEach((k, i) => {
        const again = store.consumeSync(k, t + 600, t + 11);
        if (i % 2 === 1 && !again) found++;
        if (i % 2 === 0 && again) accepted++;
      });
      store.sweep(t + 600);
      expect(store.size).toBe(0);
    }
    // Survivors: refused (a replay). Swept (expired) keys: accepted again with a new expiry.
    expect(found).toBe(48 * rounds);
    expect(accepted).toBe(48 * rounds);
  });

  it('expiries that do not fit uint32 seconds never wrap: 2^32 + 100, fractions, 0 and negatives', () => {
    const store = new MemoryReplayStore();
    for (const [k, exp] of [
      [hex('far'), 2 ** 32 + 100],
      [hex('frac'), NOW + 60.5],
      [hex('max'), 2 ** 32 - 1],
    ] as const) {
      expect(store.consumeSync(k, exp, NOW)).toBe(true);
    }
    expect(store.consumeSync(hex('frac'), NOW + 60.5, NOW + 60)).toBe(false);
    expect(store.consumeSync(hex('frac'), NOW + 120, NOW + 60.5)).toBe(true);
    expect(sorted(store.entries(NOW + 61))).toEqual(
      sorted([
        [hex('far'), 2 ** 32 + 100],
        [hex('frac'), NOW + 120],
        [hex('max'), 2 ** 32 - 1],
      ]),
    );
    // Still live much later: a wrapped 2^32 + 100 would be 100 (long expired) and accepted again.
    expect(store.consumeSync(hex('far'), 2 ** 32 + 100, NOW + 1_000_000)).toBe(false);
    expect(store.consumeSync(hex('max'), 2 ** 32 - 1, 2 ** 32 - 2)).toBe(false);
    // A clock before 1970 (a test clock): 0 is the table's "empty" mark, so it must not go there.
    const early = new MemoryReplayStore();
    expect(early.consumeSync(hex('zero'), 0, -10)).toBe(true);
    expect(early.consumeSync(hex('neg'), -5, -10)).toBe(true);
    expect(early.consumeSync(hex('zero'), 0, -1)).toBe(false);
    expect(early.consumeSync(hex('neg'), -5, -6)).toBe(false);
    expect(early.size).toBe(2);
  });

  it('a key is kept as given: upper-case hex, 63 or 65 characters and other strings are distinct keys', () => {
    const store = new MemoryReplayStore();
    const k = hex('case');
    const variants = [k, k.toUpperCase(), k.slice(1), `${k}0`, `${k.slice(0, 63)}g`, `iss|${k}`];
    for (const v of variants) expect(store.consumeSync(v, NOW + 60, NOW)).toBe(true);
    for (const v of variants) expect(store.consumeSync(v, NOW + 60, NOW)).toBe(false);
    expect(sorted(store.entries(NOW))).toEqual(sorted(variants.map((v) => [v, NOW + 60])));
  });

  it('many scopes: 5,000 callers with a quota of 2 each; counts follow sweeps and numbers are reused', () => {
    const store = new MemoryReplayStore({ maxEntries: 20_000, maxEntriesPerScope: 2, sweepGraceSeconds: 0 });
    for (let round = 0; round < 3; round++) {
      const t = NOW + round * 1000;
      let quota = 0;
      for (let s = 0; s < 5000; s++) {
        const scope = hex(`sub-${round}-${s}`);
        for (let j = 0; j < 3; j++) {
          const r = outcome(() => store.consumeSync(hex(`${round}-${s}-${j}`), t + 100, t, scope));
          if (r === 'replay_quota_exceeded') quota++;
          else expect(r).toBe('true');
        }
      }
      // The third key of every caller was refused, and only that one.
      expect(quota).toBe(5000);
      expect(store.size).toBe(10_000);
      // Once those expire, each caller has its full share again.
      store.sweep(t + 100);
      expect(store.size).toBe(0);
    }
  });

  it('behaves as the Map-only store it replaced: 30,000 random operations, same answers', () => {
    const seen = new Map<string, number>();
    for (const seed of [1, 2, 3]) {
      const random = rng(seed);
      const max = 200;
      const perScope = 25;
      const grace = [0, 5, 120][seed - 1]!;
      const store = new MemoryReplayStore({
        maxEntries: max,
        maxEntriesPerScope: perScope,
        sweepGraceSeconds: grace,
      });
      const ref = new ReferenceStore(max, perScope, grace);
      const pool = Array.from({ length: 600 }, (_, i) =>
        i % 10 === 9 ? `other-key-${i}` : hex(`pool-${i}`),
      );
      const scopes = Array.from({ length: 6 }, (_, i) => hex(`scope-${i}`));
      let now = NOW;
      const mismatches: string[] = [];
      for (let op = 0; op < 10_000; op++) {
        const r = random();
        // Mostly forward, sometimes a big step, sometimes back.
        if (r < 0.3) now += Math.floor(random() * 4);
        else if (r < 0.31) now += Math.floor(random() * 400);
        else if (r < 0.32) now -= Math.floor(random() * 300);
        if (random() < 0.003) {
          store.sweep(now);
          ref.sweep(now);
          continue;
        }
        const key = pool[Math.floor(random() * pool.length)]!;
        const exp = now + Math.floor(random() * 200) - 20;
        const scope = random() < 0.6 ? scopes[Math.floor(random() * scopes.length)] : undefined;
        const a = outcome(() => store.consumeSync(key, exp, now, scope));
        const b = outcome(() => ref.consumeSync(key, exp, now, scope));
        seen.set(b, (seen.get(b) ?? 0) + 1);
        if (a !== b) mismatches.push(`seed ${seed} op ${op}: compact ${a}, reference ${b}`);
      }
      expect(mismatches.slice(0, 5)).toEqual([]);
      expect(store.horizon).toBe(ref.horizon);
      expect(sorted(store.entries(now))).toEqual(sorted(ref.entries(now)));
      expect(store.size).toBe(ref.size);
    }
    // The operations reached every answer: first use, replay, full store, caller over its quota.
    console.log(`reference answers: ${JSON.stringify(Object.fromEntries(seen))}`);
    for (const answer of ['true', 'false', 'replay_store_unavailable', 'replay_quota_exceeded']) {
      expect(seen.get(answer) ?? 0, answer).toBeGreaterThan(0);
    }
  });
});
