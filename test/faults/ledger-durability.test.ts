import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GENESIS_HASH, HashChain } from '../../pkg/audit/chain.js';
import { AUDIT_EVENT_SCHEMA, type AuditEvent } from '../../pkg/audit/event.js';
import { ledgerGapEvent } from '../../pkg/audit/ledger-gap.js';
import { GAP_NOTE_BYTES } from '../../pkg/audit/ledger-gap-note.js';
import { DEFAULT_MAX_BUFFERED_EVENTS, DEFAULT_SPILL_AFTER_MS } from '../../pkg/audit/postgres-ledger-sink.js';
import { SPILL_GROUP_BYTES, SPILL_GROUP_RECORDS } from '../../pkg/audit/spill-buffer.js';
import { FILE_LEDGER_MAX_BATCH, FILE_LEDGER_SYNC_INTERVAL_MS } from '../../pkg/audit/file-ledger-sink.js';
import { startUpstream, writeWorld, type Upstream } from '../helpers/adapter.js';
import { bundleArgs, CLI, spawnAdapter, type AdapterProcess } from '../helpers/adapter-process.js';
import { scrape, send, signedSpec, sleep, waitFor, type Outcome, type SendSpec } from '../helpers/faults.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { metricValue } from '../helpers/prometheus.js';
import { hasPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';

// Issue 18, points 1, 4 and 7: the PostgreSQL audit ledger never forgets silently. The adapter runs
// as a real process (the built CLI) against a real PostgreSQL that is stopped and started; the
// adapter is SIGKILLed in the middle of an outage, run as a fork loser next to another adapter on
// the same chain id, and run with a file size limit (`ulimit -f`) so that its spill file fills up.
// Every decision is either a ledger record or counted in a chained gap record that
// `trustplane audit verify` reports; nothing vanishes while the chain still verifies.

const now = () => Math.floor(Date.now() / 1000);
/** How long after the last request of the outage the adapter is killed. */
const SETTLE_MS = 1_500;
/** The sink's memory limit (checked against the code below). */
const MAX_BUFFERED = 10_000;

let world: World;
let upstream: Upstream;
let server: PostgresServer | undefined;
let startError: unknown;
let pool: pg.Pool;
let scratch: string;

/** The server; every test fails (none is skipped) when it could not start. */
function db(): PostgresServer {
  if (server === undefined) {
    throw new Error(
      `PostgreSQL did not start: ${startError instanceof Error ? startError.message : 'unknown'}`,
    );
  }
  return server;
}

beforeAll(async () => {
  world = await createWorld({ issuedAt: now() - 60 });
  upstream = await startUpstream();
  scratch = mkdtempSync(path.join(tmpdir(), 'tp-ledger-faults-'));
  try {
    server = await startPostgres();
    pool = new pg.Pool({ connectionString: server.url, max: 2 });
    pool.on('error', () => undefined);
  } catch (e) {
    startError = e;
  }
}, 60_000);

afterAll(async () => {
  for (const p of running) await p.stop('SIGKILL');
  await pool?.end();
  await upstream?.close();
  await server?.close();
});

const running = new Set<AdapterProcess>();

/**
 * Start `trustplane adapter` as a process (under `ulimit -f fileSizeKiB` when given: every file it
 * writes is limited to that size, as on a nearly full disk) and wait until it listens.
 */
async function startAdapterProcess(
  name: string,
  args: readonly string[],
  options: { fileSizeKiB?: number } = {},
): Promise<AdapterProcess> {
  const proc = await spawnAdapter(['--instance', name, ...args], {
    waitFor: 'healthy',
    readyTimeoutMs: 20_000,
    ...options,
  });
  running.add(proc);
  void proc.exited.then(() => running.delete(proc));
  return proc;
}

/** The adapter flags of a PostgreSQL ledger on `chainId` with its own bundles and spill file. */
function ledgerArgs(chainId: string, spillPath: string): string[] {
  const files = writeWorld(world);
  return [
    '--upstream',
    upstream.url,
    ...bundleArgs(files),
    '--replay-journal',
    'off',
    '--audit',
    db().url,
    '--audit-chain-id',
    chainId,
    '--audit-spill',
    spillPath,
    '--log-level',
    'warn',
  ];
}

/** `/readyz`: status and its checks. */
async function readiness(admin: string): Promise<{ status: number; checks: Record<string, string> }> {
  const res = await fetch(`${admin}/readyz`, { signal: AbortSignal.timeout(5_000) });
  const body = (await res.json()) as { checks?: Record<string, string> };
  return { status: res.status, checks: body.checks ?? {} };
}

const auditEvent = (i: number): AuditEvent => ({
  schema: AUDIT_EVENT_SCHEMA,
  event_id: `evt-${i}`,
  time: new Date(Date.UTC(2026, 0, 31, 12, 0, i)).toISOString(),
  event_type: 'authorization_decision',
  component: 'adapter',
  decision: 'allow',
  status: 200,
});

const denySpec = (id: string): SendSpec => ({
  method: 'GET',
  target: '/v1/orders/search',
  headers: { 'x-request-id': id },
});

async function allowSpecs(prefix: string, n: number): Promise<SendSpec[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) =>
      signedSpec(await signed(world, { claims: { iat: now() } }), `${prefix}-${i}`),
    ),
  );
}

/** Send every spec, `concurrency` at a time over keep-alive connections; outcomes in spec order. */
async function sendAll(base: string, specs: readonly SendSpec[], concurrency = 16): Promise<Outcome[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const out: Outcome[] = new Array<Outcome>(specs.length);
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < specs.length) {
          const i = next++;
          out[i] = await send(base, specs[i]!, { agent, timeoutMs: 20_000 });
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return out;
}

const statusOf = (o: Outcome) => (o.kind === 'response' ? o.status : o.code);

interface Row {
  readonly seq: number;
  readonly event_type: string | null;
  readonly request_id: string | null;
  readonly record: Record<string, unknown>;
}

async function ledgerRows(chainId: string): Promise<Row[]> {
  const r = await pool.query<{
    seq: string;
    event_type: string | null;
    request_id: string | null;
    record: Record<string, unknown>;
  }>(
    `SELECT seq::text AS seq, event_type, record->>'request_id' AS request_id, record
       FROM trustplane_ledger WHERE chain_id = $1 ORDER BY trustplane_ledger.seq`,
    [chainId],
  );
  return r.rows.map((row) => ({ ...row, seq: Number(row.seq) }));
}

async function rowCount(chainId: string): Promise<number> {
  const r = await pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM trustplane_ledger WHERE chain_id = $1',
    [chainId],
  );
  return r.rows[0]?.n ?? 0;
}

/** `trustplane audit verify --postgres URL --chain-id ID`: exit code and output. */
function auditVerify(chainId: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, 'audit', 'verify', '--postgres', db().url, '--chain-id', chainId],
      { timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('fault: the PostgreSQL audit ledger never forgets silently', () => {
  it('PostgreSQL is installed (required: install the Debian package postgresql, see .ci/run)', () => {
    expect(hasPostgres()).toBe(true);
    db();
  });

  it('point 1: the adapter SIGKILLed during a PostgreSQL outage keeps all 400 records of the outage (300 forwarded allows); /readyz stays ready while they are spilled; audit verify passes with every decision in it', async () => {
    const chainId = 'outage-kill';
    const spillPath = path.join(scratch, chainId, 'audit-spill.jsonl');
    const args = ledgerArgs(chainId, spillPath);
    let adapter = await startAdapterProcess('outage-kill', args);

    const warm = await sendAll(adapter.base, await allowSpecs('warm', 20));
    expect(warm.map(statusOf)).toEqual(Array(20).fill(200));
    await waitFor(async () => (await rowCount(chainId)) === 20, '20 committed records');

    await db().stop();
    const outageSpecs = [
      ...(await allowSpecs('outage-allow', 300)),
      ...Array.from({ length: 100 }, (_, i) => denySpec(`outage-deny-${i}`)),
    ];
    const outage = await sendAll(adapter.base, outageSpecs);
    expect(outage.map(statusOf)).toEqual([...Array(300).fill(200), ...Array(100).fill(401)]);
    // Well past the stated loss window (DEFAULT_SPILL_AFTER_MS plus one spill write): on disk.
    await sleep(SETTLE_MS);
    const during = await readiness(adapter.admin);
    await adapter.stop('SIGKILL');

    await db().start();
    adapter = await startAdapterProcess('outage-kill', args);
    const after = await sendAll(adapter.base, await allowSpecs('after', 10));
    expect(after.map(statusOf)).toEqual(Array(10).fill(200));
    expect(await adapter.stop('SIGTERM')).toBe(0);

    const rows = await ledgerRows(chainId);
    const decisions = rows.filter((r) => r.event_type === 'authorization_decision');
    const expectedIds = [
      ...Array.from({ length: 20 }, (_, i) => `warm-${i}`),
      ...outageSpecs.map((s) => s.headers['x-request-id']!),
      ...Array.from({ length: 10 }, (_, i) => `after-${i}`),
    ];
    const seen = new Set(decisions.map((r) => r.request_id));
    const lost = expectedIds.filter((id) => !seen.has(id));
    expect(lost.length, `${lost.length} of the outage's 400 records lost`).toBe(0);
    expect(decisions.map((r) => r.request_id).sort()).toEqual([...expectedIds].sort());
    expect(rows.filter((r) => r.event_type === 'ledger_gap')).toEqual([]);
    const verify = await auditVerify(chainId);
    expect([verify.code, verify.stdout.trim()]).toEqual([
      0,
      expect.stringMatching(
        new RegExp(`^ok: ${rows.length} records, chain ${chainId}, head seq ${rows.length} `),
      ),
    ]);
    // PostgreSQL unreachable while every record is on disk: still ready, as documented.
    expect(during).toEqual({ status: 200, checks: expect.objectContaining({ audit: 'ok' }) });
    console.info(
      `[faults] ledger SIGKILL mid-outage: ${decisions.length} decision records (expected ${expectedIds.length}), lost ${lost.length}; readyz during the outage ${during.status} ${JSON.stringify(during.checks)}`,
    );
  }, 60_000);

  it('point 4: a fork loser keeps its 100 conflicting spilled records aside (file, error log line, trustplane_audit_conflicts_total) and audit verify reports them as a gap', async () => {
    const chainId = 'fork-shared';
    const winnerSpill = path.join(scratch, 'fork-winner', 'audit-spill.jsonl');
    const loserSpill = path.join(scratch, 'fork-loser', 'audit-spill.jsonl');
    const winner = await startAdapterProcess('fork-winner', ledgerArgs(chainId, winnerSpill));
    const loserArgs = ledgerArgs(chainId, loserSpill);
    let loser = await startAdapterProcess('fork-loser', loserArgs);

    await sendAll(
      winner.base,
      Array.from({ length: 50 }, (_, i) => denySpec(`winner-${i}`)),
    );
    await waitFor(async () => (await rowCount(chainId)) === 50, "the winner's 50 records");
    const loserIds = Array.from({ length: 100 }, (_, i) => `loser-${i}`);
    const loserOut = await sendAll(loser.base, loserIds.map(denySpec));
    expect(loserOut.map(statusOf)).toEqual(Array(100).fill(401));
    await waitFor(
      () => loser.stderr().includes('ledger_chain_fork') || loser.stderr().includes('forked'),
      'the fork report',
    );
    const stalled = await readiness(loser.admin);
    const loserExit = await loser.stop('SIGTERM', 30_000);

    // The winner goes on past the loser's sequence numbers, then is the one stopped.
    await sendAll(
      winner.base,
      Array.from({ length: 100 }, (_, i) => denySpec(`winner-late-${i}`)),
    );
    await waitFor(async () => (await rowCount(chainId)) === 150, "the winner's 150 records");
    expect(await winner.stop('SIGTERM')).toBe(0);

    loser = await startAdapterProcess('fork-loser', loserArgs);
    await waitFor(
      async () => (await readiness(loser.admin)).status === 200,
      'the restarted loser to be ready',
    );
    const conflicts = metricValue(await scrape(loser.admin), 'trustplane_audit_conflicts_total');
    expect(await loser.stop('SIGTERM')).toBe(0);
    const loserLog = loser.stderr();

    const asideFiles = readdirSync(path.dirname(loserSpill)).filter((f) => f.includes('.conflict-'));
    const aside = asideFiles.flatMap((f) =>
      readFileSync(path.join(path.dirname(loserSpill), f), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { request_id?: string; chain_id: string; seq: number }),
    );
    expect(
      aside.map((r) => r.request_id).sort(),
      `${aside.length} of the loser's 100 records kept aside`,
    ).toEqual([...loserIds].sort());
    expect(conflicts).toBe(100);
    expect(loserLog).toMatch(/"level":"error".*100 .*set aside/);

    const rows = await ledgerRows(chainId);
    const gaps = rows.filter((r) => r.event_type === 'ledger_gap');
    expect(gaps).toHaveLength(1);
    expect(gaps[0]!.record).toMatchObject({
      reason: 'ledger_chain_fork',
      lost: 100,
      from_seq: 1,
      to_seq: 100,
    });
    const verify = await auditVerify(chainId);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/gap: .*100 records.*ledger_chain_fork/);
    expect(verify.stderr).toMatch(/ledger_records_lost/);
    expect(stalled).toEqual({ status: 503, checks: expect.objectContaining({ audit: 'chain_fork' }) });
    expect(loserExit).toBe(0);
    console.info(
      `[faults] ledger fork loser: ${aside.length} records set aside in ${asideFiles.join(', ')}, conflicts metric ${conflicts}; audit verify exit ${verify.code}: ${verify.stdout.trim().split('\n').join(' | ')}`,
    );
  }, 60_000);

  it('point 7: a nearly full disk (ulimit -f) never drops decisions silently: what was dropped before chaining is a gap record audit verify reports, records + lost = decisions, /readyz names backlog_over_limit', async () => {
    const chainId = 'small-disk';
    const spillPath = path.join(scratch, chainId, 'audit-spill.jsonl');
    const TOTAL = MAX_BUFFERED + 3_000;
    const adapter = await startAdapterProcess('small-disk', ledgerArgs(chainId, spillPath), {
      fileSizeKiB: 1024,
    });
    await sendAll(
      adapter.base,
      Array.from({ length: 10 }, (_, i) => denySpec(`before-${i}`)),
    );
    await waitFor(async () => (await rowCount(chainId)) === 10, '10 committed records');

    await db().stop();
    const started = Date.now();
    const specs = Array.from({ length: TOTAL }, (_, i) => denySpec(`outage-${i}`));
    // The spill file holds about 1,500 records: at half the limit its writes fail, nothing is dropped yet.
    const first = await sendAll(adapter.base, specs.slice(0, MAX_BUFFERED / 2), 32);
    const failing = await readiness(adapter.admin);
    const rest = await sendAll(adapter.base, specs.slice(MAX_BUFFERED / 2), 32);
    expect([...first, ...rest].filter((o) => statusOf(o) !== 401)).toEqual([]);
    const sendMs = Date.now() - started;
    const over = await readiness(adapter.admin);
    const spilledBytes = existsSync(spillPath) ? readFileSync(spillPath).length : 0;

    await db().start();
    await waitFor(
      async () => (await readiness(adapter.admin)).status === 200,
      'ready again after the drain',
      30_000,
    );
    expect(await adapter.stop('SIGTERM')).toBe(0);

    const rows = await ledgerRows(chainId);
    const decisions = rows.filter((r) => r.event_type === 'authorization_decision').length;
    const gaps = rows.filter((r) => r.event_type === 'ledger_gap');
    const lost = gaps.reduce((n, g) => n + Number(g.record.lost ?? 0), 0);
    expect(
      decisions + lost,
      `${decisions} records + ${lost} counted in gap records, for ${TOTAL + 10} decisions`,
    ).toBe(TOTAL + 10);
    expect(lost).toBeGreaterThan(0);
    expect(gaps.every((g) => g.record.reason === 'ledger_event_dropped')).toBe(true);
    const verify = await auditVerify(chainId);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(new RegExp(`gap: .*${lost} events`));
    expect(verify.stderr).toMatch(/ledger_records_lost/);
    expect(failing).toEqual({ status: 503, checks: expect.objectContaining({ audit: 'spill_failed' }) });
    expect(over).toEqual({ status: 503, checks: expect.objectContaining({ audit: 'backlog_over_limit' }) });
    // Incremental spill writes: the disk held what fitted, not nothing.
    expect(spilledBytes).toBeGreaterThan(0);
    console.info(
      `[faults] ledger small disk (ulimit -f 1024 KiB): ${TOTAL} decisions in ${sendMs} ms during the outage; spill ${spilledBytes} bytes; ${decisions} records + ${lost} lost in ${gaps.length} gap record(s); readyz ${failing.checks.audit} at ${MAX_BUFFERED / 2}, then ${over.status} ${JSON.stringify(over.checks)}; audit verify exit ${verify.code}`,
    );
  }, 60_000);

  // Red-team finding C1: the spill file at its size limit while PostgreSQL is down, then the
  // process stops (SIGTERM: a rolling restart) or dies (SIGKILL) with records still waiting in
  // memory for a spill write that keeps failing. They cannot be kept; they must be counted.
  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'C1: a full spill (ulimit -f) at %s: the records waiting in memory are a gap record (decisions = records + lost, exactly), audit verify exits 1',
    async (signal) => {
      const chainId = `full-spill-${signal.toLowerCase()}`;
      const spillPath = path.join(scratch, chainId, 'audit-spill.jsonl');
      const args = ledgerArgs(chainId, spillPath);
      const TOTAL = 4_000;
      let adapter = await startAdapterProcess(chainId, args, { fileSizeKiB: 1024 });
      await sendAll(
        adapter.base,
        Array.from({ length: 10 }, (_, i) => denySpec(`before-${i}`)),
      );
      await waitFor(async () => (await rowCount(chainId)) === 10, '10 committed records');

      await db().stop();
      const outage = await sendAll(
        adapter.base,
        Array.from({ length: TOTAL }, (_, i) => denySpec(`outage-${i}`)),
        32,
      );
      expect(outage.filter((o) => statusOf(o) !== 401)).toEqual([]);
      await sleep(SETTLE_MS);
      const full = await readiness(adapter.admin);
      const stopStarted = Date.now();
      const exit = await adapter.stop(signal, 60_000);
      const stopMs = Date.now() - stopStarted;
      const spilled = existsSync(spillPath)
        ? readFileSync(spillPath, 'utf8')
            .split('\n')
            .filter((l) => l !== '').length
        : 0;

      // The disk was freed and PostgreSQL is back.
      await db().start();
      adapter = await startAdapterProcess(chainId, args);
      await sendAll(
        adapter.base,
        Array.from({ length: 10 }, (_, i) => denySpec(`after-${i}`)),
      );
      await waitFor(
        async () => metricValue(await scrape(adapter.admin), 'trustplane_audit_buffer_depth') === 0,
        'the spill drained',
        30_000,
      );
      expect(await adapter.stop('SIGTERM', 30_000)).toBe(0);

      const rows = await ledgerRows(chainId);
      const decisions = rows.filter((r) => r.event_type === 'authorization_decision').length;
      const gaps = rows.filter((r) => r.event_type === 'ledger_gap');
      const lost = gaps.reduce((n, g) => n + Number(g.record.lost ?? 0), 0);
      const made = 10 + TOTAL + 10;
      const verify = await auditVerify(chainId);
      console.info(
        `[faults] ledger full spill + ${signal}: readyz ${full.status} ${JSON.stringify(full.checks)}; exit ${exit} after ${stopMs} ms; spill held ${spilled} records; ${made} decisions = ${decisions} records + ${lost} lost in ${gaps.length} gap record(s), ${made - decisions - lost} unaccounted; audit verify exit ${verify.code}: ${verify.stdout.trim().split('\n').join(' | ')}`,
      );
      expect(full).toEqual({ status: 503, checks: expect.objectContaining({ audit: 'spill_failed' }) });
      expect(exit).toBe(signal === 'SIGTERM' ? 0 : 'SIGKILL');
      expect(
        decisions + lost,
        `${decisions} records + ${lost} counted in gap records, for ${made} decisions (${made - decisions - lost} unaccounted)`,
      ).toBe(made);
      // Something really was lost (the spill file is much smaller than the outage).
      expect(lost).toBeGreaterThan(0);
      expect(gaps.map((g) => g.record.reason)).toEqual(Array(gaps.length).fill('ledger_records_lost'));
      expect(verify.code).toBe(1);
      expect(verify.stdout).toMatch(
        new RegExp(`gap: chain ${chainId} seq \\d+: ${lost} records missing .*\\(ledger_records_lost\\)`),
      );
      expect(verify.stderr).toMatch(new RegExp(`ledger_records_lost: .* ${lost} events are missing`));
    },
    90_000,
  );

  it('audit verify --file reports the gap records of a file ledger (exit 1, one gap line each); --accept-gaps lists them and exits 0', async () => {
    const file = path.join(scratch, 'gapped.jsonl');
    const chain = new HashChain({ chainId: 'file-1', seq: 0, hash: GENESIS_HASH });
    const records = [
      chain.append(auditEvent(1)),
      chain.append(ledgerGapEvent({ reason: 'ledger_event_dropped', lost: 42, detail: 'disk full' })),
      chain.append(auditEvent(2)),
    ];
    writeFileSync(file, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    const run = (...extra: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [CLI, 'audit', 'verify', '--file', file, ...extra],
          { timeout: 30_000 },
          (error, stdout, stderr) =>
            resolve({
              code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1,
              stdout,
              stderr,
            }),
        );
      });
    const strict = await run();
    expect(strict.code).toBe(1);
    expect(strict.stdout.split('\n')).toEqual([
      expect.stringMatching(
        /^ok: 3 records, chain file-1, head seq 3 hash [0-9a-f]{64}, 1 gap record \(42 lost\)$/,
      ),
      'gap: chain file-1 seq 2: 42 events dropped before chaining (ledger_event_dropped)',
      '',
    ]);
    expect(strict.stderr).toMatch(
      /^trustplane: ledger_records_lost: the chain is intact but 1 gap record says 42 events are missing/,
    );
    const accepted = await run('--accept-gaps');
    expect([accepted.code, accepted.stdout]).toEqual([0, strict.stdout]);
  });

  it('docs/ledger.md states the loss window of each configuration with the numbers the code uses', () => {
    const doc = readFileSync('docs/ledger.md', 'utf8');
    const section = /## Loss windows\n([\s\S]*?)\n## /.exec(doc)?.[1] ?? '';
    const rows = new Map(
      section
        .split('\n')
        .filter((l) => l.startsWith('| ') && !/^\| -/.test(l))
        .slice(1)
        .map((l) => {
          const cells = l
            .split('|')
            .slice(1, -1)
            .map((c) => c.trim());
          return [cells[0] ?? '', cells.slice(1).join(' | ')] as const;
        }),
    );
    expect([...rows.keys()]).toEqual([
      'file (`fsync: interval`, the default)',
      'file (`fsync: always`)',
      'PostgreSQL with a spill file (the adapter always has one)',
      'PostgreSQL without a spill file (library use)',
      'stdout',
    ]);
    const num = (n: number) => n.toLocaleString('en-US');
    expect(rows.get('file (`fsync: interval`, the default)')).toContain(
      `${num(FILE_LEDGER_SYNC_INTERVAL_MS)} ms`,
    );
    expect(rows.get('file (`fsync: interval`, the default)')).toContain(
      `${num(FILE_LEDGER_MAX_BATCH)} records`,
    );
    expect(rows.get('file (`fsync: always`)')).toContain(`${num(FILE_LEDGER_MAX_BATCH)} records`);
    const spill = rows.get('PostgreSQL with a spill file (the adapter always has one)') ?? '';
    expect(spill).toContain(`${num(DEFAULT_SPILL_AFTER_MS)} ms`);
    expect(spill).toContain(`${num(SPILL_GROUP_RECORDS)} records`);
    expect(spill).toContain(`${num(SPILL_GROUP_BYTES / 1024)} KiB`);
    expect(rows.get('PostgreSQL without a spill file (library use)')).toContain(
      `${num(DEFAULT_MAX_BUFFERED_EVENTS)} records`,
    );
    expect(DEFAULT_MAX_BUFFERED_EVENTS).toBe(MAX_BUFFERED);
    expect(DEFAULT_SPILL_AFTER_MS + 1_000).toBeLessThanOrEqual(SETTLE_MS);
    // The adapter's default spill path lives with its other state.
    expect(doc).toContain('./trustplane-state/audit-spill.jsonl');
    // The gap note's size, as created by the code.
    expect(doc).toContain(`a ${num(GAP_NOTE_BYTES / 1024)} KiB file (\`GAP_NOTE_BYTES\`)`);
    expect(spill).toContain('gap note');
  });
});
