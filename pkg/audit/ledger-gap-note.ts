import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readExactly, syncDirectoryBestEffort } from './ledger-file-io.js';
import type { LedgerGapInput } from './ledger-gap.js';

/**
 * Size of the gap note file: two slots, created full size (real blocks, not a sparse file) when
 * the note is first opened. Recording a loss overwrites one slot in place, so it never needs a new
 * disk block: it still works when the spill file cannot grow (disk full, `ulimit -f`).
 */
export const GAP_NOTE_BYTES = 4096;
const SLOT_BYTES = GAP_NOTE_BYTES / 2;
/** Slot layout: payload length (u32 LE), SHA-256 of the payload, the payload (JSON). */
const HEADER_BYTES = 4 + 32;
/** Most gap records a note lists one by one (older ones are folded into the oldest entry kept). */
export const GAP_NOTE_MAX_GAP_RECORDS = 16;

/** A gap record chained but not yet durable: if it is lost, what it counted is lost with it. */
export interface GapNoteRecord {
  /** Its seq. */
  readonly seq: number;
  /** What it counts (its `lost`). */
  readonly lost: number;
}

/** What may be lost if the process ends now: the note's content. */
export interface GapNoteState {
  /**
   * The last seq chained. At the next open, the chained records past the durable head (the last
   * record in PostgreSQL or the spill file) up to this seq are the lost ones.
   */
  readonly chainedTo: number;
  /** When the first and the last record that may be lost were chained, when known. */
  readonly firstTime?: string;
  readonly lastTime?: string;
  /** Gap records among them (what they count is lost with them). */
  readonly gapRecords: readonly GapNoteRecord[];
  /** Decisions dropped before chaining whose gap record is not chained yet. */
  readonly dropped: number;
}

interface Slot {
  readonly generation: number;
  readonly chainId: string;
  readonly state: GapNoteState | undefined;
}

/**
 * The gap note of a spill file (`<spill>.gaps`): a small, fixed-size, pre-allocated file in which
 * the PostgreSQL ledger sink records, while it cannot make records durable (spill writes failing
 * and PostgreSQL down) and at close, which chained records would be lost if the process ended
 * now. The next open turns a non-empty note into a chained gap record, so a stop or a crash with a
 * full disk is reported by `trustplane audit verify` instead of leaving an intact, shorter chain.
 *
 * Each write goes to the older of two slots (generation counter, SHA-256 of the payload) and is
 * fdatasync'd: a write torn by a crash leaves the other slot, the previous note, readable.
 * @example
 * const note = await LedgerGapNote.open('/var/lib/trustplane/audit-spill.jsonl.gaps', 'adapter-1')
 * note.previous            // what the last life of the sink left (undefined: nothing)
 * await note.write({ chainedTo: 1200, gapRecords: [], dropped: 0 })
 * await note.write(undefined) // cleared
 */
export class LedgerGapNote {
  readonly path: string;
  readonly #file: FileHandle;
  readonly #chainId: string;
  #generation: number;
  #previous: GapNoteState | undefined;
  #empty: boolean;
  #closed = false;

  private constructor(path: string, file: FileHandle, chainId: string, newest: Slot | undefined) {
    this.path = path;
    this.#file = file;
    this.#chainId = chainId;
    this.#generation = newest?.generation ?? 0;
    this.#previous = newest?.state;
    this.#empty = newest?.state === undefined;
  }

  /**
   * Open (or create, 0600, {@link GAP_NOTE_BYTES} of zeros, fsync'd with its directory) the note
   * and read what it holds.
   * @param path the note file (`<spill>.gaps`)
   * @param chainId the chain the sink writes
   * @throws Error when the file cannot be created or read, or a non-empty note belongs to another
   *   chain (that loss must not be reported on this one)
   */
  static async open(path: string, chainId: string): Promise<LedgerGapNote> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const file = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      const { size } = await file.stat();
      if (size < GAP_NOTE_BYTES) {
        // Real zeros, not truncate(): the blocks must exist before they are needed.
        const zeros = Buffer.alloc(GAP_NOTE_BYTES - size);
        let done = 0;
        while (done < zeros.length) {
          const { bytesWritten } = await file.write(zeros, done, zeros.length - done, size + done);
          done += bytesWritten;
        }
        await file.sync();
        await syncDirectoryBestEffort(dirname(path));
      }
      const slots = [await readSlot(file, 0), await readSlot(file, 1)];
      const newest = slots.reduce<Slot | undefined>(
        (best, s) => (s !== undefined && (best === undefined || s.generation > best.generation) ? s : best),
        undefined,
      );
      if (newest?.state !== undefined && newest.chainId !== chainId) {
        throw new Error(
          `the gap note ${path} records a loss of chain ${newest.chainId}, not ${chainId}: ` +
            'verify that chain, then remove the note',
        );
      }
      return new LedgerGapNote(path, file, chainId, newest);
    } catch (e) {
      await file.close().catch(() => undefined);
      throw e;
    }
  }

  /** What the note held when it was opened (left by an earlier life of the sink), if anything. */
  get previous(): GapNoteState | undefined {
    return this.#previous;
  }

  /** True when the last note written (or read) says nothing is at risk. */
  get empty(): boolean {
    return this.#empty;
  }

  /**
   * Replace the note (in the older slot, fdatasync'd); `undefined` clears it. At most
   * {@link GAP_NOTE_MAX_GAP_RECORDS} gap records are kept: older ones are folded into one entry
   * (the seq of the newest folded one, their counts added).
   * @throws Error when the write fails (the previous note stays readable)
   */
  async write(state: GapNoteState | undefined): Promise<void> {
    if (this.#closed) throw new Error('the gap note is closed');
    const generation = this.#generation + 1;
    const payload = Buffer.from(
      JSON.stringify({
        v: 1,
        chain_id: this.#chainId,
        generation,
        ...(state === undefined ? {} : { state: fold(state) }),
      }),
      'utf8',
    );
    if (HEADER_BYTES + payload.length > SLOT_BYTES) throw new RangeError('the gap note is too long');
    const slot = Buffer.alloc(SLOT_BYTES);
    slot.writeUInt32LE(payload.length, 0);
    createHash('sha256').update(payload).digest().copy(slot, 4);
    payload.copy(slot, HEADER_BYTES);
    const position = (generation % 2) * SLOT_BYTES;
    let done = 0;
    while (done < slot.length) {
      const { bytesWritten } = await this.#file.write(slot, done, slot.length - done, position + done);
      if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
      done += bytesWritten;
    }
    await this.#file.datasync();
    this.#generation = generation;
    this.#empty = state === undefined;
  }

  /** Close the file (the note stays as last written). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#file.close();
  }
}

/**
 * The gap record an earlier life's note calls for, given what did survive it.
 * @param note what the note said
 * @param durableSeq the last seq that survived: the committed head, the last spilled record, or the
 *   last record set aside (those are counted by their own gap record)
 * @returns the gap to chain, or undefined when nothing was lost
 * @example
 * gapFromNote({ chainedTo: 4010, gapRecords: [], dropped: 0 }, 1478) // lost 2532, seq 1479..4010
 */
export function gapFromNote(note: GapNoteState, durableSeq: number): LedgerGapInput | undefined {
  const fromSeq = durableSeq + 1;
  const toSeq = note.chainedTo;
  const inRange = note.gapRecords.filter((g) => g.seq >= fromSeq && g.seq <= toSeq);
  // A lost gap record is not a lost decision, but what it counted is lost with it.
  const records = Math.max(0, toSeq - durableSeq) - inRange.length;
  const counted = inRange.reduce((n, g) => n + g.lost, 0) + note.dropped;
  const lost = records + counted;
  if (lost <= 0) return undefined;
  const times = {
    ...(note.firstTime !== undefined ? { firstTime: note.firstTime } : {}),
    ...(note.lastTime !== undefined ? { lastTime: note.lastTime } : {}),
  };
  if (toSeq < fromSeq) {
    return {
      reason: 'ledger_event_dropped',
      lost,
      ...times,
      detail:
        `${lost} audit events were dropped before chaining and the process ended before their gap ` +
        'record was durable (from the gap note)',
    };
  }
  return {
    reason: 'ledger_records_lost',
    lost,
    fromSeq,
    toSeq,
    ...times,
    detail:
      `the process ended while records ${fromSeq}..${toSeq} of the previous run were neither in ` +
      'PostgreSQL nor in the spill file (spill writes failing: disk full or I/O error); ' +
      `${lost} events are lost${counted > 0 ? ` (${counted} of them counted by lost gap records or drops)` : ''}; ` +
      'the seq numbers are used again from here (from the gap note)',
  };
}

function fold(state: GapNoteState): GapNoteState {
  if (state.gapRecords.length <= GAP_NOTE_MAX_GAP_RECORDS) return state;
  const cut = state.gapRecords.length - GAP_NOTE_MAX_GAP_RECORDS + 1;
  const folded = state.gapRecords.slice(0, cut);
  const head: GapNoteRecord = {
    seq: folded[folded.length - 1]?.seq ?? 0,
    lost: folded.reduce((n, g) => n + g.lost, 0),
  };
  return { ...state, gapRecords: [head, ...state.gapRecords.slice(cut)] };
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

async function readSlot(file: FileHandle, index: number): Promise<Slot | undefined> {
  const slot = Buffer.alloc(SLOT_BYTES);
  await readExactly(file, slot, index * SLOT_BYTES);
  const length = slot.readUInt32LE(0);
  if (length === 0 || HEADER_BYTES + length > SLOT_BYTES) return undefined;
  const payload = slot.subarray(HEADER_BYTES, HEADER_BYTES + length);
  if (!createHash('sha256').update(payload).digest().equals(slot.subarray(4, HEADER_BYTES))) {
    return undefined; // torn or damaged: the other slot holds the previous note
  }
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v.v !== 1 || !count(v.generation) || typeof v.chain_id !== 'string') return undefined;
  return { generation: v.generation, chainId: v.chain_id, state: parseState(v.state) };
}

function parseState(value: unknown): GapNoteState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const s = value as Record<string, unknown>;
  if (!count(s.chainedTo) || !count(s.dropped) || !Array.isArray(s.gapRecords)) return undefined;
  const gapRecords: GapNoteRecord[] = [];
  for (const g of s.gapRecords as unknown[]) {
    if (typeof g !== 'object' || g === null) return undefined;
    const r = g as Record<string, unknown>;
    if (!count(r.seq) || !count(r.lost)) return undefined;
    gapRecords.push({ seq: r.seq, lost: r.lost });
  }
  return {
    chainedTo: s.chainedTo,
    dropped: s.dropped,
    gapRecords,
    ...(typeof s.firstTime === 'string' ? { firstTime: s.firstTime.slice(0, 64) } : {}),
    ...(typeof s.lastTime === 'string' ? { lastTime: s.lastTime.slice(0, 64) } : {}),
  };
}
