import { TrustplaneError } from '../authcore/errors.js';
import { concatBytes } from '../internal/bytes.js';
import { sha256Hex } from '../internal/sha256.js';
import { parseRequestTarget } from '../proof/request-target.js';
import { headerNameProblem } from '../proof/header-safety.js';
import type { HeaderSource } from '../proof/header-source.js';
export { getHeader } from '../proof/header-source.js';

/** Default largest request body the verifier reads to bind, bytes (1 MiB). */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/**
 * A request as an enforcement point saw it, with the body already digested. Enforcement points
 * that see the raw request target (Node middleware, the adapter) build this directly so that path
 * safety applies to the path exactly as sent.
 */
export interface NormalizedRequest {
  /** Method as sent (case-sensitive). */
  readonly method: string;
  /** Scheme the caller used (`https` behind TLS termination: the enforcement point decides). */
  readonly scheme: string;
  /** Host[:port] the caller addressed, lowercase. */
  readonly authority: string;
  /** The raw path as sent, without query. */
  readonly path: string;
  /** The raw query as sent, without `?` ('' when none). */
  readonly query: string;
  /** Header lookup by lowercase name. */
  readonly headers: HeaderSource;
  /** Lowercase hex SHA-256 of the exact body bytes. */
  readonly bodySha256: string;
  /** Body length in bytes. */
  readonly bodyLength: number;
  /**
   * Read and digest the body only once the request is worth it: when set, the pipeline calls it
   * after the passport, route policy and freshness checks passed (and never for a request refused
   * earlier), and its result replaces `bodySha256` and `bodyLength`. A failure is a refusal
   * (`body_too_large`, `malformed_request`, `overloaded`, ...). Node enforcement points use it so
   * that a request without valid credentials never costs a body buffer.
   */
  readonly readBody?: () => Promise<{
    readonly sha256: string;
    readonly length: number;
    /** The exact bytes digested (needed by routes with `mcp`; the Node points pass them). */
    readonly bytes?: Uint8Array;
  }>;
  /**
   * The exact body bytes, when the point has them and no `readBody` (routes with `mcp` decide on
   * them; a point that passes neither cannot serve an MCP route: `internal_error`).
   */
  readonly body?: Uint8Array;
  /**
   * True when the enforcement point cannot see the body (forward-auth): `bodySha256` is then the
   * caller's claimed `X-TrustPlane-Body-SHA256`, and the request is denied `unverifiable_body`
   * unless the route sets `allow_unverified_body`.
   */
  readonly bodyUnverified?: boolean;
}

/**
 * Normalize a Web `Request`: reads (a clone of) the body up to `maxBodyBytes` and digests it.
 * The WHATWG URL parser has already resolved dot segments in `request.url`; enforcement points
 * that can see the raw target should build a {@link NormalizedRequest} themselves.
 * @throws TrustplaneError `body_too_large`, `malformed_request`
 */
export async function normalizeWebRequest(
  request: Request,
  options: { readonly maxBodyBytes?: number } = {},
): Promise<NormalizedRequest> {
  const max = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  let target;
  try {
    target = parseRequestTarget(request.url);
  } catch {
    throw new TrustplaneError('malformed_request', 'request URL is not absolute http(s)');
  }
  let unsafeName: string | undefined;
  request.headers.forEach((_value, name) => {
    unsafeName ??= headerNameProblem(name);
  });
  if (unsafeName !== undefined) {
    throw new TrustplaneError('unsafe_request_header', `unsafe request header: ${unsafeName}`);
  }
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > max)
    throw new TrustplaneError('body_too_large', 'request body too large');
  const body = await webBodyBytes(request, max);
  return {
    method: request.method,
    scheme: target.scheme,
    authority: target.authority,
    path: target.path,
    query: target.query,
    headers: request.headers,
    bodySha256: await sha256Hex(body),
    bodyLength: body.length,
  };
}

/**
 * The exact bytes of a Web request's body, read from a clone (the enforcement point keeps the
 * original stream for the handler), at most `max` of them.
 * @throws TrustplaneError `body_too_large` past `max`
 */
export async function webBodyBytes(request: Request, max: number): Promise<Uint8Array> {
  if (request.body === null) return new Uint8Array(0);
  const reader = request.clone().body!.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      // Cancelling a tee'd branch settles only when the other branch is cancelled too, so the
      // cancel is not awaited; the enforcement point owns the original stream.
      reader.cancel().catch(() => undefined);
      throw new TrustplaneError('body_too_large', 'request body too large');
    }
    chunks.push(value);
  }
  return concatBytes(...chunks);
}
