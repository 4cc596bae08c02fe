import type pg from 'pg';
import { requireOptional } from '../internal/node/require-optional.js';

/**
 * The `pg` package, loaded on first use: it is an optional peer dependency, needed only for the
 * PostgreSQL audit ledger.
 * @throws DependencyMissingError `dependency_missing` when `pg` is not installed
 */
export function loadPg(): typeof pg {
  return requireOptional<typeof pg>('pg', 'the PostgreSQL audit ledger');
}
