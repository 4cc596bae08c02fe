import { canonicalMembers, canonicalizeJson } from '../internal/jcs.js';
import { sha256HexSync } from '../internal/sha256.js';
import type { AuditEvent } from './event.js';
import { GapTally, chainGapOf, type ChainGaps, type LedgerGapEvent } from './ledger-gap.js';

/** Domain-separation prefix of a ledger record hash. */
export const LEDGER_RECORD_PREFIX = 'trustplane-ledger-record-v1\n';
/** `prev_hash` of the first record of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * A ledger record: an audit event with its place in a tamper-evident chain.
 * - `chain_id`: which chain (one per sink instance, e.g. the adapter instance name);
 * - `seq`: 1 for the first record of the chain, then +1;
 * - `prev_hash`: the previous record's `record_hash` (`GENESIS_HASH` for seq 1);
 * - `record_hash`: lowercase hex SHA-256 of `LEDGER_RECORD_PREFIX` + RFC 8785 (JCS) canonical JSON
 *   of the record without `record_hash`.
 */
export type LedgerRecord = AuditEvent & LedgerChainFields;

/** The chain fields every ledger record carries (a type, not an interface: records index as plain objects). */
export type LedgerChainFields = {
  readonly chain_id: string;
  readonly seq: number;
  readonly prev_hash: string;
  readonly record_hash: string;
};

/** A chained gap record (see `ledger-gap.ts`): where records of the chain are missing. */
export type LedgerGapRecord = LedgerGapEvent & LedgerChainFields;

/** Anything a ledger holds: a chained audit event or a chained gap record. */
export type LedgerEntry = LedgerRecord | LedgerGapRecord;

/** Where a chain stands: the last record's seq and hash (seq 0 and genesis for an empty chain). */
export interface ChainHead {
  readonly chainId: string;
  readonly seq: number;
  readonly hash: string;
}

/** The `record_hash` of a record (its own `record_hash` member, if any, is ignored). */
export function ledgerRecordHash(record: Readonly<Record<string, unknown>>): string {
  const { record_hash: _ignored, ...rest } = record;
  return recordHashOfCanonical(canonicalizeJson(rest));
}

/** The `record_hash` of a record whose canonical JSON (without `record_hash`) is `canonical`. */
function recordHashOfCanonical(canonical: string): string {
  return sha256HexSync(LEDGER_RECORD_PREFIX + canonical);
}

/**
 * Appends events to one chain: each call returns the next record. Not thread-safe by design: a
 * sink calls it in the order it writes.
 * @example
 * const chain = new HashChain({ chainId: 'adapter-1', seq: 0, hash: GENESIS_HASH })
 * const record = chain.append(event)
 */
export class HashChain {
  #head: ChainHead;

  constructor(head: ChainHead) {
    if (!Number.isSafeInteger(head.seq) || head.seq < 0) throw new RangeError('chain seq must be >= 0');
    if (!/^[0-9a-f]{64}$/.test(head.hash)) throw new TypeError('chain hash must be 64 lowercase hex');
    this.#head = head;
  }

  /** The chain head after the last appended record. */
  get head(): ChainHead {
    return this.#head;
  }

  /** The next record for `event` (chain fields in the event are replaced). */
  append(event: AuditEvent): LedgerRecord;
  /** The next record for a gap event. */
  append(event: LedgerGapEvent): LedgerGapRecord;
  append(event: AuditEvent | LedgerGapEvent): LedgerEntry;
  append(event: AuditEvent | LedgerGapEvent): LedgerEntry {
    return this.appendLine(event).record;
  }

  /**
   * The next record for `event`, and its canonical JSON text (RFC 8785, no newline): what a ledger
   * file stores, serialized once together with the hash input rather than twice.
   * @example
   * const { record, line } = chain.appendLine(event)
   */
  appendLine(event: AuditEvent): { readonly record: LedgerRecord; readonly line: string };
  appendLine(event: AuditEvent | LedgerGapEvent): { readonly record: LedgerEntry; readonly line: string };
  appendLine(event: AuditEvent | LedgerGapEvent): { readonly record: LedgerEntry; readonly line: string } {
    const source = event as unknown as Readonly<Record<string, unknown>>;
    const body: Record<string, unknown> = {};
    for (const key of Object.keys(source)) {
      if (!CHAIN_FIELDS.has(key)) body[key] = source[key];
    }
    body.chain_id = this.#head.chainId;
    body.seq = this.#head.seq + 1;
    body.prev_hash = this.#head.hash;
    const members = canonicalMembers(body);
    let canonical = '{';
    for (let i = 0; i < members.length; i++) canonical += (i === 0 ? '' : ',') + members[i]![1];
    canonical += '}';
    const record_hash = recordHashOfCanonical(canonical);
    this.#head = { chainId: this.#head.chainId, seq: body.seq as number, hash: record_hash };
    body.record_hash = record_hash;
    // record_hash in its canonical place: after every member name that sorts before it.
    let at = 0;
    while (at < members.length && members[at]![0] < 'record_hash') at++;
    let line = '{';
    for (let i = 0; i < at; i++) line += members[i]![1] + ',';
    line += `"record_hash":"${record_hash}"`;
    for (let i = at; i < members.length; i++) line += ',' + members[i]![1];
    line += '}';
    return { record: body as LedgerEntry, line };
  }
}

/** The members a chain sets on each record (replaced when an event carries them). */
const CHAIN_FIELDS: ReadonlySet<string> = new Set(['chain_id', 'seq', 'prev_hash', 'record_hash']);

/** The first broken link of a chain, with its position (1-based, in the order read). */
export interface ChainBreak {
  /** 1-based position of the offending record in the input. */
  readonly position: number;
  /** Its `seq` as stored (may be missing or wrong). */
  readonly seq: number | undefined;
  readonly problem:
    'malformed_record' | 'record_hash_mismatch' | 'prev_hash_mismatch' | 'seq_gap' | 'chain_id_mismatch';
  readonly message: string;
}

/** Result of {@link verifyChain}. */
export interface ChainVerification {
  readonly ok: boolean;
  /** Records read. */
  readonly count: number;
  /** The verified head (up to the first break). */
  readonly head: ChainHead | undefined;
  readonly firstBreak?: ChainBreak;
  /**
   * The gap records among the verified records: the chain is intact, but it says that records
   * are missing (dropped before chaining, lost, or set aside after a fork). Absent when none.
   */
  readonly gaps?: ChainGaps;
}

/**
 * Walk one chain in order and report the first broken link: an edited record (its hash no longer
 * matches), a deleted record (a seq gap and a prev_hash that does not link), records swapped
 * (seq out of order), or a record from another chain. A chain may start after genesis when
 * `from` is given (a verified checkpoint). Gap records (`trustplane-ledger-gap-v1`) are links like
 * any other; they are counted in `gaps`, so an intact chain that admits missing records is told
 * apart from a complete one.
 * @example
 * const result = verifyChain(records)
 * if (!result.ok) console.error(`broken at record ${result.firstBreak.position}: ${result.firstBreak.message}`)
 */
export function verifyChain(records: Iterable<unknown>, from?: ChainHead): ChainVerification {
  let head: ChainHead | undefined = from;
  let position = 0;
  const gaps = new GapTally();
  const withGaps = (result: ChainVerification): ChainVerification => {
    const found = gaps.result();
    return found === undefined ? result : { ...result, gaps: found };
  };
  for (const raw of records) {
    position++;
    const fail = (problem: ChainBreak['problem'], message: string, seq?: number): ChainVerification =>
      withGaps({
        ok: false,
        count: position,
        head,
        firstBreak: { position, seq, problem, message },
      });
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      return fail('malformed_record', 'not a JSON object');
    }
    const r = raw as Record<string, unknown>;
    const seq = typeof r.seq === 'number' && Number.isSafeInteger(r.seq) ? r.seq : undefined;
    if (
      typeof r.chain_id !== 'string' ||
      seq === undefined ||
      typeof r.prev_hash !== 'string' ||
      typeof r.record_hash !== 'string'
    ) {
      return fail('malformed_record', 'missing chain_id, seq, prev_hash or record_hash', seq);
    }
    let hash: string;
    try {
      hash = ledgerRecordHash(r);
    } catch {
      return fail('malformed_record', 'the record is not canonicalizable JSON', seq);
    }
    if (hash !== r.record_hash) {
      return fail('record_hash_mismatch', `record seq ${seq} was modified (its hash does not match)`, seq);
    }
    if (head === undefined) head = { chainId: r.chain_id, seq: 0, hash: GENESIS_HASH };
    if (r.chain_id !== head.chainId) {
      return fail(
        'chain_id_mismatch',
        `record seq ${seq} belongs to chain ${r.chain_id}, not ${head.chainId}`,
        seq,
      );
    }
    if (seq !== head.seq + 1) {
      return fail(
        'seq_gap',
        `expected seq ${head.seq + 1}, found ${seq} (a record was deleted, inserted or reordered)`,
        seq,
      );
    }
    if (r.prev_hash !== head.hash) {
      return fail('prev_hash_mismatch', `record seq ${seq} does not link to the previous record`, seq);
    }
    head = { chainId: head.chainId, seq, hash };
    const gap = chainGapOf(r);
    if (gap !== undefined) gaps.add(gap);
  }
  return withGaps({ ok: true, count: position, head });
}
