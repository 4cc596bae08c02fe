import { verifyChain, type ChainBreak, type ChainHead, type ChainVerification } from './chain.js';
import { GapTally } from './ledger-gap.js';
import { LEDGER_TABLE } from './ledger-migrations.js';
import {
  cursorRows,
  positiveInt,
  withClient,
  type PostgresLedgerReadOptions,
} from './postgres-ledger-connection.js';
import { SELECT_LIST, columnMismatch, type LedgerRow } from './postgres-ledger-rows.js';

/** A chain break in PostgreSQL: an edited indexed column reports `record_hash_mismatch` with `column`. */
export interface PostgresChainBreak extends ChainBreak {
  /** The column whose value differs from the hashed record (when that is the break). */
  readonly column?: string;
}

/** The verification of one chain. */
export interface PostgresChainVerification extends ChainVerification {
  readonly chainId: string;
  /** Rows of this chain read (all of them, also past a break). */
  readonly rows: number;
  readonly firstBreak?: PostgresChainBreak;
}

/**
 * Result of {@link verifyPostgresLedger}: the per-chain results, and (so it reads like a single
 * {@link ChainVerification}) `ok` when every chain verifies, `count` the rows read, `head` the head of
 * the only (or first broken) chain, `firstBreak` the first break of the first broken chain, and
 * `gaps` the gap records of every chain added up (each chain has its own in `chains`).
 */
export interface PostgresLedgerVerification extends ChainVerification {
  readonly chains: readonly PostgresChainVerification[];
  readonly firstBreak?: PostgresChainBreak;
}

class ChainChecker {
  readonly chainId: string;
  #head: ChainHead | undefined;
  #rows = 0;
  #break: PostgresChainBreak | undefined;
  readonly #gaps = new GapTally();

  constructor(chainId: string) {
    this.chainId = chainId;
  }

  add(row: LedgerRow): void {
    this.#rows++;
    if (this.#break !== undefined) return;
    const position = this.#rows;
    const record = row.record;
    const result = verifyChain([record], this.#head);
    if (!result.ok) {
      const b = result.firstBreak;
      this.#break = {
        position,
        seq: b?.seq ?? undefined,
        problem: b?.problem ?? 'malformed_record',
        message: b?.message ?? 'the record does not verify',
      };
      return;
    }
    const column = columnMismatch(row, record as Readonly<Record<string, unknown>>);
    if (column !== undefined) {
      this.#break = {
        position,
        seq: Number(row.seq),
        problem: 'record_hash_mismatch',
        message: `row seq ${row.seq} was modified: column ${column} differs from its hashed record`,
        column,
      };
      return;
    }
    this.#head = result.head;
    this.#gaps.merge(result.gaps);
  }

  result(): PostgresChainVerification {
    const b = this.#break;
    const gaps = this.#gaps.result();
    return {
      chainId: this.chainId,
      ok: b === undefined,
      count: b === undefined ? this.#rows : b.position,
      rows: this.#rows,
      head: this.#head,
      ...(b !== undefined ? { firstBreak: b } : {}),
      ...(gaps !== undefined ? { gaps } : {}),
    };
  }
}

/**
 * Verify the chains stored in PostgreSQL: rows are streamed in (chain_id, seq) order through a
 * cursor (bounded memory, one consistent snapshot); each record is rebuilt from its `record`
 * column and walked with {@link verifyChain}, and its indexed columns must equal the record (an
 * edited column is a break too). Positions are 1-based within each chain, in seq order.
 * @param url connection URL (the password never appears in errors)
 * @param chainId verify only this chain (default: every chain)
 * @param options page size and timeouts
 * @returns per-chain results, and the overall verdict
 * @throws {@link LedgerError} `ledger_unavailable` when PostgreSQL cannot be reached, `ledger_error`
 *   when it refuses (`details.sqlstate`)
 * @example
 * const result = await verifyPostgresLedger(url, 'adapter-1')
 * if (!result.ok) console.error(`broken at ${result.firstBreak?.position}: ${result.firstBreak?.message}`)
 */
export async function verifyPostgresLedger(
  url: string,
  chainId?: string,
  options: PostgresLedgerReadOptions = {},
): Promise<PostgresLedgerVerification> {
  const pageSize = positiveInt('pageSize', options.pageSize, 1000, 100_000);
  const chains = await withClient(
    url,
    options,
    'cannot verify the PostgreSQL audit ledger',
    async (client) => {
      const where = chainId === undefined ? '' : 'WHERE chain_id = $1';
      const sql = `SELECT ${SELECT_LIST} FROM ${LEDGER_TABLE} ${where} ORDER BY chain_id, ${LEDGER_TABLE}.seq`;
      const done: PostgresChainVerification[] = [];
      let current: ChainChecker | undefined;
      for await (const row of cursorRows(client, sql, chainId === undefined ? [] : [chainId], pageSize)) {
        if (current?.chainId !== row.chain_id) {
          if (current) done.push(current.result());
          current = new ChainChecker(row.chain_id);
        }
        current.add(row);
      }
      if (current) done.push(current.result());
      return done;
    },
  );
  if (chainId !== undefined && chains.length === 0) {
    chains.push({ chainId, ok: true, count: 0, rows: 0, head: undefined });
  }
  const broken = chains.find((c) => !c.ok);
  const rows = chains.reduce((n, c) => n + c.rows, 0);
  const tally = new GapTally();
  for (const c of chains) tally.merge(c.gaps);
  const gaps = tally.result();
  const withGaps = gaps !== undefined ? { gaps } : {};
  if (broken === undefined) {
    return {
      ok: true,
      count: rows,
      head: chains.length === 1 ? chains[0]?.head : undefined,
      chains,
      ...withGaps,
    };
  }
  const b = broken.firstBreak;
  return {
    ok: false,
    count: broken.count,
    head: broken.head,
    chains,
    ...withGaps,
    ...(b !== undefined
      ? { firstBreak: chains.length > 1 ? { ...b, message: `chain ${broken.chainId}: ${b.message}` } : b }
      : {}),
  };
}
