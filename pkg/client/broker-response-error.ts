import { TrustplaneError } from '../authcore/errors.js';
import type { ReasonCode } from '../authcore/reason-codes.js';

/** Which client-side check a broker response failed. */
export type BrokerResponseCheck =
  'response_shape' | 'request_id' | 'passport' | 'jti' | 'audience' | 'key_binding' | 'transcript' | 'stamp';

const CHECK_REASON: Readonly<Record<BrokerResponseCheck, ReasonCode>> = Object.freeze({
  response_shape: 'malformed_passport',
  passport: 'malformed_passport',
  jti: 'malformed_passport',
  audience: 'audience_mismatch',
  key_binding: 'insufficient_key_binding',
  request_id: 'request_binding_mismatch',
  transcript: 'request_binding_mismatch',
  stamp: 'request_binding_mismatch',
});

/**
 * The client refused a broker's allow response before sending anything: it is not a valid
 * broker-ipc-v1 response, answers another request, or its passport and stamp are not bound to
 * the exact request the client is about to send. `reason` is `malformed_passport` (shape,
 * passport, jti), `audience_mismatch`, `insufficient_key_binding` or `request_binding_mismatch`
 * (request id, transcript, stamp); `check` names the failed check.
 * @example
 * catch (e) { if (e instanceof BrokerResponseError) log.warn({ reason: e.reason, check: e.check }) }
 */
export class BrokerResponseError extends TrustplaneError {
  /** The failed check. */
  readonly check: BrokerResponseCheck;

  constructor(check: BrokerResponseCheck, message: string) {
    super(CHECK_REASON[check], message, { check });
    this.check = check;
  }
}
