import { redactConnectionString, secretsOf } from './connection-string.js';
import { LedgerError, type LedgerErrorCode } from './ledger-error.js';
import { loadPg } from './pg-module.js';

/**
 * SQLSTATE classes that mean "not now" rather than "not like this": connection exception (08),
 * transaction rollback (40: serialization failure, deadlock), insufficient resources (53), operator
 * intervention (57: statement timeout, admin shutdown, cannot connect now), lock not available
 * (55P03). Any other SQLSTATE (authentication, permission, schema, data) needs an operator.
 */
const TRANSIENT_SQLSTATE = /^(?:08|40|53|57)|^55P03$/;
/** What a Node or SQLSTATE error code may look like to be copied into details. */
const ERROR_CODE = /^[A-Z0-9_]{1,32}$/;

function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    return ERROR_CODE.test(error.code) ? error.code : undefined;
  }
  return undefined;
}

/**
 * Wrap any failure as a {@link LedgerError} naming the redacted database, with secrets scrubbed.
 * A PostgreSQL error keeps its SQLSTATE in `details.sqlstate` and is `ledger_error` unless its class
 * is transient; anything else (unreachable, timed out, connection lost) is `fallback`.
 * @param what what failed, e.g. `cannot open the PostgreSQL audit ledger`
 * @param error the failure (a LedgerError is returned as it is)
 * @param url the connection URL (never repeated: redacted, and its secrets scrubbed from the detail)
 * @param fallback the reason of a failure that is not a PostgreSQL error (default `ledger_unavailable`)
 * @returns the LedgerError
 */
export function ledgerError(
  what: string,
  error: unknown,
  url: string,
  fallback: LedgerErrorCode = 'ledger_unavailable',
): LedgerError {
  if (error instanceof LedgerError) return error;
  let detail = error instanceof Error ? error.message : String(error);
  for (const secret of secretsOf(url)) detail = detail.split(secret).join('***');
  const code = errorCode(error);
  const sqlstate = isDatabaseError(error) ? code : undefined;
  const reason: LedgerErrorCode =
    sqlstate === undefined
      ? fallback
      : TRANSIENT_SQLSTATE.test(sqlstate)
        ? 'ledger_unavailable'
        : 'ledger_error';
  const details = sqlstate !== undefined ? { sqlstate } : code !== undefined ? { error: code } : {};
  return new LedgerError(reason, `${what} (${redactConnectionString(url)}): ${detail}`, details);
}

/** A PostgreSQL server error (`pg`'s DatabaseError); false when `pg` is not even installed. */
function isDatabaseError(error: unknown): boolean {
  try {
    return error instanceof loadPg().DatabaseError;
  } catch {
    return false;
  }
}
