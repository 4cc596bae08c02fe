import { decodePassportUnverified } from '../authcore/passport-format.js';
import type { SigningKey } from '../authcore/signing-key.js';
import { timingSafeEqualString, utf8 } from '../internal/bytes.js';
import { encodeBase64Url } from '../internal/base64url.js';
import { bodySha256 } from './body-sha256.js';
import { normalizeCoveredHeaders } from './covered-headers.js';
import { assertSafePath } from './path-safety.js';
import { signProof } from './request-proof.js';
import { parseRequestTarget } from './request-target.js';
import { buildTranscript, type Transcript } from './transcript.js';
import { WIRE_HEADERS } from './wire.js';

/** Options for {@link signRequest}. */
export interface SignRequestOptions {
  readonly method: string;
  /** Absolute URL the request goes to (the verifier's public origin). */
  readonly url: string;
  /** The route id the verifier will resolve for this request. */
  readonly routeId: string;
  /** The passport (compact JWS) whose `cnf` key is `requestKey`. */
  readonly passport: string;
  /** The private key matching the passport `cnf`. */
  readonly requestKey: SigningKey;
  /** Request headers to send (names case-insensitive). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array | string;
  /** Extra headers to cover beyond the nonce and content-type. */
  readonly coveredHeaders?: readonly string[];
  /** Fixed nonce (tests and reproducible vectors); random 128-bit otherwise. */
  readonly nonce?: string;
}

/** A signed request: headers to add, and the transcript they commit to. */
export interface SignedRequest {
  /** All headers to send (caller headers plus the proof headers), lowercase names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly transcript: Transcript;
  readonly bodySha256: string;
}

/**
 * Bind one HTTP request to a passport: builds transcript-v1 and signs it with the `cnf` key.
 * Produces `Authorization`, `X-TrustPlane-Proof`, `-Transcript-SHA256`, `-Nonce`, `-Body-SHA256`
 * and `-Covered-Headers`.
 * @throws TrustplaneError `unsafe_request_path` for an unsafe path; TypeError for misuse (the
 *   request key does not match the passport `cnf`, reserved headers set by the caller)
 * @example
 * const { headers } = await signRequest({ method: 'GET', url: 'https://orders.example/v1/orders/search',
 *   routeId: 'orders.search', passport, requestKey })
 */
export async function signRequest(options: SignRequestOptions): Promise<SignedRequest> {
  const target = parseRequestTarget(options.url);
  assertSafePath(target.path);
  const passport = decodePassportUnverified(options.passport);
  const claims = passport.payload;
  const cnf = claims.cnf as Record<string, unknown> | undefined;
  if (
    typeof claims.jti !== 'string' ||
    typeof claims.iat !== 'number' ||
    typeof cnf?.key_binding !== 'string' ||
    typeof cnf.public_key_b64url !== 'string'
  ) {
    throw new TypeError('passport lacks jti, iat or cnf');
  }
  if (!timingSafeEqualString(cnf.public_key_b64url, options.requestKey.publicKey.x)) {
    throw new TypeError('requestKey does not match the passport cnf key');
  }
  const audience = Array.isArray(claims.aud) ? claims.aud[0] : claims.aud;
  if (typeof audience !== 'string') throw new TypeError('passport lacks aud');

  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'authorization' || lower.startsWith('x-trustplane-')) {
      throw new TypeError(`header ${name} is reserved and set by signRequest`);
    }
    headers[lower] = value;
  }
  const body = typeof options.body === 'string' ? utf8(options.body) : (options.body ?? new Uint8Array(0));
  const nonce = options.nonce ?? encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
  headers[WIRE_HEADERS.nonce] = nonce;
  const covered = ['x-trustplane-nonce', ...(options.coveredHeaders ?? [])];
  if (body.length > 0 || headers['content-type'] !== undefined) covered.push('content-type');
  const allowList = normalizeCoveredHeaders(covered);

  const digestHex = await bodySha256(body);
  const transcript = await buildTranscript({
    method: options.method.toUpperCase(),
    scheme: target.scheme,
    authority: target.authority,
    path: target.path,
    query: target.query,
    audience,
    routeId: options.routeId,
    contentEncoding: headers['content-encoding']?.trim().toLowerCase() ?? 'identity',
    coveredHeaders: allowList,
    headers,
    bodySha256: digestHex,
    passportJti: claims.jti,
    nonce,
    issuedAt: claims.iat,
    keyBinding: cnf.key_binding,
  });
  headers[WIRE_HEADERS.authorization] = `Bearer ${options.passport}`;
  headers[WIRE_HEADERS.proof] = await signProof(transcript.digest, options.requestKey);
  headers[WIRE_HEADERS.transcriptSha256] = transcript.sha256;
  headers[WIRE_HEADERS.bodySha256] = digestHex;
  headers[WIRE_HEADERS.coveredHeaders] = allowList.join(',');
  return { headers: { ...headers }, transcript, bodySha256: digestHex };
}
