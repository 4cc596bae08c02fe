import { verifyChain, type ChainHead, type ChainVerification } from './chain.js';
import { GapTally } from './ledger-gap.js';
import { UnreadableRecord } from './unreadable-record.js';

/** Records handed to {@link verifyChain} at a time by {@link verifyLedgerStream}. */
const VERIFY_BATCH = 1024;

/**
 * {@link verifyChain} over a stream of records (a ledger file read line by line, database rows),
 * in bounded memory. The result is the one `verifyChain` gives for the same records in one array:
 * the first broken link with its 1-based position, or the verified head, and the gap records.
 * @param records records in ledger order (`unknown`: they are untrusted)
 * @param from a verified checkpoint to continue from (default: the chain starts at genesis)
 * @returns the verification; `firstBreak.problem` is `malformed_record` for an {@link UnreadableRecord}
 * @example
 * const result = await verifyLedgerStream(readLedgerFile('/var/log/trustplane/ledger.jsonl'))
 */
export async function verifyLedgerStream(
  records: AsyncIterable<unknown> | Iterable<unknown>,
  from?: ChainHead,
): Promise<ChainVerification> {
  let head = from;
  let offset = 0;
  let batch: unknown[] = [];
  const tally = new GapTally();
  const withGaps = (result: ChainVerification): ChainVerification => {
    const gaps = tally.result();
    return gaps === undefined ? result : { ...result, gaps };
  };
  const check = (): ChainVerification | undefined => {
    const result = verifyChain(batch, head);
    tally.merge(result.gaps);
    if (!result.ok && result.firstBreak !== undefined) {
      return withGaps({
        ok: false,
        count: offset + result.count,
        head: result.head,
        firstBreak: { ...result.firstBreak, position: offset + result.firstBreak.position },
      });
    }
    head = result.head;
    offset += batch.length;
    batch = [];
    return undefined;
  };
  for await (const raw of records) {
    if (raw instanceof UnreadableRecord) {
      const broken = check();
      if (broken) return broken;
      const position = offset + 1;
      return withGaps({
        ok: false,
        count: position,
        head,
        firstBreak: { position, seq: undefined, problem: 'malformed_record', message: raw.problem },
      });
    }
    batch.push(raw);
    if (batch.length >= VERIFY_BATCH) {
      const broken = check();
      if (broken) return broken;
    }
  }
  return check() ?? withGaps({ ok: true, count: offset, head });
}
