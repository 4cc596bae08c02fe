import type { ProtectedClient } from './protected-client.js';
import { splitAbsoluteUrl } from './split-absolute-url.js';

/** Options for {@link createSigningFetch}. */
export interface SigningFetchOptions {
  /** The client that signs and sends (its base URL, audience and passport source). */
  readonly client: ProtectedClient;
  /**
   * The route id of each request the caller makes: one id for every request (an MCP endpoint is
   * one `POST` route), or a function of the method and the path under the client's base path
   * (e.g. `POST /mcp` and `GET /mcp` as two routes).
   */
  readonly routeId: string | ((request: { readonly method: string; readonly path: string }) => string);
}

/** A `fetch` that signs every request: what {@link createSigningFetch} returns. */
export type SigningFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Headers the wrapped caller may set but that the signing client writes itself. */
const DROPPED = new Set(['content-length', 'host', 'connection', 'keep-alive', 'transfer-encoding']);

/**
 * A `fetch` for callers that only know `fetch`: every request goes through `client`, so it carries
 * a fresh passport with its own `jti` and a transcript-v1 proof of exactly that request (method,
 * path, query, covered headers, body digest). The official MCP TypeScript SDK takes it as its
 * Streamable HTTP transport's `fetch`, so no bearer secret is ever handed to the agent:
 * `new StreamableHTTPClientTransport(url, { fetch: createSigningFetch({ client, routeId }) })`.
 *
 * The URL must be under the client's origin and base path (a request anywhere else is refused, so
 * credentials never go to another origin). The body must be a string or bytes (what the MCP SDK
 * sends); headers such as `Accept`, `Content-Type` and `Mcp-Session-Id` are passed on, reserved
 * ones (`Authorization`, `X-TrustPlane-*`) are refused. Redirects are never followed.
 * @param options the signing client and the route id(s)
 * @returns the `fetch`
 * @throws TypeError at construction for misuse; the returned fetch rejects with TypeError for a
 *   URL outside the base, an unsupported body or a reserved header, before anything is sent
 * @example
 * const fetch = createSigningFetch({ client, routeId: 'mcp' })
 * const transport = new StreamableHTTPClientTransport(new URL('https://tools.example/mcp'), { fetch })
 */
export function createSigningFetch(options: SigningFetchOptions): SigningFetch {
  const { client, routeId } = options;
  if (typeof client?.request !== 'function') throw new TypeError('client must be a ProtectedClient');
  if (typeof routeId !== 'function' && (typeof routeId !== 'string' || routeId === '')) {
    throw new TypeError('routeId must be a non-empty string or a function');
  }
  const prefix = `${client.origin}${client.basePath}`;
  return async (input, init = {}) => {
    let url: string;
    let method = init.method;
    let headers = new Headers(init.headers);
    let body: BodyInit | null | undefined = init.body;
    let signal = init.signal ?? undefined;
    if (input instanceof Request) {
      url = input.url;
      method ??= input.method;
      if (init.headers === undefined) headers = new Headers(input.headers);
      if (body === undefined && input.body !== null) body = new Uint8Array(await input.arrayBuffer());
      signal ??= input.signal;
    } else {
      url = input instanceof URL ? input.href : input;
    }
    const split = splitAbsoluteUrl(url, 'url');
    if (`${split.scheme}://${split.authority}` !== client.origin) {
      throw new TypeError('the request URL is not on the signing client origin');
    }
    const full = `${split.scheme}://${split.authority}${split.path}`;
    if (full !== prefix && !full.startsWith(`${prefix}/`)) {
      throw new TypeError('the request URL is not under the signing client base path');
    }
    const path = full.slice(prefix.length);
    const verb = (method ?? 'GET').toUpperCase();
    let bytes: string | Uint8Array | undefined;
    if (body === undefined || body === null) bytes = undefined;
    else if (typeof body === 'string' || body instanceof Uint8Array) bytes = body;
    else if (body instanceof ArrayBuffer) bytes = new Uint8Array(body);
    else throw new TypeError('the signing fetch sends string or byte bodies only');
    const sent: Record<string, string> = {};
    headers.forEach((value, name) => {
      if (!DROPPED.has(name)) sent[name] = value;
    });
    return client.request({
      method: verb,
      path,
      routeId: typeof routeId === 'string' ? routeId : routeId({ method: verb, path }),
      headers: sent,
      ...(split.query !== undefined ? { query: split.query } : {}),
      ...(bytes !== undefined ? { body: bytes } : {}),
      ...(signal !== undefined && signal !== null ? { signal } : {}),
    });
  };
}
