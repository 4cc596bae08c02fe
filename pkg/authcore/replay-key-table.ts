/**
 * An open-addressing hash table of 32-byte keys (the verifier's replay keys, 64 lowercase hex
 * characters) mapping each to an expiry (uint32 epoch seconds, 1..2^32-1, good until 2106) and a
 * scope number (uint32, 0 = none). Linear probing with backward-shift deletion, so no tombstones;
 * 40 bytes per slot in three typed arrays, at most 75 % full.
 *
 * Package-internal: {@link MemoryReplayStore} is the only user. Not exported from `pkg/authcore`.
 */

/** Words (uint32) per key: 32 bytes. */
const KEY_WORDS = 8;
/** Most occupied slots per slot: linear probing stays short (≈ 8.5 probes for a miss at 0.75). */
const MAX_LOAD = 0.75;
const MIN_CAPACITY = 64;
const TWO_32 = 4_294_967_296;

/** ASCII code → nibble value; 255 for anything but 0-9 and a-f (upper case is not canonical). */
const NIBBLE = (() => {
  const t = new Uint8Array(128).fill(255);
  for (let c = 0; c < 10; c++) t[48 + c] = c;
  for (let c = 0; c < 6; c++) t[97 + c] = 10 + c;
  return t;
})();

/**
 * Parse a 64-character lowercase hex key into 8 big-endian words.
 * @returns false (and `out` partly written) when the key is anything else
 */
export function parseHexKey(key: string, out: Uint32Array): boolean {
  if (key.length !== 64) return false;
  for (let w = 0; w < KEY_WORDS; w++) {
    let v = 0;
    const base = w * 8;
    for (let i = 0; i < 8; i++) {
      const c = key.charCodeAt(base + i);
      const n = c < 128 ? NIBBLE[c]! : 255;
      if (n === 255) return false;
      v = (v << 4) | n;
    }
    out[w] = v;
  }
  return true;
}

/**
 * A table of 32-byte keys. Slots are numbers `0..capacity-1`; a slot with expiry 0 is empty.
 * Callers must not keep a slot number across a {@link ReplayKeyTable.insert} or
 * {@link ReplayKeyTable.removeAt} (both move entries).
 */
export class ReplayKeyTable {
  #capacity: number;
  /** capacity / 2^32: maps a 32-bit hash onto a slot by multiplication (any capacity, no modulo). */
  #scale: number;
  #keys: Uint32Array;
  #exps: Uint32Array;
  #scopes: Uint32Array;
  #count = 0;
  readonly #maxCapacity: number;
  /**
   * Random per table: the slot of a key is a keyed mix of its first 8 bytes, so a caller who can
   * choose jtis cannot grind keys into one probe run (the keys are public SHA-256 outputs).
   */
  readonly #seed0: number;
  readonly #seed1: number;

  /** @param maxEntries the most entries the table will ever hold (bounds its growth) */
  constructor(maxEntries: number) {
    this.#maxCapacity = Math.ceil(maxEntries / MAX_LOAD) + 1;
    const seeds = crypto.getRandomValues(new Uint32Array(2));
    this.#seed0 = seeds[0]!;
    this.#seed1 = seeds[1]!;
    this.#capacity = Math.min(MIN_CAPACITY, this.#maxCapacity);
    this.#scale = this.#capacity / TWO_32;
    this.#keys = new Uint32Array(this.#capacity * KEY_WORDS);
    this.#exps = new Uint32Array(this.#capacity);
    this.#scopes = new Uint32Array(this.#capacity);
  }

  /** Entries held. */
  get count(): number {
    return this.#count;
  }

  /** Slots allocated. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Bytes of the typed arrays (40 per slot). */
  get allocatedBytes(): number {
    return this.#keys.byteLength + this.#exps.byteLength + this.#scopes.byteLength;
  }

  #home(w0: number, w1: number): number {
    let h = Math.imul((w0 ^ this.#seed0) | 0, 0x9e3779b1);
    h ^= (w1 ^ this.#seed1) | 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    return ((h >>> 0) * this.#scale) | 0;
  }

  /**
   * The slot holding `key` (≥ 0), or `-1` when it is absent.
   * @param key 8 words from {@link parseHexKey}
   */
  find(key: Uint32Array): number {
    const keys = this.#keys;
    const exps = this.#exps;
    const cap = this.#capacity;
    const k0 = key[0]!;
    const k1 = key[1]!;
    let i = this.#home(k0, k1);
    for (;;) {
      if (exps[i] === 0) return -1;
      const b = i * KEY_WORDS;
      if (
        keys[b] === k0 &&
        keys[b + 1] === k1 &&
        keys[b + 2] === key[2] &&
        keys[b + 3] === key[3] &&
        keys[b + 4] === key[4] &&
        keys[b + 5] === key[5] &&
        keys[b + 6] === key[6] &&
        keys[b + 7] === key[7]
      ) {
        return i;
      }
      i = i + 1 === cap ? 0 : i + 1;
    }
  }

  /** Expiry at a slot (0 = empty). */
  expiryAt(slot: number): number {
    return this.#exps[slot]!;
  }

  /** Scope number at a slot (0 = none). */
  scopeAt(slot: number): number {
    return this.#scopes[slot]!;
  }

  /** The key at an occupied slot, as 64 lowercase hex characters. */
  keyAt(slot: number): string {
    let s = '';
    const b = slot * KEY_WORDS;
    for (let w = 0; w < KEY_WORDS; w++) s += this.#keys[b + w]!.toString(16).padStart(8, '0');
    return s;
  }

  /**
   * Add a key known to be absent. Grows (rehashes) first when the table would pass 75 % full;
   * during a rehash entries with `expiry <= dropAtOrBefore` are not carried over and `onDrop` gets
   * each one's scope number.
   * @param expiry 1..2^32-1
   */
  insert(
    key: Uint32Array,
    expiry: number,
    scope: number,
    dropAtOrBefore: number,
    onDrop: (scope: number) => void,
  ): void {
    if (this.#count + 1 > this.#capacity * MAX_LOAD) this.#grow(dropAtOrBefore, onDrop);
    const cap = this.#capacity;
    const exps = this.#exps;
    let i = this.#home(key[0]!, key[1]!);
    while (exps[i] !== 0) i = i + 1 === cap ? 0 : i + 1;
    const keys = this.#keys;
    const b = i * KEY_WORDS;
    for (let w = 0; w < KEY_WORDS; w++) keys[b + w] = key[w]!;
    exps[i] = expiry;
    this.#scopes[i] = scope;
    this.#count++;
  }

  /**
   * Empty a slot by shifting the rest of its probe run back (no tombstone). Entries after it may
   * move into this slot: a scan that removes at `slot` must look at `slot` again.
   */
  removeAt(slot: number): void {
    const keys = this.#keys;
    const exps = this.#exps;
    const scopes = this.#scopes;
    const cap = this.#capacity;
    let hole = slot;
    let j = slot;
    for (;;) {
      j = j + 1 === cap ? 0 : j + 1;
      if (exps[j] === 0) break;
      const b = j * KEY_WORDS;
      const home = this.#home(keys[b]!, keys[b + 1]!);
      // j stays if its home lies cyclically in (hole, j]; else it may fill the hole.
      const stays = hole < j ? home > hole && home <= j : home > hole || home <= j;
      if (stays) continue;
      keys.copyWithin(hole * KEY_WORDS, b, b + KEY_WORDS);
      exps[hole] = exps[j]!;
      scopes[hole] = scopes[j]!;
      hole = j;
    }
    exps[hole] = 0;
    scopes[hole] = 0;
    this.#count--;
  }

  /**
   * Remove the entries with `expiry <= limit` among slots `from..to-1`, calling `onDrop` with each
   * one's scope number. Returns the slot to continue from (a scan is complete at `capacity`).
   */
  sweepRange(from: number, to: number, limit: number, onDrop: (scope: number) => void): number {
    const exps = this.#exps;
    let i = from;
    const end = Math.min(to, this.#capacity);
    while (i < end) {
      const e = exps[i]!;
      if (e !== 0 && e <= limit) {
        const scope = this.#scopes[i]!;
        this.removeAt(i);
        if (scope !== 0) onDrop(scope);
        continue;
      }
      i++;
    }
    return i;
  }

  #grow(dropAtOrBefore: number, onDrop: (scope: number) => void): void {
    const needed = Math.ceil((this.#count + 1) / MAX_LOAD) + 1;
    const next = Math.max(needed, Math.min(this.#capacity * 2, this.#maxCapacity));
    const oldKeys = this.#keys;
    const oldExps = this.#exps;
    const oldScopes = this.#scopes;
    const oldCap = this.#capacity;
    this.#capacity = next;
    this.#scale = next / TWO_32;
    this.#keys = new Uint32Array(next * KEY_WORDS);
    this.#exps = new Uint32Array(next);
    this.#scopes = new Uint32Array(next);
    this.#count = 0;
    const keys = this.#keys;
    const exps = this.#exps;
    const scopes = this.#scopes;
    for (let s = 0; s < oldCap; s++) {
      const e = oldExps[s]!;
      if (e === 0) continue;
      if (e <= dropAtOrBefore) {
        const scope = oldScopes[s]!;
        if (scope !== 0) onDrop(scope);
        continue;
      }
      const b = s * KEY_WORDS;
      let i = this.#home(oldKeys[b]!, oldKeys[b + 1]!);
      while (exps[i] !== 0) i = i + 1 === next ? 0 : i + 1;
      for (let w = 0; w < KEY_WORDS; w++) keys[i * KEY_WORDS + w] = oldKeys[b + w]!;
      exps[i] = e;
      scopes[i] = oldScopes[s]!;
      this.#count++;
    }
  }
}
