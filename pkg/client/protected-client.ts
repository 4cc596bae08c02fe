import { WIRE_HEADERS } from '../proof/wire.js';
import { checkField } from './check-field.js';
import { checkCoveredHeaders, mergeHeaders, type ClientHeaders } from './client-headers.js';
import { rawQueryOf, type ClientQuery } from './client-query.js';
import { prepareOutgoingRequest, type OutgoingRequest } from './outgoing-request.js';
import type { PassportSource, RequestCredentials } from './passport-source.js';
import { clientPathProblem } from '../proof/sdk-path-safety.js';
import { splitAbsoluteUrl } from './split-absolute-url.js';

/** Options for {@link ProtectedClient}. */
export interface ProtectedClientOptions {
  /**
   * Where requests go: `http(s)://host[:port]` with an optional path prefix (`https://api.example/v1`);
   * no userinfo, query or fragment. One trailing `/` is ignored.
   */
  readonly baseUrl: string;
  /** The audience of the protected API (passport `aud`, transcript `audience`). */
  readonly audience: string;
  /** Where each request's passport and proof come from. */
  readonly passports: PassportSource;
  /** The `fetch` to use (default `globalThis.fetch`); tests inject one. */
  readonly fetch?: typeof fetch;
  /** Headers to cover beyond `x-trustplane-nonce` and `content-type` (the route's `covered_headers`). */
  readonly coveredHeaders?: readonly string[];
  /** Headers sent with every request (a request's own header of the same name wins). */
  readonly defaultHeaders?: ClientHeaders;
}

/** One request for {@link ProtectedClient.request}. */
export interface ProtectedRequestOptions {
  /** 1 to 16 letters, uppercased. */
  readonly method: string;
  /**
   * Path under the base URL's path prefix, starting with `/` (or '' for the prefix itself): the
   * path sent is prefix + path, exactly as given (see {@link clientPathProblem} for what is refused).
   */
  readonly path: string;
  /** The route id the verifier resolves for this request. */
  readonly routeId: string;
  /** The raw query, sent as is (a string, one leading `?` dropped) or `URLSearchParams` (its text). */
  readonly query?: ClientQuery;
  /** Request headers; reserved names (`Authorization`, `Host`, `X-TrustPlane-*`, …) are refused. */
  readonly headers?: ClientHeaders;
  /** The body; the exact bytes hashed are the bytes sent. Not allowed on GET and HEAD. */
  readonly body?: string | Uint8Array;
  readonly signal?: AbortSignal;
}

/** `init` of {@link ProtectedClient.fetch}. */
export type ProtectedFetchInit = Omit<ProtectedRequestOptions, 'path' | 'method'> & {
  /** Default `GET`. */
  readonly method?: string;
};

const PASSPORT_TEXT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const PROOF_TEXT = /^[A-Za-z0-9_-]{86}$/;
const HEX64 = /^[0-9a-f]{64}$/;

function checkCredentials(credentials: RequestCredentials): void {
  if (
    typeof credentials?.passport !== 'string' ||
    !PASSPORT_TEXT.test(credentials.passport) ||
    typeof credentials.proof !== 'string' ||
    !PROOF_TEXT.test(credentials.proof) ||
    typeof credentials.transcriptSha256 !== 'string' ||
    !HEX64.test(credentials.transcriptSha256)
  ) {
    throw new TypeError('the passport source returned malformed credentials');
  }
}

/**
 * A `fetch` wrapper that sends every request with a fresh request-bound passport and a
 * transcript-v1 proof of exactly that request.
 *
 * Everything is checked before anything is sent: the path (official-SDK rules plus the verifier's,
 * and never a sibling of the base path), the query, the method, reserved headers, the body. The
 * URL is built by concatenating the base URL, the path and `?query` (never through `new URL()`,
 * whose normalization would send a different path than the one signed). The body is copied once
 * and the hashed bytes are the bytes sent; a body without `Content-Type` is sent as
 * `application/octet-stream` (a `fetch` would otherwise add its own, uncovered). Redirects are
 * never followed (`redirect: 'manual'`): a 3xx response is returned to the caller, so the
 * passport never travels to another origin (in browsers the response is an opaque redirect).
 *
 * @example
 * const client = new ProtectedClient({ baseUrl: 'https://orders.example/v1', audience: 'orders-api',
 *   passports: selfIssuedPassports({ ... }) })
 * const res = await client.request({ method: 'GET', path: '/orders/search', routeId: 'orders.search',
 *   query: 'q=shoes&limit=10' })
 */
export class ProtectedClient {
  /** `scheme://authority` of the base URL (lowercase). */
  readonly origin: string;
  /** The base URL's path prefix ('' for none), without a trailing slash. */
  readonly basePath: string;
  readonly audience: string;
  readonly #scheme: 'http' | 'https';
  readonly #authority: string;
  readonly #passports: PassportSource;
  readonly #fetch: typeof fetch;
  readonly #covered: readonly string[];
  readonly #defaults: Readonly<Record<string, string>>;

  /**
   * @throws TypeError for a bad base URL (not http(s), userinfo, query, fragment, unsafe path),
   *   audience, passport source (or one fixed to another audience), covered header or default header
   */
  constructor(options: ProtectedClientOptions) {
    const base = splitAbsoluteUrl(options.baseUrl, 'baseUrl');
    if (base.query !== undefined) throw new TypeError('baseUrl must not have a query');
    const basePath = base.path.endsWith('/') ? base.path.slice(0, -1) : base.path;
    if (basePath !== '') {
      const problem = clientPathProblem(basePath);
      if (problem !== undefined) throw new TypeError(`baseUrl path is unsafe: ${problem}`);
    }
    this.#scheme = base.scheme;
    this.#authority = base.authority;
    this.origin = `${base.scheme}://${base.authority}`;
    this.basePath = basePath;
    this.audience = checkField('audience', options.audience, 2048);
    const passports = options.passports;
    if (typeof passports?.authorize !== 'function') {
      throw new TypeError('passports must be a PassportSource (selfIssuedPassports, brokerPassports)');
    }
    if (passports.audience !== undefined && passports.audience !== this.audience) {
      throw new TypeError('the passport source mints for another audience than the client');
    }
    this.#passports = passports;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('no fetch: pass options.fetch');
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#covered = checkCoveredHeaders(options.coveredHeaders ?? []);
    const defaults = Object.create(null) as Record<string, string>;
    mergeHeaders(defaults, options.defaultHeaders);
    this.#defaults = Object.freeze(defaults);
  }

  /**
   * Check and freeze one request exactly as {@link request} would send it, without credentials and
   * without sending it (dry runs, `describeRequestForBroker`).
   * @throws TrustplaneError `unsafe_request_path`, `malformed_request` (query); TypeError for misuse
   * @example
   * const prepared = await client.prepare({ method: 'GET', path: '/orders/search', routeId: 'orders.search' })
   * prepared.url // 'https://orders.example/v1/orders/search'
   */
  async prepare(options: ProtectedRequestOptions): Promise<OutgoingRequest> {
    if (typeof options.path !== 'string') throw new TypeError('path must be a string');
    const headers = Object.assign(Object.create(null) as Record<string, string>, this.#defaults);
    mergeHeaders(headers, options.headers);
    return prepareOutgoingRequest({
      scheme: this.#scheme,
      authority: this.#authority,
      basePath: this.basePath,
      path: `${this.basePath}${options.path}`,
      query: rawQueryOf(options.query),
      method: options.method,
      headers,
      body: options.body,
      audience: this.audience,
      routeId: checkField('routeId', options.routeId, 256),
      coveredHeaders: this.#covered,
    });
  }

  /**
   * Send one request with a fresh passport and proof bound to it.
   * @returns the response as received; a 3xx is returned, never followed
   * @throws TrustplaneError `unsafe_request_path` or `malformed_request` and TypeError for misuse,
   *   all before any network call; whatever the passport source throws (e.g. `BrokerDeniedError`),
   *   also before any network call; the `fetch` errors (network failure, abort)
   * @example
   * const res = await client.request({ method: 'POST', path: '/orders', routeId: 'orders.create',
   *   headers: { 'content-type': 'application/json' }, body: JSON.stringify(order) })
   */
  async request(options: ProtectedRequestOptions): Promise<Response> {
    options.signal?.throwIfAborted();
    const prepared = await this.prepare(options);
    const credentials = await this.#passports.authorize(prepared);
    checkCredentials(credentials);
    options.signal?.throwIfAborted();
    const headers = new Headers();
    for (const [name, value] of Object.entries(prepared.headers)) headers.set(name, value);
    headers.set(WIRE_HEADERS.authorization, `Bearer ${credentials.passport}`);
    headers.set(WIRE_HEADERS.proof, credentials.proof);
    headers.set(WIRE_HEADERS.transcriptSha256, credentials.transcriptSha256);
    headers.set(WIRE_HEADERS.bodySha256, prepared.bodySha256);
    headers.set(WIRE_HEADERS.coveredHeaders, prepared.coveredHeaders.join(','));
    const init: RequestInit = {
      method: prepared.method,
      headers,
      redirect: 'manual',
      ...(prepared.body.length > 0 ? { body: prepared.body as Uint8Array<ArrayBuffer> } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    };
    return this.#fetch(prepared.url, init);
  }

  /**
   * `fetch`-style convenience for {@link request}: the method defaults to `GET`.
   * @example
   * const res = await client.fetch('/orders/ord_1', { routeId: 'orders.get' })
   */
  fetch(path: string, init: ProtectedFetchInit): Promise<Response> {
    return this.request({ ...init, path, method: init.method ?? 'GET' });
  }
}
