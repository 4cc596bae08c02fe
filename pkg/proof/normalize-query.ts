import { TrustplaneError } from '../authcore/errors.js';
import { utf8 } from '../internal/bytes.js';
import { MAX_QUERY_LENGTH } from './wire.js';

const HEX_UPPER = '0123456789ABCDEF';

function isUnreserved(b: number): boolean {
  // RFC 3986 section 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~"
  return (
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x2d ||
    b === 0x2e ||
    b === 0x5f ||
    b === 0x7e
  );
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Percent-decode to bytes, then re-encode with exactly the unreserved set left bare and
 * uppercase hex for everything else. `+` is an ordinary character (encoded `%2B`), never a space.
 */
function recode(component: string): string {
  const bytes = utf8(component);
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    let b = bytes[i]!;
    if (b === 0x25) {
      const hi = i + 2 < bytes.length ? hexValue(bytes[i + 1]!) : -1;
      const lo = i + 2 < bytes.length ? hexValue(bytes[i + 2]!) : -1;
      if (hi < 0 || lo < 0)
        throw new TrustplaneError('malformed_request', 'malformed percent-encoding in query');
      b = (hi << 4) | lo;
      i += 2;
    }
    out += isUnreserved(b) ? String.fromCharCode(b) : `%${HEX_UPPER[b >> 4]!}${HEX_UPPER[b & 15]!}`;
  }
  return out;
}

/**
 * transcript-v1 query normalization `rfc3986-sort-keys-values`.
 *
 * The raw query (without `?`) is split on `&`; empty pieces are dropped; each piece splits at its
 * first `=` (a piece without `=` has an empty value); key and value are percent-decoded to bytes
 * and re-encoded (unreserved bare, the rest `%XX` uppercase); pairs are sorted by encoded key,
 * then encoded value (byte order; all ASCII after encoding); output is `k=v` joined by `&`.
 *
 * @param rawQuery the query as sent, without the leading `?`
 * @returns the normalized query ('' for an empty query)
 * @throws TrustplaneError `malformed_request` for a `%` not followed by two hex digits, or a query
 *   longer than 8192 characters (as sent, or once normalized)
 * @example normalizeQuery('z=last&a=2&a=10') // 'a=10&a=2&z=last'
 */
export function normalizeQuery(rawQuery: string): string {
  if (rawQuery.length > MAX_QUERY_LENGTH) throw new TrustplaneError('malformed_request', 'query too long');
  if (rawQuery === '') return '';
  const pairs: [string, string][] = [];
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const key = eq < 0 ? piece : piece.slice(0, eq);
    const value = eq < 0 ? '' : piece.slice(eq + 1);
    pairs.push([recode(key), recode(value)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const normalized = pairs.map(([k, v]) => `${k}=${v}`).join('&');
  // Re-encoding can triple a query: the bound holds for the normalized form too, so that a
  // normalized query is itself a valid query (normalization is idempotent) and fits broker-ipc-v1.
  if (normalized.length > MAX_QUERY_LENGTH) throw new TrustplaneError('malformed_request', 'query too long');
  return normalized;
}

/**
 * Why a raw query could be read differently by an upstream that receives it as sent, or undefined:
 * a `+` (a space to form decoders, a plus to RFC 3986 ones; the transcript reads a plus), or a key
 * given more than once (first-value and last-value parsers pick different values, and the
 * transcript's sorted form does not fix an order). Enforcement points that cannot forward the
 * canonical query (forward-auth: the gateway forwards the original) refuse such queries.
 * @param rawQuery the query as sent, without `?` (already checked by {@link normalizeQuery})
 */
export function queryAmbiguity(rawQuery: string): string | undefined {
  if (rawQuery.includes('+')) return 'query has a + (a space to form decoders)';
  const keys = new Set<string>();
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const key = recode(eq < 0 ? piece : piece.slice(0, eq));
    if (keys.has(key)) return 'query repeats a key';
    keys.add(key);
  }
  return undefined;
}
