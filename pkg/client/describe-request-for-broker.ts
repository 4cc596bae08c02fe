import type { BrokerIpcRequest } from '../proof/broker-ipc-v1.js';
import { sha256HexSync } from '../internal/sha256.js';
import { normalizeQuery } from '../proof/normalize-query.js';
import { QUERY_NORMALIZATION } from '../proof/wire.js';
import type { OutgoingRequest } from './outgoing-request.js';

/** The broker-ipc-v1 `http` member: the request a broker binds a passport to, by digests. */
export type BrokerHttpDescription = BrokerIpcRequest['http'];

/**
 * Describe the exact request for a broker (broker-ipc-v1 `http`): method, scheme, authority, raw
 * path, content encoding, the raw and normalized query with the normalized query's digest, the
 * covered-header allow list with the digests of the trimmed values of those present, the audience,
 * route id, body digest and nonce. Header values and the body never leave the caller, only digests.
 *
 * @param request the prepared request (from a {@link ProtectedClient} or {@link prepareRequest})
 * @returns the `http` description, in the shape of the broker-ipc-v1 vectors
 * @throws TrustplaneError `malformed_request` for a query with bad percent-encoding
 * @example
 * const http = describeRequestForBroker(await prepareRequest({ method: 'GET',
 *   url: 'https://orders.example/v1/orders/search?q=a', audience: 'orders-api', routeId: 'orders.search' }))
 * http.headers.allow_list // ['x-trustplane-nonce']
 */
export function describeRequestForBroker(request: OutgoingRequest): BrokerHttpDescription {
  const normalized = normalizeQuery(request.query);
  const selected: { name: string; value_sha256: string }[] = [];
  for (const name of request.coveredHeaders) {
    if (!Object.hasOwn(request.headers, name)) continue;
    selected.push({ name, value_sha256: sha256HexSync(request.headers[name]!.trim()) });
  }
  return {
    method: request.method,
    scheme: request.scheme,
    authority: request.authority,
    path: request.path,
    content_encoding: request.contentEncoding,
    query: {
      raw: request.query,
      normalization: QUERY_NORMALIZATION,
      normalized,
      sha256: sha256HexSync(normalized),
    },
    headers: { allow_list: [...request.coveredHeaders], selected },
    audience: request.audience,
    route_id: request.routeId,
    body_sha256: request.bodySha256,
    nonce: request.nonce,
  };
}
