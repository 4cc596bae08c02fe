import { TrustplaneError } from '../authcore/errors.js';

/** Stable codes of {@link LedgerError}: the registry codes of the `ledger` layer. */
export type LedgerErrorCode =
  /** PostgreSQL, a ledger file or the spill file could not be reached, read or written in time. */
  | 'ledger_unavailable'
  /** The store refused the operation or holds damage an operator must fix (`details.sqlstate`). */
  | 'ledger_error'
  /** The ledger file holds another chain than the sink was opened for. */
  | 'ledger_chain_mismatch'
  /** Two writers use one chain id: a seq already holds another record. */
  | 'ledger_chain_fork'
  /** An event was refused before it was chained (buffer full, sink closed, not JSON). */
  | 'ledger_event_dropped'
  /** Chained records were lost before they were made durable (no spill file, a gap, a torn line). */
  | 'ledger_records_lost'
  /** The stored chain does not verify (an edited, deleted, inserted or reordered record). */
  | 'audit_chain_broken';

/**
 * An audit ledger operation failed, or a failure a ledger sink reports through `onError`. `reason`
 * is the registry code (layer `ledger`). The message names the database by its redacted URL (no
 * password) or the file, and never holds record content; `details.sqlstate` is the PostgreSQL
 * SQLSTATE and `details.error` the Node error code, when there is one.
 *
 * A durable write the caller waits for fails with {@link AuditUnavailableError} or a
 * `TrustplaneError` `audit_unavailable` instead: that is the code an enforcement point answers.
 * @example
 * const sink = await PostgresLedgerSink.open({ url, chainId: 'adapter-1', onError: (e) => {
 *   if (e instanceof LedgerError) log.error(e.message, { reason: e.reason, ...e.details })
 * } })
 */
export class LedgerError extends TrustplaneError {
  /** Stable registry code (layer `ledger`). */
  declare readonly reason: LedgerErrorCode;

  /**
   * @param reason the registry code
   * @param message what failed (redacted URL or file name; no record content, no password)
   * @param details non-secret details: `sqlstate`, `error` (Node code), `sink`, `path`
   */
  constructor(
    reason: LedgerErrorCode,
    message: string,
    details: Readonly<Record<string, string | number | boolean>> = {},
  ) {
    super(reason, message, details);
  }
}
