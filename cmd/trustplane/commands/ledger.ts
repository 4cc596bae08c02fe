import type { Command } from 'commander';
import { CliError } from '../io.js';

interface MigrateFlags {
  postgres?: string;
}

/** Register `trustplane ledger migrate`. */
export function registerLedger(program: Command): void {
  const ledger = program
    .command('ledger')
    .description('The durable audit ledger in PostgreSQL: schema and migrations.')
    .addHelpText(
      'after',
      `
Example:
  trustplane ledger migrate --postgres postgresql://trustplane@db.internal:5432/audit`,
    );
  ledger
    .command('migrate')
    .description('Create or upgrade the ledger table and its indexes (idempotent; safe to run concurrently).')
    .option('--postgres <url>', 'PostgreSQL URL (or TRUSTPLANE_AUDIT when it is a postgres:// URL)')
    .addHelpText(
      'after',
      `
Creates trustplane_ledger (one row per ledger record, primary key (chain_id, seq)) with indexes by
subject and time, by jti, by route and time, and by time, in one transaction under an advisory lock.
Give the adapter's database role INSERT and SELECT only: verification detects edits, the role
prevents them.

Example:
  trustplane ledger migrate --postgres postgresql://trustplane@db.internal:5432/audit`,
    )
    .action(async (opts: MigrateFlags) => {
      const env = process.env.TRUSTPLANE_AUDIT;
      const url = opts.postgres ?? (env !== undefined && /^postgres(?:ql)?:\/\//.test(env) ? env : undefined);
      if (url === undefined) throw new CliError('--postgres URL is required', 'usage', 2);
      const { default: pg } = await import('pg');
      const { migrateLedger } = await import('../../../pkg/audit/ledger-migrations.js');
      const { redactConnectionString } = await import('../../../pkg/audit/postgres-ledger.js');
      const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 10_000 });
      pool.on('error', () => undefined);
      try {
        const result = await migrateLedger(pool);
        process.stdout.write(
          result.applied.length > 0
            ? `ledger schema migrated to version ${result.version} (applied ${result.applied.join(', ')})\n`
            : `ledger schema already at version ${result.version}\n`,
        );
      } catch (e) {
        const message = e instanceof Error ? redactConnectionString(e.message) : 'migration failed';
        throw new CliError(
          `cannot migrate the ledger at ${redactConnectionString(url)}: ${message}`,
          'audit_unavailable',
          1,
        );
      } finally {
        await pool.end();
      }
    });
}
