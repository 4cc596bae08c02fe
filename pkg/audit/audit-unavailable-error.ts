import { TrustplaneError } from '../authcore/errors.js';

/**
 * A durable audit write could not be confirmed (PostgreSQL unreachable, the commit failed or did
 * not happen in time). Reason `audit_unavailable` (503): a route that requires a durable audit
 * write denies. The record stays queued and is written once PostgreSQL is back.
 */
export class AuditUnavailableError extends TrustplaneError {
  /**
   * True when the event was chained and stays queued (it will be written when PostgreSQL is
   * back): the caller must not record the decision a second time.
   */
  readonly queued: boolean;

  constructor(message: string, queued = false) {
    super('audit_unavailable', message);
    this.queued = queued;
  }
}
