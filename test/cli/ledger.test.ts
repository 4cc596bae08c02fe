import { execFile } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/adapter-process.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

// `trustplane ledger migrate` from the built CLI against a real private PostgreSQL.

function cli(args: readonly string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { encoding: 'utf8', timeout: 30_000, env: { ...process.env, TRUSTPLANE_AUDIT: '', ...env } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('trustplane ledger migrate', () => {
  let server: PostgresServer;
  const PASSWORD = 'Ledger-s3cret';
  const url = () => `postgresql://postgres:${PASSWORD}@127.0.0.1:${server.port}/postgres`;

  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });

  it('creates the ledger table and its indexes, then finds nothing to do', async () => {
    const first = await cli(['ledger', 'migrate', '--postgres', url()]);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toMatch(/^ledger schema migrated to version 1 \(applied 1\)\n$/);
    // TRUSTPLANE_AUDIT is used when it is a PostgreSQL URL.
    const again = await cli(['ledger', 'migrate'], { TRUSTPLANE_AUDIT: url() });
    expect(again).toEqual({ code: 0, stdout: 'ledger schema already at version 1\n', stderr: '' });
    const client = new pg.Client({ connectionString: url() });
    await client.connect();
    try {
      const indexes = await client.query(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'trustplane_ledger' ORDER BY indexname",
      );
      expect((indexes.rows as { indexname: string }[]).map((r) => r.indexname)).toEqual(
        expect.arrayContaining([
          'trustplane_ledger_jti_idx',
          'trustplane_ledger_route_time_idx',
          'trustplane_ledger_sub_time_idx',
          'trustplane_ledger_time_idx',
        ]),
      );
    } finally {
      await client.end();
    }
  });

  it('without a URL: usage error, exit 2; an unreachable database: exit 1, password hidden', async () => {
    expect(await cli(['ledger', 'migrate'])).toMatchObject({
      code: 2,
      stderr: 'trustplane: usage: --postgres URL is required\n',
    });
    const down = await cli([
      'ledger',
      'migrate',
      '--postgres',
      `postgresql://postgres:${PASSWORD}@127.0.0.1:1/x`,
    ]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(
      /^trustplane: ledger_unavailable: cannot migrate the ledger \(postgresql:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/x\)/,
    );
    expect(down.stderr).not.toContain(PASSWORD);
  });

  it('the cause of a connection failure is shown (refused, no such database), never the password', async () => {
    const refused = await cli([
      'ledger',
      'migrate',
      '--postgres',
      `postgresql://postgres:${PASSWORD}@127.0.0.1:1/x`,
    ]);
    expect(refused.stderr).toMatch(/: connect ECONNREFUSED 127\.0\.0\.1:1\n$/);
    const noDb = await cli([
      'ledger',
      'migrate',
      '--postgres',
      `postgresql://postgres:${PASSWORD}@127.0.0.1:${server.port}/no_such_db`,
    ]);
    expect(noDb.code).toBe(1);
    expect(noDb.stderr).toMatch(
      /^trustplane: ledger_\w+: cannot migrate the ledger \(postgresql:\/\/postgres:\*\*\*@.*\): database "no_such_db" does not exist\n$/,
    );
    expect(refused.stderr + noDb.stderr).not.toContain(PASSWORD);
  });
});
