import { TrustplaneError } from '../authcore/errors.js';
import { sha256HexSync, sha256Sync } from '../internal/sha256.js';
import { toHex } from '../internal/bytes.js';
import { normalizeCoveredHeaders } from './covered-headers.js';
import { getHeader, type HeaderSource } from './header-source.js';
import { normalizeQuery } from './normalize-query.js';
import { QUERY_NORMALIZATION, TIME_BUCKET_SECONDS, TRANSCRIPT_VERSION } from './wire.js';

/** The request facts a transcript-v1 covers. */
export interface TranscriptInput {
  readonly method: string;
  readonly scheme: string;
  readonly authority: string;
  /** The raw path as sent (no query). */
  readonly path: string;
  /** The raw query as sent, without `?` ('' when none). */
  readonly query: string;
  /** `normalizeQuery(query)` when the caller has already computed it (it is not recomputed). */
  readonly normalizedQuery?: string;
  readonly audience: string;
  readonly routeId: string;
  /** `Content-Encoding` of the body as sent (default `identity`). */
  readonly contentEncoding?: string;
  /** The covered-header allow list (normalized here: lowercase, sorted, unique). */
  readonly coveredHeaders: readonly string[];
  /** Header values; a covered header absent from the request is left out of `headers.selected`. */
  readonly headers: HeaderSource;
  /** Lowercase hex SHA-256 of the exact body bytes. */
  readonly bodySha256: string;
  readonly passportJti: string;
  readonly nonce: string;
  /** Passport `iat`, epoch seconds. */
  readonly issuedAt: number;
  /** Passport `cnf.key_binding`. */
  readonly keyBinding: string;
}

/** A built transcript. */
export interface Transcript {
  /** The 20 canonical lines. */
  readonly lines: readonly string[];
  /** Lines joined by LF, no trailing newline. */
  readonly canonical: string;
  /** Lowercase hex SHA-256 of the canonical bytes. */
  readonly sha256: string;
  /** The 32 raw digest bytes (what the proof signs). */
  readonly digest: Uint8Array;
  readonly normalizedQuery: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function field(name: string, value: string): string {
  // A CR/LF in any value would forge extra transcript lines; control characters are refused.
  if (CONTROL.test(value)) throw new TrustplaneError('malformed_request', `invalid characters in ${name}`);
  return value;
}

/**
 * Build the transcript-v1 canonical lines and digest for a request.
 *
 * @throws TrustplaneError `malformed_request` for control characters in any field, a malformed
 *   query, an invalid covered header name or a body digest that is not 64 lowercase hex
 * @example
 * const t = await buildTranscript({ method: 'GET', scheme: 'https', authority: 'orders.example', ... })
 * t.sha256 // '2e8a6583…'
 */
export async function buildTranscript(input: TranscriptInput): Promise<Transcript> {
  return buildTranscriptSync(input);
}

/**
 * {@link buildTranscript}, synchronously (every digest it takes is of a small value).
 * @throws TrustplaneError as {@link buildTranscript}
 * @example
 * const t = buildTranscriptSync({ method: 'GET', scheme: 'https', authority: 'orders.example', ... })
 */
export function buildTranscriptSync(input: TranscriptInput): Transcript {
  const normalizedQuery = input.normalizedQuery ?? normalizeQuery(input.query);
  const allowList = normalizeCoveredHeaders(input.coveredHeaders);
  const selected: { name: string; valueSha256: string }[] = [];
  for (const name of allowList) {
    const value = getHeader(input.headers, name);
    // Small values: synchronous hashing (an async WebCrypto round trip per value costs more than
    // the hash itself). Header values are bounded by the HTTP server's header limits.
    if (value !== undefined) selected.push({ name, valueSha256: sha256HexSync(value.trim()) });
  }
  // Every member named: spreading the 17-member input into a new object costs more than the rest
  // of this function.
  return transcriptFromDigests({
    method: input.method,
    scheme: input.scheme,
    authority: input.authority,
    path: input.path,
    audience: input.audience,
    routeId: input.routeId,
    ...(input.contentEncoding !== undefined ? { contentEncoding: input.contentEncoding } : {}),
    bodySha256: input.bodySha256,
    passportJti: input.passportJti,
    nonce: input.nonce,
    issuedAt: input.issuedAt,
    keyBinding: input.keyBinding,
    normalizedQuery,
    querySha256: sha256HexSync(normalizedQuery),
    allowList,
    selected,
  });
}

/** Transcript facts with the query and header values already digested (broker-ipc-v1 `http`). */
export interface TranscriptDigestInput extends Omit<TranscriptInput, 'query' | 'coveredHeaders' | 'headers'> {
  /** The normalized query (`rfc3986-sort-keys-values`). */
  readonly normalizedQuery: string;
  /** Lowercase hex SHA-256 of the normalized query. */
  readonly querySha256: string;
  /** The covered-header allow list, already normalized (lowercase, sorted, unique). */
  readonly allowList: readonly string[];
  /** Digests of the trimmed values of the allow-listed headers present, in allow-list order. */
  readonly selected: readonly { readonly name: string; readonly valueSha256: string }[];
}

/**
 * Build transcript-v1 from pre-digested parts, as a broker does from a broker-ipc-v1 request
 * (it sees digests, never the header values or the body). The caller is responsible for the
 * parts' consistency with the request; {@link buildTranscript} is the form verifiers use.
 * @throws TrustplaneError `malformed_request` for a digest that is not 64 lowercase hex, control
 *   characters, or a selected header outside the allow list or out of order
 */
export function transcriptFromDigests(input: TranscriptDigestInput): Transcript {
  if (!HEX64.test(input.bodySha256))
    throw new TrustplaneError('malformed_request', 'body digest must be hex SHA-256');
  if (!HEX64.test(input.querySha256))
    throw new TrustplaneError('malformed_request', 'query digest must be hex SHA-256');
  if (!Number.isSafeInteger(input.issuedAt) || input.issuedAt < 0) {
    throw new TrustplaneError('malformed_request', 'issued_at must be epoch seconds');
  }
  let next = 0;
  for (const h of input.selected) {
    const at = input.allowList.indexOf(h.name, next);
    if (at < 0) throw new TrustplaneError('malformed_request', 'selected headers must follow the allow list');
    if (!HEX64.test(h.valueSha256))
      throw new TrustplaneError('malformed_request', 'header digest must be hex SHA-256');
    next = at + 1;
  }
  const lines = [
    `version=${TRANSCRIPT_VERSION}`,
    `method=${field('method', input.method)}`,
    `scheme=${field('scheme', input.scheme)}`,
    `authority=${field('authority', input.authority)}`,
    `path=${field('path', input.path)}`,
    `audience=${field('audience', input.audience)}`,
    `route_id=${field('route_id', input.routeId)}`,
    `content_encoding=${field('content_encoding', input.contentEncoding ?? 'identity')}`,
    `query_normalization.algorithm=${QUERY_NORMALIZATION}`,
    `query_normalization.normalized=${field('query', input.normalizedQuery)}`,
    `query_normalization.sha256=${input.querySha256}`,
    `query_sha256=${input.querySha256}`,
    `headers.allow_list=${input.allowList.map((n) => field('header name', n)).join(',')}`,
    `headers.selected=${input.selected.map((h) => `${h.name}:${h.valueSha256}`).join(',')}`,
    `body_sha256=${input.bodySha256}`,
    `passport_jti=${field('passport_jti', input.passportJti)}`,
    `nonce=${field('nonce', input.nonce)}`,
    `issued_at=${input.issuedAt}`,
    `time_bucket=${Math.floor(input.issuedAt / TIME_BUCKET_SECONDS)}`,
    `key_binding=${field('key_binding', input.keyBinding)}`,
  ];
  const canonical = lines.join('\n');
  // The string itself: a native primitive encodes it without an intermediate copy.
  const digest = sha256Sync(canonical);
  return { lines, canonical, sha256: toHex(digest), digest, normalizedQuery: input.normalizedQuery };
}
