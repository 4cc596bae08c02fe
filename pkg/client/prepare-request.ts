import { checkField } from './check-field.js';
import { checkCoveredHeaders, mergeHeaders, type ClientHeaders } from './client-headers.js';
import { rawQueryOf } from './client-query.js';
import { prepareOutgoingRequest, type OutgoingRequest } from './outgoing-request.js';
import { splitAbsoluteUrl } from './split-absolute-url.js';

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
