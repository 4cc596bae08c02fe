import { encodeBase64Url } from '../internal/base64url.js';
import { utf8 } from '../internal/bytes.js';
import { bodySha256 } from '../proof/body-sha256.js';
import { normalizeCoveredHeaders } from '../proof/covered-headers.js';
import { assertClientPath } from '../proof/sdk-path-safety.js';
import { WIRE_HEADERS } from '../proof/wire.js';
import { isReservedHeader } from './client-headers.js';

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

const METHOD = /^[A-Za-z]{1,16}$/;
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
