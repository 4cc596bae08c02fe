import type pg from 'pg';
import type { ChainHead, LedgerEntry } from './chain.js';
import type { LedgerGapInput, LedgerGapReason } from './ledger-gap.js';
import { LEDGER_TABLE } from './ledger-migrations.js';
import type { SetAsideResult, SpillBuffer } from './spill-buffer.js';

/** Spill records compared with PostgreSQL per query. */
const PAGE = 1000;

/** The outcome of {@link reconcileSpill}. */
export interface SpillReconciliation {
  /** Where the sink's chain resumes: the last spilled record that continues PostgreSQL, or its head. */
  readonly head: ChainHead;
  /** Spilled records that could not join the committed chain, now in their own file. */
  readonly setAside?: SetAsideResult;
  /** The gap record to chain for them (they are missing from the chain). */
  readonly gap?: LedgerGapInput;
}

/**
 * Before a spill file left by an earlier life of the sink is written to PostgreSQL, check that it
 * continues the committed chain:
 * - a spilled record whose seq is at or below the committed head must be stored with the same
 *   hash (it was committed before the crash: skipped); another hash means another writer used the
 *   chain id (a fork: this sink lost);
 * - the first record past the head must be the next seq and link to the head's hash (else records
 *   between are gone, or it belongs to a fork);
 * - the rest of the file must be one unbroken run.
 * From the first record that fails, every spilled record is moved to `<spill>.conflict-<ms>.jsonl`
 * (kept, never dropped: they chain from the conflicting one), and a gap record describes them.
 * @returns the head to resume from, and what was set aside
 */
export async function reconcileSpill(
  pool: pg.Pool,
  chainId: string,
  stored: ChainHead,
  spill: SpillBuffer,
  now: Date = new Date(),
): Promise<SpillReconciliation> {
  const total = spill.fileRecords;
  if (total === 0) return { head: stored };
  let index = 0;
  let conflictAt: number | undefined;
  let reason: LedgerGapReason = 'ledger_chain_fork';
  let missing = 0;
  while (index < total && conflictAt === undefined) {
    const page = await spill.peekAt(index, PAGE);
    let below = 0;
    while (below < page.length && (page[below]?.seq ?? Infinity) <= stored.seq) below++;
    if (below > 0) {
      const hashes = await storedHashes(pool, chainId, page.slice(0, below));
      for (let j = 0; j < below; j++) {
        const r = page[j]!;
        if (hashes.get(r.seq) !== r.record_hash) {
          conflictAt = index + j;
          break;
        }
      }
    }
    if (conflictAt !== undefined) break;
    index += below;
    if (below < page.length || page.length === 0) break;
  }
  const matched = conflictAt ?? index;
  if (conflictAt === undefined && index < total) {
    const [next] = await spill.peekAt(index, 1);
    if (next !== undefined && (next.seq !== stored.seq + 1 || next.prev_hash !== stored.hash)) {
      conflictAt = index;
      if (next.seq > stored.seq + 1) {
        reason = 'ledger_records_lost';
        missing = next.seq - stored.seq - 1;
      }
    }
  }
  const broken = spill.discontinuity;
  if (broken !== undefined && (conflictAt === undefined || broken < conflictAt)) {
    const [before, at] = await spill.peekAt(broken - 1, 2);
    conflictAt = broken;
    reason = 'ledger_chain_fork';
    missing = 0;
    if (before !== undefined && at !== undefined && at.seq > before.seq + 1) {
      reason = 'ledger_records_lost';
      missing = at.seq - before.seq - 1;
    }
  }

  let setAside: SetAsideResult | undefined;
  if (conflictAt !== undefined) {
    setAside = await spill.setAside(conflictAt, `${spill.path}.conflict-${now.getTime()}.jsonl`);
  }
  // Records PostgreSQL already holds are done with: the file then starts with what is still to do
  // (and is emptied when that is nothing), so later appends continue it.
  const done = Math.min(matched, conflictAt ?? matched);
  if (done > 0) await spill.consume(done);
  const last: LedgerEntry | undefined = spill.last;
  const head =
    last !== undefined && last.seq > stored.seq ? { chainId, seq: last.seq, hash: last.record_hash } : stored;
  if (setAside === undefined) return { head };

  const fromSeq = reason === 'ledger_records_lost' ? setAside.firstSeq - missing : setAside.firstSeq;
  const what =
    reason === 'ledger_records_lost'
      ? `records ${fromSeq}..${setAside.firstSeq - 1} are neither in PostgreSQL nor in the spill file, and the ` +
        `${setAside.count} spilled records after them (seq ${setAside.firstSeq}..${setAside.lastSeq}) cannot be linked`
      : `${setAside.count} spilled records (seq ${setAside.firstSeq}..${setAside.lastSeq}) conflict with the ` +
        'committed chain (another writer used this chain id: a fork)';
  return {
    head,
    setAside,
    gap: {
      reason,
      lost: setAside.count + missing,
      fromSeq,
      toSeq: setAside.lastSeq,
      ...(setAside.firstTime !== undefined ? { firstTime: setAside.firstTime } : {}),
      ...(setAside.lastTime !== undefined ? { lastTime: setAside.lastTime } : {}),
      setAside: setAside.path,
      detail: `${what}; set aside in ${setAside.path}`,
    },
  };
}

async function storedHashes(
  pool: pg.Pool,
  chainId: string,
  records: readonly LedgerEntry[],
): Promise<Map<number, string>> {
  const result = await pool.query<{ seq: string; record_hash: string }>(
    `SELECT seq::text AS seq, record_hash FROM ${LEDGER_TABLE} WHERE chain_id = $1 AND seq = ANY($2::bigint[])`,
    [chainId, records.map((r) => String(r.seq))],
  );
  return new Map(result.rows.map((r) => [Number(r.seq), r.record_hash]));
}
