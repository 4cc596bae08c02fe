import { normalizeCoveredHeaders } from '../proof/covered-headers.js';
import { WIRE_HEADERS } from '../proof/wire.js';

/** Request headers as a caller gives them: a plain record (names case-insensitive) or `Headers`. */
export type ClientHeaders = Readonly<Record<string, string>> | Headers;

/**
 * Header names the caller may never set: the credential headers the SDK writes, every
 * `X-TrustPlane-*` name (identity headers are the verifier's), `Host`, and the framing and
 * hop-by-hop headers whose values are the transport's business (RFC 9110 section 7.6.1).
 */
const RESERVED = new Set([
  'authorization',
  'proxy-authorization',
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
]);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: no NUL, CR or LF (a CR/LF would split the header; fetch refuses them anyway).
const BAD_VALUE = /[\0\r\n]/;

/**
 * True for a header name the caller may not set (`Authorization`, `Host`, `X-TrustPlane-*`, …).
 * @example isReservedHeader('X-TrustPlane-Subject') // true
 */
export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return RESERVED.has(lower) || lower.startsWith('x-trustplane-');
}

/**
 * Copy caller headers into `into` (lowercase names), refusing reserved names, invalid names or
 * values, and the same name twice in one record.
 * @throws TypeError for any of those
 */
export function mergeHeaders(into: Record<string, string>, headers: ClientHeaders | undefined): void {
  if (headers === undefined) return;
  let entries: [string, string][];
  if (headers instanceof Headers) {
    entries = [];
    headers.forEach((value, name) => entries.push([name, value]));
  } else {
    entries = Object.entries(headers);
  }
  const seen = new Set<string>();
  for (const [name, value] of entries) {
    if (typeof name !== 'string' || !TOKEN.test(name)) throw new TypeError('invalid header name');
    const lower = name.toLowerCase();
    if (isReservedHeader(lower)) throw new TypeError(`header ${lower} is reserved and set by the client`);
    if (typeof value !== 'string' || BAD_VALUE.test(value)) {
      throw new TypeError(`invalid value for header ${lower}`);
    }
    if (seen.has(lower)) throw new TypeError(`header ${lower} is given twice`);
    seen.add(lower);
    into[lower] = value;
  }
}

/**
 * Validate an extra covered-header list: valid names, none reserved (except `x-trustplane-nonce`,
 * which is always covered).
 * @throws TypeError for an invalid or reserved name
 */
export function checkCoveredHeaders(names: readonly string[]): readonly string[] {
  let normalized: string[];
  try {
    normalized = normalizeCoveredHeaders(names);
  } catch {
    throw new TypeError('coveredHeaders must be valid header names (at most 32)');
  }
  for (const name of normalized) {
    if (name !== WIRE_HEADERS.nonce && isReservedHeader(name)) {
      throw new TypeError(`header ${name} cannot be covered: it is reserved`);
    }
  }
  return Object.freeze(normalized);
}
