import { once } from 'node:events';
import { statSync } from 'node:fs';
import { Option, type Command } from 'commander';
import {
  GENESIS_HASH,
  LedgerError,
  formatTable,
  queryRecords,
  readLedgerFile,
  verifyLedgerStream,
  type ChainGap,
  type ChainHead,
  type ChainVerification,
  type LedgerQuery,
  type QueriedRecord,
} from '../../../pkg/audit/index.js';
import { CliError, errnoCode } from '../io.js';

/**
 * Verifies the chains stored in a PostgreSQL ledger (`--postgres URL`), optionally one chain of it.
 * Same result shape as the file verification (positions counted within the chain, in seq order),
 * plus the per-chain results when there are several.
 */
export type PostgresLedgerVerifier = (
  url: string,
  chainId?: string,
) => Promise<
  ChainVerification & { readonly chains?: readonly (ChainVerification & { readonly chainId: string })[] }
>;

/**
 * The PostgreSQL verifier. Its failures are {@link LedgerError}s (`ledger_unavailable`,
 * `ledger_error`): their messages name the database by its redacted URL, never the password, and
 * the CLI prints their reason.
 */
async function loadPostgresVerifier(): Promise<PostgresLedgerVerifier> {
  const { verifyPostgresLedger } = await import('../../../pkg/audit/index.js');
  return verifyPostgresLedger;
}

/** Columns of the `audit query` table. */
const QUERY_COLUMNS = ['time', 'decision', 'status', 'reason', 'route_id', 'sub', 'jti'] as const;
/** Rows the table shows without `--limit` (the table is built in memory; `--json` streams). */
const DEFAULT_TABLE_ROWS = 1000;
/** RFC 3339 date-time with a zone, or a date (UTC midnight); local times are ambiguous. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?$/i;

interface VerifyFlags {
  file?: string;
  postgres?: string;
  chainId?: string;
  acceptGaps?: boolean;
}

interface QueryFlags {
  file?: string;
  postgres?: string;
  chainId?: string;
  sub?: string;
  iss?: string;
  jti?: string;
  route?: string;
  decision?: 'allow' | 'deny';
  reason?: string;
  eventType?: string;
  since?: string;
  until?: string;
  limit?: number;
  json?: boolean;
}

function parseLimit(value: string): number {
  if (!/^\d{1,15}$/.test(value) || Number(value) < 1) {
    throw new CliError('--limit must be a positive integer', 'usage', 2);
  }
  return Number(value);
}

function requireFile(path: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new CliError(`no such file: ${path}`, 'file_not_found');
    throw new CliError(`cannot read ${path}`, 'io');
  }
  if (!isFile) throw new CliError(`${path} is not a file`, 'io');
}

function parseTime(flag: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (!ISO_TIME.test(value) || Number.isNaN(date.getTime())) {
    throw new CliError(
      `${flag} must be an ISO 8601 date (2026-01-31) or date-time with a zone (2026-01-31T12:00:00Z)`,
      'usage',
      2,
    );
  }
  return date;
}

/**
 * Run a ledger read, turning a file read failure (the file vanished, EACCES) into an `io` error. A
 * {@link LedgerError} (PostgreSQL) keeps its reason; its message is already redacted.
 */
async function reading<T>(path: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof CliError || e instanceof LedgerError) throw e;
    // Our reader went away (`| head -1`): not a read failure; runCli ends quietly.
    if (errnoCode(e) === 'EPIPE') throw e;
    throw new CliError(`cannot read ${path}`, 'io');
  }
}

/** One `gap:` line: the gap record's seq, what is missing and why. */
function gapLine(chainId: string, gap: ChainGap): string {
  const what =
    gap.reason === 'ledger_event_dropped'
      ? `${gap.lost} events dropped before chaining`
      : `${gap.lost} records missing${gap.fromSeq !== undefined ? ` (seq ${gap.fromSeq}..${gap.toSeq ?? '?'})` : ''}`;
  const aside = gap.setAside !== undefined ? `, set aside in ${gap.setAside}` : '';
  return `gap: chain ${chainId} seq ${gap.seq}: ${what} (${gap.reason})${aside}`;
}

function printVerification(
  result: Awaited<ReturnType<PostgresLedgerVerifier>>,
  chainId: string | undefined,
  acceptGaps: boolean,
): void {
  if (!result.ok) {
    const at = result.firstBreak;
    throw new LedgerError(
      'audit_chain_broken',
      at === undefined
        ? 'the chain does not verify'
        : `broken at record ${at.position} (seq ${at.seq ?? '?'}): ${at.message}`,
    );
  }
  // A PostgreSQL ledger may hold several chains: one line each.
  const chains =
    result.chains !== undefined && result.chains.length > 1
      ? result.chains
      : [{ ...result, chainId: result.head?.chainId ?? chainId ?? '-' }];
  for (const chain of chains) {
    const head = chain.head ?? { seq: 0, hash: GENESIS_HASH };
    const gaps = chain.gaps;
    const summary =
      gaps === undefined
        ? ''
        : `, ${gaps.records} gap record${gaps.records === 1 ? '' : 's'} (${gaps.lost} lost)`;
    process.stdout.write(
      `ok: ${chain.count} records, chain ${chain.chainId}, head seq ${head.seq} hash ${head.hash}${summary}\n`,
    );
    if (gaps === undefined) continue;
    for (const gap of gaps.listed) process.stdout.write(`${gapLine(chain.chainId, gap)}\n`);
    if (gaps.records > gaps.listed.length) {
      process.stdout.write(
        `gap: chain ${chain.chainId}: ${gaps.records - gaps.listed.length} more gap records\n`,
      );
    }
  }
  // An intact chain that says records are missing is not a complete ledger.
  const gapped = chains.filter((c) => c.gaps !== undefined);
  if (gapped.length > 0 && !acceptGaps) {
    const lost = gapped.reduce((n, c) => n + (c.gaps?.lost ?? 0), 0);
    const records = gapped.reduce((n, c) => n + (c.gaps?.records ?? 0), 0);
    throw new LedgerError(
      'ledger_records_lost',
      `the chain is intact but ${records} gap record${records === 1 ? ' says' : 's say'} ${lost} ` +
        `event${lost === 1 ? ' is' : 's are'} missing from it (see the gap lines; --accept-gaps exits 0)`,
    );
  }
}

/** `trustplane audit …` */
export function registerAudit(program: Command): void {
  const audit = program
    .command('audit')
    .description('Verify and query the tamper-evident audit ledger (hash-chained JSON lines).')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  trustplane audit verify --file /var/log/trustplane/ledger.jsonl',
        '  trustplane audit query --file /var/log/trustplane/ledger.jsonl --decision deny --since 2026-01-31',
      ].join('\n'),
    );

  audit
    .command('verify')
    .description(
      'Check that a ledger is one unbroken hash chain: no record edited, deleted, inserted or reordered. ' +
        'Exit 0 and print the head, or exit 1 naming the first broken record.',
    )
    .option('--file <file>', 'ledger file (JSON lines, as written by the file ledger sink)')
    .option('--postgres <url>', 'PostgreSQL ledger connection URL (instead of --file)')
    .option('--chain-id <id>', 'require this chain id (with --postgres: verify only this chain)')
    .option('--accept-gaps', 'exit 0 when the chain is intact but holds gap records (they are still listed)')
    .addHelpText(
      'after',
      [
        '',
        'Output: "ok: N records, chain ID, head seq S hash H" on success (with --postgres, one line',
        'per chain); on a break, exit 1 with "trustplane: audit_chain_broken: broken at record P',
        '(seq S): ..." where P is the 1-based line number (with --postgres, the position in its chain).',
        'A chain holding gap records (events the sink dropped, lost or set aside, see docs/ledger.md)',
        'adds ", K gap records (L lost)" and one "gap: chain ID seq S: ..." line per gap record, then',
        'exits 1 with "trustplane: ledger_records_lost: ..." (0 with --accept-gaps).',
        'A chain cannot show records cut off at its end, or a rewritten tail: keep the printed head',
        'elsewhere and compare. A file still being written may end with a partial line.',
        '',
        'Examples:',
        '  trustplane audit verify --file /var/log/trustplane/ledger.jsonl',
        '  trustplane audit verify --file ledger.jsonl --chain-id adapter-1',
        '  trustplane audit verify --postgres postgresql://auditor@db.internal/trustplane --chain-id adapter-1',
      ].join('\n'),
    )
    .action(async (opts: VerifyFlags) => {
      if ((opts.file === undefined) === (opts.postgres === undefined)) {
        throw new CliError('give exactly one of --file or --postgres', 'usage', 2);
      }
      if (opts.chainId === '') throw new CliError('--chain-id must not be empty', 'usage', 2);
      if (opts.postgres !== undefined) {
        const verifyPostgresLedger = await loadPostgresVerifier();
        printVerification(
          await verifyPostgresLedger(opts.postgres, opts.chainId),
          opts.chainId,
          opts.acceptGaps === true,
        );
        return;
      }
      const file = opts.file!;
      requireFile(file);
      // With --chain-id the first record must open that chain (a record of another chain breaks it).
      const from: ChainHead | undefined =
        opts.chainId !== undefined ? { chainId: opts.chainId, seq: 0, hash: GENESIS_HASH } : undefined;
      const result = await reading(file, () => verifyLedgerStream(readLedgerFile(file), from));
      printVerification(result, opts.chainId, opts.acceptGaps === true);
    });

  audit
    .command('query')
    .description(
      'List ledger records matching every filter given, as a table or JSON lines. Does not check the chain: ' +
        'run trustplane audit verify for that.',
    )
    .option('--file <file>', 'ledger file (JSON lines)')
    .option('--postgres <url>', 'PostgreSQL ledger connection URL (instead of --file; uses its indexes)')
    .option('--chain-id <id>', 'with --postgres: only this chain')
    .option('--sub <subject>', 'passport subject')
    .option('--iss <issuer>', 'passport issuer')
    .option('--jti <jti>', 'passport jti')
    .option('--route <route-id>', 'route id')
    .addOption(new Option('--decision <decision>', 'allow or deny').choices(['allow', 'deny']))
    .option('--reason <code>', 'reason code of a deny, e.g. jti_replay')
    .option('--event-type <type>', 'event type, e.g. authorization_decision')
    .option('--since <time>', 'records at or after this time (ISO 8601; a date is UTC midnight)')
    .option('--until <time>', 'records before this time (ISO 8601)')
    .option(
      '--limit <n>',
      `most records shown (default: all with --json, ${DEFAULT_TABLE_ROWS} in the table)`,
      parseLimit,
    )
    .option('--json', 'print the matching records as JSON lines, exactly as stored')
    .addHelpText(
      'after',
      [
        '',
        `Table columns: ${QUERY_COLUMNS.join(', ')}. Control characters in records are shown as "?".`,
        '',
        'Examples:',
        '  trustplane audit query --file /var/log/trustplane/ledger.jsonl --decision deny --since 2026-01-31T00:00:00Z',
        '  trustplane audit query --file ledger.jsonl --sub spiffe://example.local/orders-client --route orders.create --json',
        '  trustplane audit query --file ledger.jsonl --jti 4f1c2a --limit 1',
        '  trustplane audit query --postgres postgresql://auditor@db.internal/trustplane --sub spiffe://example.local/orders-client --since 2026-01-01',
      ].join('\n'),
    )
    .action(async (opts: QueryFlags) => {
      const since = parseTime('--since', opts.since);
      const until = parseTime('--until', opts.until);
      if ((opts.file === undefined) === (opts.postgres === undefined)) {
        throw new CliError('give exactly one of --file or --postgres', 'usage', 2);
      }
      if (opts.file !== undefined) requireFile(opts.file);
      // Without --limit the table shows DEFAULT_TABLE_ROWS and reads one more, to tell it was cut.
      const limit = opts.limit ?? (opts.json ? undefined : DEFAULT_TABLE_ROWS + 1);
      const filter: LedgerQuery = {
        ...(opts.sub !== undefined ? { sub: opts.sub } : {}),
        ...(opts.iss !== undefined ? { iss: opts.iss } : {}),
        ...(opts.jti !== undefined ? { jti: opts.jti } : {}),
        ...(opts.route !== undefined ? { routeId: opts.route } : {}),
        ...(opts.decision !== undefined ? { decision: opts.decision } : {}),
        ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
        ...(opts.eventType !== undefined ? { eventType: opts.eventType } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
        ...(limit !== undefined ? { limit } : {}),
      };
      let skipped = 0;
      let source: AsyncIterable<unknown>;
      let label: string;
      if (opts.postgres !== undefined) {
        const { queryPostgresLedger, redactConnectionString } = await import('../../../pkg/audit/index.js');
        label = redactConnectionString(opts.postgres);
        // PostgreSQL filters through its indexes; the same filter runs again below (cheap, exact).
        source = queryPostgresLedger(opts.postgres, {
          ...filter,
          ...(opts.chainId !== undefined ? { chainId: opts.chainId } : {}),
        });
      } else {
        label = opts.file!;
        source = readLedgerFile(opts.file!);
      }
      const matches = queryRecords(source, filter, { onSkipped: () => skipped++ });
      const rows: QueriedRecord[] = [];
      await reading(label, async () => {
        for await (const record of matches) {
          if (!opts.json) rows.push(record);
          // Respect backpressure: a ledger can be far larger than memory.
          else if (!process.stdout.write(`${JSON.stringify(record)}\n`)) await once(process.stdout, 'drain');
        }
      });
      if (!opts.json) {
        const cut = rows.length > DEFAULT_TABLE_ROWS && opts.limit === undefined;
        process.stdout.write(formatTable(cut ? rows.slice(0, DEFAULT_TABLE_ROWS) : rows, QUERY_COLUMNS));
        if (cut) {
          process.stderr.write(
            `trustplane: WARNING: showing the first ${DEFAULT_TABLE_ROWS} matching records; narrow the filters, give --limit or use --json\n`,
          );
        }
      }
      if (skipped > 0) {
        process.stderr.write(
          `trustplane: WARNING: ${skipped} unreadable line${skipped === 1 ? '' : 's'} skipped; run trustplane audit verify ${opts.postgres !== undefined ? '--postgres <url>' : `--file ${label}`}\n`,
        );
      }
    });
}
