import { TrustplaneError } from '../authcore/errors.js';
import { encodeBase64Url } from '../internal/base64url.js';
import { utf8 } from '../internal/bytes.js';
import { normalizeCoveredHeaders } from '../proof/covered-headers.js';
import { normalizeQuery } from '../proof/normalize-query.js';
import { bodySha256 } from '../proof/body-sha256.js';
import { MAX_QUERY_LENGTH, WIRE_HEADERS } from '../proof/wire.js';
import { assertClientPath } from '../proof/sdk-path-safety.js';

/** Request headers as a caller gives them: a plain record (names case-insensitive) or `Headers`. */
export type ClientHeaders = Readonly<Record<string, string>> | Headers;

/**
 * The exact request a {@link PassportSource} binds credentials to: everything that is sent except
 * the credential headers themselves (`Authorization` and the `X-TrustPlane-*` proof headers).
 */
export interface OutgoingRequest {
  /** Uppercase method. */
  readonly method: string;
  readonly scheme: 'http' | 'https';
  /** Lowercase `host[:port]`. */
  readonly authority: string;
  /** The raw path, exactly as sent (base path included). */
  readonly path: string;
  /** The raw query, exactly as sent, without `?` ('' when none). */
  readonly query: string;
  /** `scheme://authority` + path + `?query`, built by concatenation (never URL-normalized). */
  readonly url: string;
  readonly audience: string;
  readonly routeId: string;
  /** `Content-Encoding` as sent, trimmed and lowercased (`identity` when absent). */
  readonly contentEncoding: string;
  /**
   * Every header that is sent besides the credential headers, lowercase names (null prototype),
   * including `x-trustplane-nonce` and, with a body, `content-type`.
   */
  readonly headers: Readonly<Record<string, string>>;
  /** The covered-header allow list (normalized: lowercase, sorted, unique). */
  readonly coveredHeaders: readonly string[];
  /** The exact body bytes sent (a private copy: later changes by the caller are not sent). */
  readonly body: Uint8Array;
  /** Lowercase hex SHA-256 of `body`. */
  readonly bodySha256: string;
  /** The request nonce (also in `headers['x-trustplane-nonce']`). */
  readonly nonce: string;
}

/** Content type sent with a body when the caller names none (a `fetch` would otherwise add its own). */
export const DEFAULT_BODY_CONTENT_TYPE = 'application/octet-stream';

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
const METHOD = /^[A-Za-z]{1,16}$/;
// RFC 3986 section 3.4: query = *( pchar / "/" / "?" ); '%' is checked by normalizeQuery.
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

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

/** Check a value that goes into a transcript line (audience, route id). */
export function checkField(name: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max || CONTROL.test(value)) {
    throw new TypeError(`${name} must be a non-empty string without control characters`);
  }
  return value;
}

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

/** What {@link prepareOutgoingRequest} needs. */
export interface PrepareRequestInput {
  readonly scheme: 'http' | 'https';
  readonly authority: string;
  /** Path prefix of the base URL ('' for none). */
  readonly basePath: string;
  /** The full raw path (base path included). */
  readonly path: string;
  readonly query: string;
  readonly method: string;
  /** Lowercase header record (already checked by {@link mergeHeaders}). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | Uint8Array | undefined;
  readonly audience: string;
  readonly routeId: string;
  /** Extra covered headers (already checked by {@link checkCoveredHeaders}). */
  readonly coveredHeaders: readonly string[];
  /** Fixed nonce (tests, reproducible vectors); 128 random bits otherwise. */
  readonly nonce?: string;
}

const NONCE = /^[\x21-\x7e]{1,256}$/;

/**
 * Check and freeze every fact of a request before anything leaves the process: path, method, body,
 * headers; add the nonce and, for a body without one, a content type; hash the body copy.
 * @throws TrustplaneError `unsafe_request_path`; TypeError for misuse
 */
export async function prepareOutgoingRequest(input: PrepareRequestInput): Promise<OutgoingRequest> {
  assertClientPath(input.path, { basePath: input.basePath });
  if (typeof input.method !== 'string' || !METHOD.test(input.method)) {
    throw new TypeError('method must be 1 to 16 letters');
  }
  const method = input.method.toUpperCase();
  // Fetch refuses these (Fetch standard, forbidden methods); refuse them before minting anything.
  if (method === 'CONNECT' || method === 'TRACE' || method === 'TRACK') {
    throw new TypeError(`method ${method} cannot be sent`);
  }
  let body: Uint8Array;
  if (input.body === undefined) body = new Uint8Array(0);
  else if (typeof input.body === 'string') body = utf8(input.body);
  else if (input.body instanceof Uint8Array) body = Uint8Array.from(input.body);
  else throw new TypeError('body must be a string or a Uint8Array');
  if (body.length > 0 && (method === 'GET' || method === 'HEAD')) {
    throw new TypeError(`a ${method} request cannot have a body`);
  }
  const nonce = input.nonce ?? encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
  if (!NONCE.test(nonce)) throw new TypeError('nonce must be 1 to 256 visible ASCII characters');

  const headers = Object.assign(Object.create(null) as Record<string, string>, input.headers);
  for (const name of Object.keys(headers)) {
    if (isReservedHeader(name)) throw new TypeError(`header ${name} is reserved and set by the client`);
  }
  if (body.length > 0 && headers['content-type'] === undefined) {
    headers['content-type'] = DEFAULT_BODY_CONTENT_TYPE;
  }
  headers[WIRE_HEADERS.nonce] = nonce;
  const covered = [WIRE_HEADERS.nonce, ...input.coveredHeaders];
  if (body.length > 0 || headers['content-type'] !== undefined) covered.push('content-type');

  const url = `${input.scheme}://${input.authority}${input.path}${input.query === '' ? '' : `?${input.query}`}`;
  return Object.freeze({
    method,
    scheme: input.scheme,
    authority: input.authority,
    path: input.path,
    query: input.query,
    url,
    audience: input.audience,
    routeId: input.routeId,
    contentEncoding: headers['content-encoding']?.trim().toLowerCase() ?? 'identity',
    headers: Object.freeze(headers),
    coveredHeaders: Object.freeze(normalizeCoveredHeaders(covered)),
    body,
    bodySha256: await bodySha256(body),
    nonce,
  });
}

/** Options for {@link prepareRequest}. */
export interface PrepareRequestOptions {
  readonly method: string;
  /** Absolute http(s) URL, exactly as it will be sent (parsed without normalization). */
  readonly url: string;
  readonly audience: string;
  readonly routeId: string;
  readonly headers?: ClientHeaders;
  readonly body?: string | Uint8Array;
  /** Headers to cover beyond `x-trustplane-nonce` and `content-type`. */
  readonly coveredHeaders?: readonly string[];
  /** Fixed nonce (tests, reproducible vectors); 128 random bits otherwise. */
  readonly nonce?: string;
}

// scheme://authority[/path][?query], no fragment; the authority is host[:port] without userinfo.
const ABSOLUTE_URL = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#\s]+)([^?#\s]*)(?:\?([^#\s]*))?$/;
const AUTHORITY =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/** An absolute http(s) URL split without normalization. */
export interface SplitUrl {
  readonly scheme: 'http' | 'https';
  readonly authority: string;
  readonly path: string;
  readonly query: string | undefined;
}

/**
 * Split an absolute http(s) URL by text (WHATWG URL parsing would resolve dot segments and rewrite
 * `\`). Scheme and authority are lowercased; userinfo and fragments are refused.
 * @throws TypeError
 */
export function splitAbsoluteUrl(url: string, what: string): SplitUrl {
  const m = typeof url === 'string' ? ABSOLUTE_URL.exec(url) : null;
  if (!m) throw new TypeError(`${what} must be an absolute http(s) URL without a fragment`);
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') throw new TypeError(`${what} scheme must be http or https`);
  if (m[2]!.includes('@')) throw new TypeError(`${what} must not carry userinfo`);
  if (!AUTHORITY.test(m[2]!)) throw new TypeError(`${what} has an invalid host`);
  return { scheme, authority: m[2]!.toLowerCase(), path: m[3]!, query: m[4] };
}

/**
 * Check and freeze one request given by absolute URL, as a {@link ProtectedClient} would send it:
 * the input to {@link describeRequestForBroker} for tools (CLI, broker tests) that are not a client.
 * @throws TrustplaneError `unsafe_request_path`, `malformed_request` (query); TypeError for misuse
 * @example
 * const request = await prepareRequest({ method: 'POST', url: 'https://orders.example/v1/orders',
 *   audience: 'orders-api', routeId: 'orders.create', headers: { 'content-type': 'application/json' }, body })
 * const http = describeRequestForBroker(request)
 */
export async function prepareRequest(options: PrepareRequestOptions): Promise<OutgoingRequest> {
  const target = splitAbsoluteUrl(options.url, 'url');
  const headers = Object.create(null) as Record<string, string>;
  mergeHeaders(headers, options.headers);
  return prepareOutgoingRequest({
    scheme: target.scheme,
    authority: target.authority,
    basePath: '',
    path: target.path === '' ? '/' : target.path,
    query: rawQueryOf(target.query),
    method: options.method,
    headers,
    body: options.body,
    audience: checkField('audience', options.audience, 2048),
    routeId: checkField('routeId', options.routeId, 256),
    coveredHeaders: checkCoveredHeaders(options.coveredHeaders ?? []),
    ...(options.nonce !== undefined ? { nonce: options.nonce } : {}),
  });
}
