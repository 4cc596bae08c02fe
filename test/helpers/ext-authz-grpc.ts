import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import path from 'node:path';

/*
 * Test helper: the client side of Envoy's ext_authz gRPC call, over the repository's vendored
 * official protos (protos/envoy-ext-authz, protos/grpc-health), and CheckRequests shaped the way
 * Envoy's ext_authz HTTP filter builds them (source/extensions/filters/common/ext_authz/
 * check_request_utils.cc): method, path with query, host and scheme from the pseudo-headers, every
 * request header lowercased in `headers` (pseudo-headers included, repeated ones merged with ",")
 * or, with `encode_raw_headers: true`, one entry per line in `header_map`; with
 * `with_request_body` + `pack_as_bytes` the body in `raw_body` and `x-envoy-auth-partial-body`
 * telling whether it was cut at `max_request_bytes`.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');

const definition = protoLoader.loadSync(
  ['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto'],
  {
    includeDirs: [path.join(ROOT, 'protos/envoy-ext-authz'), path.join(ROOT, 'protos/grpc-health')],
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: true,
    oneofs: true,
    bytes: Buffer,
  },
);

/** The HttpStatus enum of the vendored `envoy/type/v3/http_status.proto` (name → code). */
export function envoyHttpStatusCodes(): Set<number> {
  const type = definition['envoy.type.v3.StatusCode'] as unknown as {
    type: { value: { number: number }[] };
  };
  return new Set(type.type.value.map((v) => v.number));
}

interface HeaderValueOption {
  header: { key: string; value: string; raw_value: Buffer };
  append: { value: boolean } | null;
  append_action: number;
  keep_empty_value: boolean;
}

/** The CheckResponse fields the tests read (proto-loader, `keepCase`, defaults on). */
export interface CheckResponse {
  status: { code: number; message: string } | null;
  http_response?: 'denied_response' | 'ok_response' | 'error_response';
  denied_response?: { status: { code: number }; headers: HeaderValueOption[]; body: string };
  ok_response?: { headers: HeaderValueOption[]; headers_to_remove: string[] };
  error_response?: unknown;
}

/** One original request, as the client sent it to Envoy. */
export interface EnvoyRequest {
  readonly method: string;
  /** Path and query, exactly as sent. */
  readonly target: string;
  /** Header lines in order (lowercase names); repeated names stay separate lines. */
  readonly headers: readonly (readonly [string, string])[];
  /** `:authority` (default orders.example). */
  readonly authority?: string;
  /** The body Envoy buffered (with_request_body); absent: none sent to the check. */
  readonly body?: string | Buffer;
  /** Envoy cut the body at max_request_bytes (allow_partial_message: true). */
  readonly partial?: boolean;
  /** `encode_raw_headers: true`: header_map instead of the merged headers map. */
  readonly rawHeaders?: boolean;
  /** Pack the body as the `body` string (pack_as_bytes: false) instead of raw_body. */
  readonly bodyAsString?: boolean;
}

/** Build the CheckRequest Envoy sends for `req`. */
export function envoyCheckRequest(req: EnvoyRequest): Record<string, unknown> {
  const authority = req.authority ?? 'orders.example';
  const lines: [string, string][] = [
    [':authority', authority],
    [':path', req.target],
    [':method', req.method],
    [':scheme', 'https'],
    ...req.headers.map(([k, v]) => [k.toLowerCase(), v] as [string, string]),
    ['x-forwarded-proto', 'https'],
  ];
  if (!req.headers.some(([k]) => k.toLowerCase() === 'x-request-id')) {
    lines.push(['x-request-id', 'envoy-6b0d3c1e-0000-4000-8000-000000000001']);
  }
  const body = req.body === undefined ? undefined : Buffer.from(req.body);
  if (body !== undefined) {
    lines.push(['x-envoy-auth-partial-body', req.partial === true ? 'true' : 'false']);
  }
  const http: Record<string, unknown> = {
    id: '1234567890',
    method: req.method,
    path: req.target,
    host: authority,
    scheme: 'https',
    protocol: 'HTTP/1.1',
    size: body === undefined ? '0' : String(body.length),
  };
  if (req.rawHeaders === true) {
    // Header bytes as on the wire (Node writes string header values as latin1).
    http.header_map = { headers: lines.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) };
  } else {
    const merged: Record<string, string> = {};
    for (const [k, v] of lines) merged[k] = merged[k] === undefined ? v : `${merged[k]},${v}`;
    http.headers = merged;
  }
  if (body !== undefined) {
    if (req.bodyAsString === true) http.body = body.toString('utf8');
    else http.raw_body = body;
  }
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.0.0.7', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '10.0.0.2', port_value: 8443 } } },
      request: { time: { seconds: '1700000000', nanos: 0 }, http },
    },
  };
}

type Unary = (
  req: unknown,
  options: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => void;

/** A gRPC client of the adapter's ext_authz listener (Authorization and Health). */
export class ExtAuthzClient {
  readonly #authz: grpc.Client;
  readonly #health: grpc.Client;

  constructor(address: string) {
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } };
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const creds = grpc.credentials.createInsecure();
    this.#authz = new pkg.envoy.service.auth.v3.Authorization(address, creds);
    this.#health = new pkg.grpc.health.v1.Health(address, creds);
  }

  /** Call Authorization/Check (a 10 s deadline). */
  check(request: Record<string, unknown>): Promise<CheckResponse> {
    return this.#call(this.#authz, 'Check', request) as Promise<CheckResponse>;
  }

  /** Call Health/Check; resolves the serving status name, or rejects with the gRPC error. */
  async health(service = ''): Promise<string> {
    const res = (await this.#call(this.#health, 'Check', { service })) as { status: number };
    return ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'][res.status] ?? String(res.status);
  }

  #call(client: grpc.Client, method: string, request: unknown): Promise<unknown> {
    const fn = (client as unknown as Record<string, Unary>)[method]!.bind(client);
    return new Promise((resolve, reject) => {
      fn(request, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  close(): void {
    this.#authz.close();
    this.#health.close();
  }
}

/** A request header map as Envoy holds it: lowercase name → values, in order. */
export type HeaderLines = Map<string, string[]>;

/** Header lines as a map (lowercase names). */
export function headerLines(lines: readonly (readonly [string, string])[]): HeaderLines {
  const m: HeaderLines = new Map();
  for (const [k, v] of lines) m.set(k.toLowerCase(), [...(m.get(k.toLowerCase()) ?? []), v]);
  return m;
}

/**
 * What the upstream receives after Envoy applies an OkHttpResponse to the request headers, in
 * Envoy's order (source/extensions/filters/http/ext_authz/ext_authz.cc, onComplete, CheckStatus::OK):
 * first `headers` (an `append` of false, or `OVERWRITE_IF_EXISTS_OR_ADD`, replaces every line of
 * that name; `APPEND_IF_EXISTS_OR_ADD` adds one; `ADD_IF_ABSENT` adds only when there is none),
 * THEN `headers_to_remove`.
 */
export function applyOkResponse(
  before: HeaderLines,
  ok: NonNullable<CheckResponse['ok_response']>,
): HeaderLines {
  const after: HeaderLines = new Map([...before].map(([k, v]) => [k, [...v]]));
  for (const h of ok.headers) {
    const key = h.header.key.toLowerCase();
    const action = h.append !== null ? (h.append.value ? 0 : 2) : h.append_action;
    const prior = after.get(key);
    if (action === 2 || (action === 3 && prior !== undefined)) after.set(key, [h.header.value]);
    else if (action === 0) after.set(key, [...(prior ?? []), h.header.value]);
    else if (action === 1 && prior === undefined) after.set(key, [h.header.value]);
  }
  for (const name of ok.headers_to_remove) after.delete(name.toLowerCase());
  return after;
}

/** The headers of a DeniedHttpResponse, by lowercase name. */
export function deniedHeaders(res: CheckResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of res.denied_response?.headers ?? []) out[h.header.key.toLowerCase()] = h.header.value;
  return out;
}
