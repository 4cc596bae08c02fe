import { TrustplaneError } from '../../authcore/errors.js';

/** Stable codes of {@link WorkloadApiError}: registry codes of the `workload_api` layer. */
export type WorkloadApiErrorCode =
  /** No endpoint given and `SPIFFE_ENDPOINT_SOCKET` unset or empty. */
  | 'workload_api_no_endpoint'
  /** The endpoint is not a `unix:` absolute path or a `tcp://<ip>:<port>` address. */
  | 'workload_api_bad_endpoint'
  /** The agent is unreachable, failed, ended the stream, or gave nothing within the timeout. */
  | 'workload_api_unavailable'
  /** The agent holds no identity for this workload (gRPC PERMISSION_DENIED / UNAUTHENTICATED). */
  | 'workload_api_no_identity'
  /** The agent rejected the call itself (gRPC INVALID_ARGUMENT, UNIMPLEMENTED, FAILED_PRECONDITION). */
  | 'workload_api_rejected'
  /** The agent sent a response that is empty, malformed or over a bound; it was ignored. */
  | 'workload_api_bad_response'
  /** The source was closed. */
  | 'workload_api_closed';

/** Non-secret structured details of a {@link WorkloadApiError} (for logs and audit events). */
export type WorkloadApiErrorDetails = Readonly<Record<string, string | number | boolean>>;

/**
 * A Workload API failure. `reason` is the registry code (layer `workload_api`); `details` are
 * non-secret (gRPC status name, endpoint, offending field, ...). Messages and details never contain
 * key material or certificate bytes.
 *
 * @example
 * try { await WorkloadApiX509Source.connect() } catch (e) {
 *   if (e instanceof WorkloadApiError && e.reason === 'workload_api_no_identity') { ... }
 * }
 */
export class WorkloadApiError extends TrustplaneError {
  /** Stable registry code (layer `workload_api`). */
  declare readonly reason: WorkloadApiErrorCode;

  /**
   * @param reason the registry code
   * @param message what failed, without key material or certificate bytes
   * @param details non-secret details (copied and frozen)
   */
  constructor(reason: WorkloadApiErrorCode, message: string, details: WorkloadApiErrorDetails = {}) {
    super(reason, message, Object.freeze({ ...details }));
  }
}

/** Longest server-supplied text kept in a message or detail. */
export const MAX_SERVER_MESSAGE_CHARS = 200;

/** Server-supplied text for a log line: bounded, control characters replaced. */
export function printable(text: string, max: number): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  let out = '';
  for (const ch of cut) {
    const c = ch.codePointAt(0) ?? 0;
    out += c < 0x20 || (c >= 0x7f && c <= 0x9f) ? '?' : ch;
  }
  return out;
}
