/** `schema` of a gap record: a chained record saying that records of this chain are missing. */
export const LEDGER_GAP_SCHEMA = 'trustplane-ledger-gap-v1';

/** `event_type` of a gap record. */
export const LEDGER_GAP_EVENT_TYPE = 'ledger_gap';

/** Gap records listed one by one in a verification (the totals count them all). */
export const MAX_LISTED_GAPS = 100;

/**
 * Why records are missing, as a registry code (layer `ledger`):
 * - `ledger_event_dropped`: decisions refused before they were chained (the sink's backlog was
 *   over its limit and the spill could not take them, or a write failed); they never had a `seq`;
 * - `ledger_records_lost`: chained records that are gone (`from_seq`..`to_seq`);
 * - `ledger_chain_fork`: records that conflict with the committed chain (another writer used the
 *   chain id), kept aside in the file `set_aside` instead of the chain.
 */
export type LedgerGapReason = 'ledger_event_dropped' | 'ledger_records_lost' | 'ledger_chain_fork';

/**
 * A gap record before it is chained (`trustplane-ledger-gap-v1`). It takes the place of what is
 * missing: it is chained where the loss was noticed, so the chain stays one unbroken hash chain
 * (same record format and hash as any record), and `verifyChain` / `trustplane audit verify`
 * report it instead of passing. Never holds record content: counts, seq numbers, times, a file name.
 */
export type LedgerGapEvent = {
  readonly schema: typeof LEDGER_GAP_SCHEMA;
  readonly event_id: string;
  /** When the gap was recorded (RFC 3339 UTC). */
  readonly time: string;
  readonly event_type: typeof LEDGER_GAP_EVENT_TYPE;
  readonly reason: LedgerGapReason;
  /** How many decisions (or records) of this chain are missing from it. */
  readonly lost: number;
  /** The seq numbers the missing records had, when they were chained (first and last). */
  readonly from_seq?: number;
  readonly to_seq?: number;
  /** When the first and the last missing decision happened, when known. */
  readonly first_time?: string;
  readonly last_time?: string;
  /** The file the missing records were kept in (a fork loser's records), if any. */
  readonly set_aside?: string;
  /** One sentence for the operator. */
  readonly detail: string;
};

/** What a gap record says, as {@link ledgerGapEvent} takes it. */
export interface LedgerGapInput {
  readonly reason: LedgerGapReason;
  readonly lost: number;
  readonly fromSeq?: number;
  readonly toSeq?: number;
  readonly firstTime?: string;
  readonly lastTime?: string;
  readonly setAside?: string;
  readonly detail: string;
}

/**
 * Build a gap record (to be chained by the sink that noticed the loss).
 * @param gap what is missing
 * @param now when it is recorded
 * @returns the event
 * @example
 * chain.append(ledgerGapEvent({ reason: 'ledger_event_dropped', lost: 12, detail: 'audit buffer full' }))
 */
export function ledgerGapEvent(gap: LedgerGapInput, now: Date = new Date()): LedgerGapEvent {
  if (!Number.isSafeInteger(gap.lost) || gap.lost < 0) throw new RangeError('lost must be a count');
  return {
    schema: LEDGER_GAP_SCHEMA,
    event_id: globalThis.crypto.randomUUID(),
    time: now.toISOString(),
    event_type: LEDGER_GAP_EVENT_TYPE,
    reason: gap.reason,
    lost: gap.lost,
    ...(gap.fromSeq !== undefined ? { from_seq: gap.fromSeq } : {}),
    ...(gap.toSeq !== undefined ? { to_seq: gap.toSeq } : {}),
    ...(gap.firstTime !== undefined ? { first_time: gap.firstTime } : {}),
    ...(gap.lastTime !== undefined ? { last_time: gap.lastTime } : {}),
    ...(gap.setAside !== undefined ? { set_aside: gap.setAside } : {}),
    detail: gap.detail.slice(0, 512),
  };
}

/** One gap record found in a chain. */
export interface ChainGap {
  /** The gap record's own seq. */
  readonly seq: number;
  readonly reason: string;
  /** Decisions or records missing (0 when the record does not say). */
  readonly lost: number;
  readonly fromSeq?: number;
  readonly toSeq?: number;
  readonly setAside?: string;
  readonly detail?: string;
}

/** The gap records of a verified chain: totals, and the first {@link MAX_LISTED_GAPS} of them. */
export interface ChainGaps {
  /** Gap records. */
  readonly records: number;
  /** Sum of their `lost`. */
  readonly lost: number;
  readonly listed: readonly ChainGap[];
}

const count = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
const text = (v: unknown, max: number): string | undefined =>
  typeof v === 'string' ? v.slice(0, max) : undefined;

/** The gap a (hash-verified) record states, or undefined when it is not a gap record. */
export function chainGapOf(record: Readonly<Record<string, unknown>>): ChainGap | undefined {
  if (record.schema !== LEDGER_GAP_SCHEMA || record.event_type !== LEDGER_GAP_EVENT_TYPE) return undefined;
  const fromSeq = count(record.from_seq);
  const toSeq = count(record.to_seq);
  const setAside = text(record.set_aside, 4096);
  const detail = text(record.detail, 512);
  return {
    seq: count(record.seq) ?? 0,
    reason: text(record.reason, 64) ?? 'unknown',
    lost: count(record.lost) ?? 0,
    ...(fromSeq !== undefined ? { fromSeq } : {}),
    ...(toSeq !== undefined ? { toSeq } : {}),
    ...(setAside !== undefined ? { setAside } : {}),
    ...(detail !== undefined ? { detail } : {}),
  };
}

/** Adds up the gap records of a chain walked in pieces (a stream, rows). */
export class GapTally {
  #records = 0;
  #lost = 0;
  readonly #listed: ChainGap[] = [];

  /** Count one gap. */
  add(gap: ChainGap): void {
    this.#records++;
    this.#lost += gap.lost;
    if (this.#listed.length < MAX_LISTED_GAPS) this.#listed.push(gap);
  }

  /** Count the gaps of a piece. */
  merge(gaps: ChainGaps | undefined): void {
    if (gaps === undefined) return;
    this.#records += gaps.records;
    this.#lost += gaps.lost;
    for (const g of gaps.listed) if (this.#listed.length < MAX_LISTED_GAPS) this.#listed.push(g);
  }

  /** The totals, or undefined when there was no gap record. */
  result(): ChainGaps | undefined {
    return this.#records === 0
      ? undefined
      : { records: this.#records, lost: this.#lost, listed: [...this.#listed] };
  }
}
