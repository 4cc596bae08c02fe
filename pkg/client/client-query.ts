import { TrustplaneError } from '../authcore/errors.js';
import { normalizeQuery } from '../proof/normalize-query.js';
import { MAX_QUERY_LENGTH } from '../proof/wire.js';

// RFC 3986 section 3.4: query = *( pchar / "/" / "?" ); '%' is checked by normalizeQuery.
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/;

/** A raw query as given: a string (one leading `?` dropped) or `URLSearchParams` (its text). */
export type ClientQuery = string | URLSearchParams;

/**
 * The raw query text to send, checked for RFC 3986 query characters and valid percent-encoding.
 * @throws TrustplaneError `malformed_request`
 */
export function rawQueryOf(query: ClientQuery | undefined): string {
  if (query === undefined) return '';
  const text = typeof query === 'string' ? query : query.toString();
  const raw = text.startsWith('?') ? text.slice(1) : text;
  if (raw.length > MAX_QUERY_LENGTH) throw new TrustplaneError('malformed_request', 'query too long');
  if (!QUERY_CHARS.test(raw)) {
    throw new TrustplaneError('malformed_request', 'query has characters outside RFC 3986 query');
  }
  normalizeQuery(raw);
  return raw;
}
