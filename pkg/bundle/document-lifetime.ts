import { z } from 'zod';

/*
 * The time inputs both document builders share: the `expires_in_seconds` bound and the `now`
 * check. Internal to pkg/bundle.
 */

export const lifetime = z
  .number()
  .int()
  .positive()
  .max(10 * 365 * 24 * 3600);

export function checkNow(now: number, fn: string): void {
  if (!Number.isSafeInteger(now) || now < 0) throw new RangeError(`${fn}: now must be integer epoch seconds`);
}
