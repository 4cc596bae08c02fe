import type { BrokerIpcResponse } from '../proof/broker-ipc-v1.js';

/**
 * The broker refused to mint (a broker-ipc-v1 deny response). Carries the broker's reason code,
 * whether a retry may succeed, and the response's non-secret `error.details`.
 * @example
 * try { await client.request(req) } catch (e) {
 *   if (e instanceof BrokerDeniedError && e.retryable) scheduleRetry()
 * }
 */
export class BrokerDeniedError extends Error {
  /** The broker's `reason_code` (e.g. `insufficient_key_binding`, `issuance_policy_denied`). */
  readonly reasonCode: string;
  /** The broker's `error.retryable`. */
  readonly retryable: boolean;
  /** The broker's `error.details` (string values; empty when none). */
  readonly details: Readonly<Record<string, string>>;
  /** The `request_id` of the refused request. */
  readonly requestId: string;

  constructor(response: Extract<BrokerIpcResponse, { accepted: false }>) {
    super(`the broker denied the passport request: ${response.reason_code}`);
    this.name = 'BrokerDeniedError';
    this.reasonCode = response.reason_code;
    this.retryable = response.error.retryable;
    this.details = Object.freeze({ ...(response.error.details ?? {}) });
    this.requestId = response.request_id;
  }
}
