import { expect } from 'vitest';
import { TrustplaneError } from '../../pkg/authcore/errors.js';
import { REASON_CODES, isComponentReason, type ReasonCodeInfo } from '../../pkg/authcore/reason-codes.js';

/** A component error: a TrustplaneError whose reason is a registered code of `layer`, with its status. */
export function expectComponentError(
  error: unknown,
  layer: ReasonCodeInfo['layer'],
  name: string,
): TrustplaneError {
  expect(error).toBeInstanceOf(TrustplaneError);
  const e = error as TrustplaneError;
  expect(e.name).toBe(name);
  expect(Object.hasOwn(REASON_CODES, e.reason)).toBe(true);
  expect(REASON_CODES[e.reason].layer).toBe(layer);
  expect(isComponentReason(e.reason)).toBe(true);
  expect(e.status).toBe(REASON_CODES[e.reason].status);
  // One field: the registry code is `reason`; there is no separate `code`.
  expect('code' in e).toBe(false);
  return e;
}
