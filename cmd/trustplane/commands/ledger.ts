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
      // Loaded here: the audit module pulls in the database client.
      const { migratePostgresLedger } = await import('../../../pkg/audit/index.js');
      // Fails with ledger_unavailable (unreachable, timed out) or ledger_error (refused).
      const result = await migratePostgresLedger(url);
      process.stdout.write(
        result.applied.length > 0
          ? `ledger schema migrated to version ${result.version} (applied ${result.applied.join(', ')})\n`
          : `ledger schema already at version ${result.version}\n`,
      );
    });
}
