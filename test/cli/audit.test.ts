import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_EVENT_SCHEMA, type AuditEvent } from '../../pkg/audit/event.js';
import { FileLedgerSink } from '../../pkg/audit/file-ledger-sink.js';
import { PostgresLedgerSink } from '../../pkg/audit/postgres-ledger-sink.js';
import { CLI } from '../helpers/adapter-process.js';
import { cliInProcess, cliProcess } from '../helpers/cli.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

/*
 * `trustplane audit verify` and `trustplane audit query` against ledger files written by
 * FileLedgerSink and then tampered with line by line. The verbs run in-process (test/helpers/cli.ts:
 * ~40 runs as processes timed out on a loaded 2-core machine); the BUILT CLI (npm run build first)
 * runs as a process where the process is the point: exit status, a closed pipe.
 */

const BIN = path.resolve('dist/cmd/trustplane/main.js');
const dir = mkdtempSync(path.join(tmpdir(), 'trustplane-cli-audit-'));
const f = (name: string) => path.join(dir, name);
const T0 = Date.UTC(2026, 0, 31, 12, 0, 0);
const COUNT = 8;

/** Verbs run in-process (the CLI's own program, serialized); the exit-status path is checked once as a process below. */
const cli = cliInProcess;

function event(i: number): AuditEvent {
  const deny = i % 3 === 2;
  return {
    schema: AUDIT_EVENT_SCHEMA,
    event_id: `evt-${i}`,
    time: new Date(T0 + i * 60_000).toISOString(),
    event_type: 'authorization_decision',
    component: 'adapter',
    decision: deny ? 'deny' : 'allow',
    status: deny ? 401 : 200,
    ...(deny ? { reason: 'jti_replay' as const, stage: 'replay' } : {}),
    route_id: i % 2 === 0 ? 'orders.create' : 'orders.read',
    iss: 'https://issuer.example',
    sub: `service:client-${i % 4}`,
    jti: `jti-${i}`,
  };
}

let ledger: string;
let original: string[];
let head: { seq: number; hash: string };

/** A copy of the ledger with its lines edited; returns the path. */
function tampered(name: string, edit: (lines: string[]) => string[]): string {
  writeFileSync(f(name), `${edit([...original]).join('\n')}\n`);
  return f(name);
}

beforeAll(async () => {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build first`);
  ledger = f('ledger.jsonl');
  // Two lives of the writer: the chain resumes across the reopen.
  for (const [from, to] of [
    [1, 5],
    [6, COUNT],
  ] as const) {
    const sink = await FileLedgerSink.open(ledger, { chainId: 'adapter-1', fsync: 'never' });
    for (let i = from; i <= to; i++) await sink.writeDurable(event(i));
    await sink.close();
  }
  original = readFileSync(ledger, 'utf8').split('\n').slice(0, -1);
  const last = JSON.parse(original[COUNT - 1]!) as { seq: number; record_hash: string };
  head = { seq: last.seq, hash: last.record_hash };
});

describe.concurrent('trustplane audit verify', () => {
  it('an intact ledger: exit 0 and its head', async ({ expect }) => {
    const [r, withId] = await Promise.all([
      cli(['audit', 'verify', '--file', ledger]),
      cli(['audit', 'verify', '--file', ledger, '--chain-id', 'adapter-1']),
    ]);
    expect(r).toEqual({
      code: 0,
      stdout: `ok: ${COUNT} records, chain adapter-1, head seq ${head.seq} hash ${head.hash}\n`,
      stderr: '',
    });
    expect(withId).toEqual(r);
  });

  it('an empty ledger verifies', async ({ expect }) => {
    writeFileSync(f('empty.jsonl'), '');
    expect(await cli(['audit', 'verify', '--file', f('empty.jsonl')])).toEqual({
      code: 0,
      stdout: `ok: 0 records, chain -, head seq 0 hash ${'0'.repeat(64)}\n`,
      stderr: '',
    });
  });

  it.for([1, 2, 4, COUNT])(
    'attack: editing record %i exits 1 naming that position',
    async (position, { expect }) => {
      const file = tampered(`edit-${position}.jsonl`, (lines) =>
        lines.map((l, i) => (i === position - 1 ? l.replace('"jti":"jti-', '"jti":"forged-') : l)),
      );
      expect(await cli(['audit', 'verify', '--file', file])).toEqual({
        code: 1,
        stdout: '',
        stderr: `trustplane: audit_chain_broken: broken at record ${position} (seq ${position}): record seq ${position} was modified (its hash does not match)\n`,
      });
    },
  );

  it.for([1, 2, 5])(
    'attack: deleting record %i exits 1 at that position (the next record)',
    async (position, { expect }) => {
      const file = tampered(`delete-${position}.jsonl`, (lines) =>
        lines.filter((_, i) => i !== position - 1),
      );
      expect(await cli(['audit', 'verify', '--file', file])).toEqual({
        code: 1,
        stdout: '',
        stderr: `trustplane: audit_chain_broken: broken at record ${position} (seq ${position + 1}): expected seq ${position}, found ${position + 1} (a record was deleted, inserted or reordered)\n`,
      });
    },
  );

  it.for([
    [3, 4],
    [2, 7],
  ] as const)(
    'attack: swapping records %i and %i exits 1 at the first of them',
    async ([a, b], { expect }) => {
      const file = tampered(`swap-${a}-${b}.jsonl`, (lines) => {
        [lines[a - 1], lines[b - 1]] = [lines[b - 1]!, lines[a - 1]!];
        return lines;
      });
      expect(await cli(['audit', 'verify', '--file', file])).toEqual({
        code: 1,
        stdout: '',
        stderr: `trustplane: audit_chain_broken: broken at record ${a} (seq ${b}): expected seq ${a}, found ${b} (a record was deleted, inserted or reordered)\n`,
      });
    },
  );

  it('a line that is not a record exits 1 at its position', async ({ expect }) => {
    const file = tampered('garbage.jsonl', (lines) => [...lines.slice(0, 2), 'garbage', ...lines.slice(2)]);
    expect(await cli(['audit', 'verify', '--file', file])).toMatchObject({
      code: 1,
      stderr: 'trustplane: audit_chain_broken: broken at record 3 (seq ?): line is not JSON\n',
    });
  });

  it('--chain-id of another chain exits 1 at the first record', async ({ expect }) => {
    expect(await cli(['audit', 'verify', '--file', ledger, '--chain-id', 'adapter-2'])).toMatchObject({
      code: 1,
      stderr:
        'trustplane: audit_chain_broken: broken at record 1 (seq 1): record seq 1 belongs to chain adapter-1, not adapter-2\n',
    });
  });

  it('usage and I/O errors', async ({ expect }) => {
    const [none, both, missing, directory] = await Promise.all([
      cli(['audit', 'verify']),
      cli(['audit', 'verify', '--file', ledger, '--postgres', 'postgres://localhost/x']),
      cli(['audit', 'verify', '--file', f('missing.jsonl')]),
      cli(['audit', 'verify', '--file', dir]),
    ]);
    expect(none).toMatchObject({
      code: 2,
      stderr: 'trustplane: usage: give exactly one of --file or --postgres\n',
    });
    expect(both).toMatchObject({
      code: 2,
      stderr: 'trustplane: usage: give exactly one of --file or --postgres\n',
    });
    expect(missing).toMatchObject({
      code: 1,
      stderr: `trustplane: file_not_found: no such file: ${f('missing.jsonl')}\n`,
    });
    expect(directory).toMatchObject({ code: 1, stderr: `trustplane: io: ${dir} is not a file\n` });
  });
});

describe.concurrent('trustplane audit query', () => {
  const header = /^time\s+decision\s+status\s+reason\s+route_id\s+sub\s+jti$/m;

  /** The table's rows (cells split on the column gaps), after checking the run succeeded. */
  async function table(args: readonly string[]): Promise<string[][]> {
    const r = await cli(['audit', 'query', '--file', ledger, ...args]);
    if (r.code !== 0 || r.stderr !== '' || !header.test(r.stdout)) {
      throw new Error(`audit query ${args.join(' ')} failed: ${JSON.stringify(r)}`);
    }
    return r.stdout
      .split('\n')
      .slice(1, -1)
      .map((line) => line.split(/\s{2,}/));
  }

  it('prints every record as a fixed-width table', async ({ expect }) => {
    const r = await cli(['audit', 'query', '--file', ledger]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').slice(0, -1);
    expect(lines[0]).toMatch(header);
    expect(lines).toHaveLength(COUNT + 1);
    expect(lines[1]!.split(/\s{2,}/)).toEqual([
      '2026-01-31T12:01:00.000Z',
      'allow',
      '200',
      '-',
      'orders.read',
      'service:client-1',
      'jti-1',
    ]);
    expect(lines[2]!.split(/\s{2,}/)).toEqual([
      '2026-01-31T12:02:00.000Z',
      'deny',
      '401',
      'jti_replay',
      'orders.create',
      'service:client-2',
      'jti-2',
    ]);
    // Fixed width: each column starts at the same offset on every line.
    for (const column of ['decision', 'route_id', 'jti']) {
      const at = lines[0]!.indexOf(column);
      for (const line of lines.slice(1)) expect(line[at - 1]).toBe(' ');
      for (const line of lines.slice(1)) expect(line[at]).not.toBe(' ');
    }
  });

  it('filters: decision, route, sub, iss, jti, reason, since/until, limit', async ({ expect }) => {
    const cases: [string[], string[]][] = [
      [
        ['--decision', 'deny'],
        ['jti-2', 'jti-5', 'jti-8'],
      ],
      [
        ['--decision', 'deny', '--route', 'orders.create'],
        ['jti-2', 'jti-8'],
      ],
      [
        ['--sub', 'service:client-1'],
        ['jti-1', 'jti-5'],
      ],
      [['--jti', 'jti-7'], ['jti-7']],
      [
        ['--reason', 'jti_replay', '--limit', '2'],
        ['jti-2', 'jti-5'],
      ],
      [
        ['--since', '2026-01-31T12:06:00Z'],
        ['jti-6', 'jti-7', 'jti-8'],
      ],
      [
        ['--since', '2026-01-31T13:02:00+01:00', '--until', '2026-01-31T12:04:00.000Z'],
        ['jti-2', 'jti-3'],
      ],
      [['--until', '2026-01-31'], []],
      [['--iss', 'https://other.example'], []],
      [['--event-type', 'authorization_decision', '--limit', '1'], ['jti-1']],
    ];
    const results = await Promise.all(cases.map(([args]) => table(args)));
    results.forEach((rows, i) =>
      expect(
        rows.map((row) => row[6]),
        cases[i]![0].join(' '),
      ).toEqual(cases[i]![1]),
    );
  });

  it('--json prints the matching records exactly as stored', async ({ expect }) => {
    const [r, limited] = await Promise.all([
      cli(['audit', 'query', '--file', ledger, '--decision', 'deny', '--json']),
      cli(['audit', 'query', '--file', ledger, '--json', '--limit', '1']),
    ]);
    expect(r).toEqual({
      code: 0,
      stdout: `${[original[1], original[4], original[7]].join('\n')}\n`,
      stderr: '',
    });
    expect(limited).toEqual({ code: 0, stdout: `${original[0]}\n`, stderr: '' });
  });

  it('unreadable lines are skipped with a warning; control characters never reach the terminal', async ({
    expect,
  }) => {
    const hostile = JSON.parse(original[0]!) as Record<string, unknown>;
    hostile.sub = 'evil\u001b[2J\u001b]0;owned\u0007';
    const file = tampered('hostile.jsonl', (lines) => [
      JSON.stringify(hostile),
      'garbage',
      ...lines.slice(1),
    ]);
    const r = await cli(['audit', 'query', '--file', file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      `trustplane: WARNING: 1 unreadable line skipped; run trustplane audit verify --file ${file}\n`,
    );
    expect(r.stdout).not.toContain('\u001b');
    expect(r.stdout).toContain('evil?[2J?]0;owned?');
    expect(r.stdout.split('\n').slice(1, -1)).toHaveLength(COUNT);
  });

  it('usage errors exit 2; a missing file exits 1', async ({ expect }) => {
    const bad = [
      ['--since', 'yesterday'],
      ['--until', '2026-01-31T12:00:00'], // no zone: ambiguous
      ['--limit', '0'],
      ['--limit', 'ten'],
      ['--decision', 'maybe'],
    ];
    const runs = await Promise.all([
      ...bad.map((args) => cli(['audit', 'query', '--file', ledger, ...args])),
      cli(['audit', 'query']),
    ]);
    runs.forEach((r, i) => {
      expect(r.code, (bad[i] ?? ['no --file']).join(' ')).toBe(2);
      expect(r.stdout).toBe('');
    });
    expect(await cli(['audit', 'query', '--file', f('missing.jsonl')])).toMatchObject({
      code: 1,
      stderr: `trustplane: file_not_found: no such file: ${f('missing.jsonl')}\n`,
    });
  });

  it('audit verbs document themselves with examples', async ({ expect }) => {
    const verbs = [['audit'], ['audit', 'verify'], ['audit', 'query']];
    const runs = await Promise.all(verbs.map((verb) => cli([...verb, '--help'])));
    runs.forEach((r, i) => {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`\\nExamples?:\\n {2}trustplane ${verbs[i]!.join(' ')} `));
    });
  });
});

describe('trustplane audit verify --postgres', () => {
  let server: PostgresServer | undefined;
  /** Trust authentication ignores it: it is here to prove the CLI never prints it. */
  const PASSWORD = 'Cli-s3cret-pw';
  const url = () => `postgresql://postgres:${PASSWORD}@127.0.0.1:${server!.port}/postgres`;

  async function sql(text: string): Promise<void> {
    const client = new pg.Client({ connectionString: url() });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    server = await startPostgres();
    for (const [chainId, count] of [
      ['cli-pg', 6],
      ['cli-pg-2', 3],
      ['cli-pg-tamper', 6],
    ] as const) {
      const sink = await PostgresLedgerSink.open({ url: url(), chainId, flushIntervalMs: 10 });
      for (let i = 1; i <= count; i++) await sink.writeDurable(event(i));
      await sink.close();
    }
    await sql(
      "UPDATE trustplane_ledger SET record = jsonb_set(record, '{status}', '503') WHERE chain_id = 'cli-pg-tamper' AND seq = 4",
    );
  }, 60_000);

  afterAll(async () => {
    await server?.close();
  });

  it('an intact chain: exit 0 and its head', async () => {
    const r = await cli(['audit', 'verify', '--postgres', url(), '--chain-id', 'cli-pg']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^ok: 6 records, chain cli-pg, head seq 6 hash [0-9a-f]{64}\n$/);
  });

  it('attack: an edited row exits 1 naming its position; every chain is checked by default', async () => {
    const [one, all] = await Promise.all([
      cli(['audit', 'verify', '--postgres', url(), '--chain-id', 'cli-pg-tamper']),
      cli(['audit', 'verify', '--postgres', url()]),
    ]);
    expect(one).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'trustplane: audit_chain_broken: broken at record 4 (seq 4): record seq 4 was modified (its hash does not match)\n',
    });
    expect(all).toMatchObject({ code: 1, stdout: '' });
    expect(all.stderr).toMatch(
      /^trustplane: audit_chain_broken: broken at record 4 \(seq 4\): chain cli-pg-tamper: /,
    );
  });

  it('audit query --postgres filters through the database (JSON and table)', async () => {
    const json = await cli([
      'audit',
      'query',
      '--postgres',
      url(),
      '--chain-id',
      'cli-pg',
      '--decision',
      'deny',
      '--json',
    ]);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const rows = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { jti: string; reason: string; chain_id: string });
    // Events 2 and 5 of 6 are denies (i % 3 === 2).
    expect(rows.map((r) => [r.chain_id, r.jti, r.reason])).toEqual([
      ['cli-pg', 'jti-2', 'jti_replay'],
      ['cli-pg', 'jti-5', 'jti_replay'],
    ]);
    const table = await cli([
      'audit',
      'query',
      '--postgres',
      url(),
      '--jti',
      'jti-3',
      '--chain-id',
      'cli-pg-2',
    ]);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')).toHaveLength(3); // header, one row, trailing newline
    expect(table.stdout).toContain('jti-3');
    expect(table.stdout).not.toContain(PASSWORD);
  });

  it('an unreachable database exits 1 without printing the password', async () => {
    const r = await cli([
      'audit',
      'verify',
      '--postgres',
      `postgresql://postgres:${PASSWORD}@127.0.0.1:1/postgres`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^trustplane: ledger_unavailable: cannot verify the PostgreSQL audit ledger \(postgresql:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/postgres\)/,
    );
    expect(r.stderr + r.stdout).not.toContain(PASSWORD);
  });
});

describe('trustplane audit, as a process', () => {
  it('exit status and streams of the built binary', async () => {
    const [intact, broken] = await Promise.all([
      cliProcess(['audit', 'verify', '--file', ledger]),
      cliProcess([
        'audit',
        'verify',
        '--file',
        tampered('process-edit.jsonl', (lines) =>
          lines.map((l, i) => (i === 1 ? l.replace('"jti":"jti-', '"jti":"x-') : l)),
        ),
      ]),
    ]);
    expect(intact).toMatchObject({ code: 0, stderr: '' });
    expect(intact.stdout).toMatch(/^ok: 8 records/);
    expect(broken).toMatchObject({ code: 1, stdout: '' });
    expect(broken.stderr).toMatch(/^trustplane: audit_chain_broken: broken at record 2 /);
  });

  it('audit query --json | head -1: a reader that closes the pipe ends it quietly (exit 0, nothing on stderr)', async () => {
    const big = f('big.jsonl');
    const sink = await FileLedgerSink.open(big, { chainId: 'adapter-big', fsync: 'never' });
    // ~1 MB of records: far more than a pipe buffer, so the CLI is still writing when the reader leaves.
    for (let i = 1; i <= 2500; i++) await sink.writeDurable(event(i));
    await sink.close();
    const child = spawn(process.execPath, [CLI, 'audit', 'query', '--file', big, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const closed = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    const first = await new Promise<string>((resolve) => {
      let buffered = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        buffered += d;
        const nl = buffered.indexOf('\n');
        if (nl >= 0) {
          child.stdout.destroy(); // what `head -1` does after its line
          resolve(buffered.slice(0, nl));
        }
      });
      // A child that dies before its first line must fail the test, not hang it.
      void closed.then(() => resolve(buffered));
    });
    const code = await closed;
    expect(JSON.parse(first)).toMatchObject({ jti: 'jti-1' });
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  }, 60_000);
});
