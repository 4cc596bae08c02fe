import type { ClientBase, Pool } from 'pg';

/** The ledger table. */
export const LEDGER_TABLE = 'trustplane_ledger';
/** Which ledger migrations were applied (one row per version). */
export const LEDGER_MIGRATIONS_TABLE = 'trustplane_ledger_migrations';

/**
 * Key of the transaction-scoped advisory lock every migrator takes first, so several instances
 * starting at once apply each migration exactly once (ASCII "tplanemg").
 */
export const LEDGER_MIGRATION_LOCK_KEY = '8390325271511002471';

/** One schema migration: applied once, in version order, inside the migrating transaction. */
export interface LedgerMigration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}

/**
 * The ledger schema history. Append only: a released migration is never edited, a change is a new
 * version. Version 1: the table (indexed columns copied from the record for queries; `record` is
 * the whole ledger record, what the hash covers) and the indexes for the common questions (what
 * did this subject do and when, where was this jti used, who called this route and when, what
 * happened in this period).
 */
export const LEDGER_MIGRATIONS: readonly LedgerMigration[] = [
  {
    version: 1,
    name: 'ledger table and query indexes',
    statements: [
      `CREATE TABLE ${LEDGER_TABLE} (
        chain_id text NOT NULL,
        seq bigint NOT NULL CHECK (seq > 0),
        prev_hash char(64) NOT NULL,
        record_hash char(64) NOT NULL,
        "time" timestamptz,
        event_type text,
        component text,
        instance text,
        decision text,
        status int,
        reason text,
        route_id text,
        api_id text,
        audience text,
        iss text,
        sub text,
        trust_domain text,
        jti text,
        key_binding text,
        transcript_sha256 text,
        receipt text NULL,
        record jsonb NOT NULL,
        PRIMARY KEY (chain_id, seq),
        UNIQUE (record_hash)
      )`,
      `CREATE INDEX ${LEDGER_TABLE}_sub_time_idx ON ${LEDGER_TABLE} (sub, "time")`,
      `CREATE INDEX ${LEDGER_TABLE}_jti_idx ON ${LEDGER_TABLE} (jti)`,
      `CREATE INDEX ${LEDGER_TABLE}_route_time_idx ON ${LEDGER_TABLE} (route_id, "time")`,
      `CREATE INDEX ${LEDGER_TABLE}_time_idx ON ${LEDGER_TABLE} ("time")`,
    ],
  },
];

/** Result of {@link migrateLedger}. */
export interface MigrateLedgerResult {
  /** Versions this call applied (empty when the schema was already current). */
  readonly applied: readonly number[];
  /** The schema version afterwards (the highest applied, possibly by a newer release). */
  readonly version: number;
}

/** Options for {@link migrateLedger}. */
export interface MigrateLedgerOptions {
  /** How long to wait for another migrator's lock (default 30 s). */
  readonly lockTimeoutMs?: number;
}

function isPool(db: Pool | ClientBase): db is Pool {
  return 'totalCount' in db && typeof (db as Pool).connect === 'function';
}

/**
 * Bring the ledger schema up to date: in one transaction, take the migration advisory lock, create
 * the migrations table if missing, and apply every migration not yet recorded, in version order.
 * Idempotent and safe to run from several processes at once (the second waits for the first and
 * then finds nothing to do). A database migrated by a newer release is left as it is.
 * @param db a pool (a connection is borrowed) or a connected client not inside a transaction
 * @returns the versions applied and the schema version
 * @throws the PostgreSQL error when a statement fails (the transaction is rolled back)
 * @example
 * const pool = new pg.Pool({ connectionString }); await migrateLedger(pool)
 */
export async function migrateLedger(
  db: Pool | ClientBase,
  options: MigrateLedgerOptions = {},
): Promise<MigrateLedgerResult> {
  const lockTimeoutMs = options.lockTimeoutMs ?? 30_000;
  if (!Number.isSafeInteger(lockTimeoutMs) || lockTimeoutMs <= 0) {
    throw new RangeError('lockTimeoutMs must be a positive integer');
  }
  if (!isPool(db)) return migrateWith(db, lockTimeoutMs);
  const client = await db.connect();
  // A checked-out client has no pool error listener: a connection dropped between two queries
  // would otherwise be an unhandled 'error' event (the pending query fails on its own).
  const ignore = (): void => undefined;
  client.on('error', ignore);
  let failed = false;
  try {
    return await migrateWith(client, lockTimeoutMs);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    client.off('error', ignore);
    // A connection whose transaction failed is discarded rather than reused.
    client.release(failed);
  }
}

async function migrateWith(client: ClientBase, lockTimeoutMs: number): Promise<MigrateLedgerResult> {
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL lock_timeout = ${lockTimeoutMs}`);
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [LEDGER_MIGRATION_LOCK_KEY]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${LEDGER_MIGRATIONS_TABLE} (
        version int PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`,
    );
    const done = await client.query<{ version: number }>(`SELECT version FROM ${LEDGER_MIGRATIONS_TABLE}`);
    const have = new Set(done.rows.map((r) => r.version));
    const applied: number[] = [];
    for (const migration of LEDGER_MIGRATIONS) {
      if (have.has(migration.version)) continue;
      for (const statement of migration.statements) await client.query(statement);
      await client.query(`INSERT INTO ${LEDGER_MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
      have.add(migration.version);
    }
    await client.query('COMMIT');
    return { applied, version: Math.max(0, ...have) };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}
