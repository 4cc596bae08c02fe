import { TrustplaneError } from '../authcore/errors.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** Most headers a request may ask to cover. */
export const MAX_COVERED_HEADERS = 32;

/** The headers every route covers when it lists none. */
export const DEFAULT_COVERED_HEADERS: readonly string[] = Object.freeze(['x-trustplane-nonce']);

/**
 * Normalize a covered-header list: lowercase, validated as HTTP tokens, de-duplicated, sorted.
 * @throws TrustplaneError `malformed_request` for an invalid name or too many names
 */
export function normalizeCoveredHeaders(names: Iterable<string>): string[] {
  const set = new Set<string>();
  for (const raw of names) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    if (!TOKEN.test(name)) throw new TrustplaneError('malformed_request', 'invalid covered header name');
    set.add(name);
  }
  if (set.size > MAX_COVERED_HEADERS)
    throw new TrustplaneError('malformed_request', 'too many covered headers');
  return [...set].sort();
}

/** Parse an `X-TrustPlane-Covered-Headers: a,b,c` value. */
export function parseCoveredHeadersHeader(value: string): string[] {
  return normalizeCoveredHeaders(value.split(','));
}

/**
 * The covered-header allow list a route requires: its `covered_headers` (default
 * `x-trustplane-nonce`), always including `x-trustplane-nonce`, plus `content-type` when the
 * request has a body.
 */
export function requiredCoveredHeaders(
  routeHeaders: readonly string[] | undefined,
  hasBody: boolean,
): string[] {
  const names = [...(routeHeaders ?? DEFAULT_COVERED_HEADERS), 'x-trustplane-nonce'];
  if (hasBody) names.push('content-type');
  return normalizeCoveredHeaders(names);
}
