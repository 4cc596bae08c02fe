import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import type { LoadedPolicy, LoadedTrustMaterial } from '../../pkg/bundle/index.js';
import {
  Broker,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
  type BrokerOptions,
} from '../../pkg/broker/index.js';
import { sha256HexSync } from '../../pkg/internal/sha256.js';
import { normalizeQuery } from '../../pkg/proof/index.js';
import { verifyRequest, type Decision } from '../../pkg/verifier/index.js';
import { BROKER_ISSUER, ORIGIN, type World } from './fixture.js';

/*
 * Shared by the broker tests: the fixture's broker, broker-ipc-v1 requests built from the parts of
 * a real HTTP request, and what the verifier makes of what the broker minted for one of them.
 */

/** The system clock in epoch seconds (TLS checks certificate validity against it). */
export const realClock = (): number => Math.floor(Date.now() / 1000);

/** A broker with the fixture's issuer and key, minting for `identity` against the world's bundles. */
export function worldBroker(
  world: World,
  options: Omit<BrokerOptions, 'issuer' | 'issuerKey' | 'issuerKid' | 'material'> & {
    /** Trust material in force instead of the world's. */
    readonly trust?: LoadedTrustMaterial;
  },
): Broker {
  const { trust, ...rest } = options;
  return new Broker({
    issuer: BROKER_ISSUER,
    issuerKey: world.broker,
    issuerKid: 'broker-1',
    material: () => ({ trust: trust ?? world.trust, policy: world.policy }),
    ...rest,
  });
}

/** The parts of one HTTP request that its broker-ipc-v1 `http` description is computed from. */
export interface HttpSpec {
  readonly method: string;
  readonly path: string;
  readonly query?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | undefined;
  readonly routeId: string;
  readonly nonce: string;
}

/** The broker-ipc-v1 `http` description of a request, computed from its real parts. */
export function describeHttp(spec: HttpSpec): BrokerIpcRequest['http'] {
  const headers: Record<string, string> = { ...spec.headers, 'x-trustplane-nonce': spec.nonce };
  const allow = Object.keys(headers).sort();
  const normalized = normalizeQuery(spec.query ?? '');
  return {
    method: spec.method,
    scheme: 'https',
    authority: 'orders.example',
    path: spec.path,
    content_encoding: 'identity',
    query: {
      raw: spec.query ?? '',
      normalization: 'rfc3986-sort-keys-values',
      normalized,
      sha256: sha256HexSync(normalized),
    },
    headers: {
      allow_list: allow,
      selected: allow.map((name) => ({ name, value_sha256: sha256HexSync(headers[name]!.trim()) })),
    },
    audience: 'orders-api',
    route_id: spec.routeId,
    body_sha256: sha256HexSync(spec.body ?? ''),
    nonce: spec.nonce,
  };
}

/**
 * A broker-ipc-v1 request for `http`: the route policy's minimum key binding (attested_workload,
 * no software fallback) and no `ctx`, unless `overrides` say otherwise.
 */
export function ipcRequest(
  http: BrokerIpcRequest['http'],
  overrides: Partial<BrokerIpcRequest> = {},
): BrokerIpcRequest {
  return {
    request_id: `req-${crypto.randomUUID()}`,
    protocol: 'local-json-ipc',
    operation: 'issue_request_bound_passport',
    http,
    key_binding: {
      intent: 'route_policy_minimum',
      requested_key_binding: 'attested_workload',
      acceptable_key_bindings: ['attested_workload'],
      allow_software_fallback: false,
    },
    ...overrides,
  };
}

/** A POST route with a JSON body, of the `orders.refund` shape. */
export interface RefundRoute {
  readonly routeId: string;
  readonly path: string;
}

export const ORDERS_REFUND: RefundRoute = { routeId: 'orders.refund', path: '/v1/orders/o-7/refund' };
/** The body of a refund request unless told otherwise. */
export const REFUND_BODY = '{"amount":"12.00"}';

/**
 * A broker-ipc-v1 request for one POST with a JSON body on `route` (a fresh nonce), asking for the
 * `ctx` values given (by default a refund of at most 100.00).
 */
export function refundRequest(
  route: RefundRoute = ORDERS_REFUND,
  options: { readonly body?: string; readonly ctx?: Record<string, string> } = {},
): BrokerIpcRequest {
  const values = options.ctx ?? { purpose: 'refund', max_txn_value: '100.00' };
  return ipcRequest(
    describeHttp({
      method: 'POST',
      path: route.path,
      routeId: route.routeId,
      headers: { 'content-type': 'application/json' },
      body: options.body ?? REFUND_BODY,
      nonce: `nonce-${crypto.randomUUID()}`,
    }),
    {
      ctx: {
        selected_fields: Object.keys(values) as NonNullable<BrokerIpcRequest['ctx']>['selected_fields'],
        values,
      },
    },
  );
}

type Artifacts = Extract<BrokerIpcResponse, { accepted: true }>['artifacts'];

/** The headers a caller sends along with the passport and stamp the broker minted for `http`. */
export function mintedHeaders(artifacts: Artifacts, http: BrokerIpcRequest['http']): Record<string, string> {
  return {
    authorization: `Bearer ${artifacts.passport.value}`,
    'x-trustplane-proof': artifacts.stamp.value,
    'x-trustplane-transcript-sha256': artifacts.stamp.transcript_sha256,
    'x-trustplane-nonce': http.nonce,
    'x-trustplane-body-sha256': http.body_sha256,
    'x-trustplane-covered-headers': http.headers.allow_list.join(','),
  };
}

/**
 * What the verifier decides for the exact request (a JSON `body`) a broker answer was minted for,
 * against `bundles` at `bundles.clock` (default: the system clock); a denied answer throws.
 */
export function verifyMinted(
  request: BrokerIpcRequest,
  response: BrokerIpcResponse,
  bundles: {
    readonly trust: LoadedTrustMaterial;
    readonly policy: LoadedPolicy;
    readonly clock?: () => number;
  },
  body = REFUND_BODY,
): Promise<Decision> {
  if (!response.accepted) throw new Error(`denied: ${response.reason_code} ${response.error.message}`);
  const http = request.http;
  return verifyRequest(
    new Request(`${ORIGIN}${http.path}`, {
      method: http.method,
      headers: { 'content-type': 'application/json', ...mintedHeaders(response.artifacts, http) },
      body,
    }),
    { clock: realClock, ...bundles, replayStore: new MemoryReplayStore() },
  );
}
