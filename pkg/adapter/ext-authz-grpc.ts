import { hash } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as GrpcJs from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import { TrustplaneError } from '../authcore/errors.js';
import { requireOptional } from '../internal/node/require-optional.js';
import { auditRequestInfo, assertSafeHeaderLines, originFormTarget } from '../internal/node-http/index.js';
import type { NodeRequestView } from '../internal/node-http/index.js';
import { WIRE_HEADERS } from '../proof/wire.js';
import { denyAnswer, type DenyAnswer, type Enforcement, type NormalizedRequest } from '../verifier/index.js';
import { requestIdFrom, type EnforcementRuntime } from './enforcement-runtime.js';
import { gatewayBody, gatewayGrant, originalQueryRefusal, type BodySignal } from './gateway-check.js';
import type { Readiness } from './readiness.js';

/** Where the ext_authz gRPC listener binds by default (`extAuthzGrpcListen`). */
export const DEFAULT_EXT_AUTHZ_GRPC_LISTEN = '127.0.0.1:9191';
/** Most request header bytes (names and values, pseudo-headers included) a CheckRequest may carry. */
export const EXT_AUTHZ_MAX_HEADER_BYTES = 64 * 1024;
/** Most request header lines a CheckRequest may carry (Envoy's own default limit is 100). */
export const EXT_AUTHZ_MAX_HEADERS = 200;
/** The service name the health service answers for, besides the server as a whole (''). */
export const EXT_AUTHZ_SERVICE = 'envoy.service.auth.v3.Authorization';

// gRPC status codes (google.rpc.Code) the Check answers carry.
const GRPC_OK = 0;
const GRPC_PERMISSION_DENIED = 7;
const GRPC_UNAUTHENTICATED = 16;
const GRPC_NOT_FOUND = 5;
// envoy.config.core.v3.HeaderValueOption.HeaderAppendAction
const OVERWRITE_IF_EXISTS_OR_ADD = 2;
// grpc.health.v1.HealthCheckResponse.ServingStatus
const SERVING = 1;
const NOT_SERVING = 2;

interface GrpcModules {
  readonly grpc: typeof GrpcJs;
  readonly loader: typeof ProtoLoader;
}

/** What needs the optional peers, for the one-line `dependency_missing` message. */
const FEATURE = 'the Envoy ext_authz gRPC listener';

/**
 * @grpc/grpc-js and @grpc/proto-loader, optional peer dependencies loaded on first use (a Hono-only
 * install has neither).
 * @throws DependencyMissingError (`dependency_missing`) naming the package that is not installed
 */
function grpcModules(): GrpcModules {
  return {
    grpc: requireOptional<typeof GrpcJs>('@grpc/grpc-js', FEATURE),
    loader: requireOptional<typeof ProtoLoader>('@grpc/proto-loader', FEATURE),
  };
}

/**
 * The vendored protos (`protos/` at the package root, shipped in the package): found by walking up
 * from this module, which sits at `pkg/adapter/` in the repository and `dist/pkg/adapter/` installed.
 */
function protoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i += 1) {
    const candidate = path.join(dir, 'protos');
    if (existsSync(path.join(candidate, 'envoy-ext-authz/envoy/service/auth/v3/external_auth.proto'))) {
      return candidate;
    }
    dir = path.dirname(dir);
  }
  throw new Error('the vendored protos (protos/envoy-ext-authz) are missing from the package');
}

/** One `envoy.config.core.v3.HeaderValueOption` that replaces every line of the name. */
interface HeaderValueOption {
  readonly header: { readonly key: string; readonly value: string };
  readonly append: { readonly value: boolean };
  readonly append_action: number;
}

/** The `envoy.service.auth.v3.CheckResponse` this server answers with. */
export interface ExtAuthzCheckResponse {
  readonly status: { readonly code: number; readonly message: string };
  readonly denied_response?: {
    readonly status: { readonly code: number };
    readonly headers: readonly HeaderValueOption[];
    readonly body: string;
  };
  readonly ok_response?: {
    readonly headers: readonly HeaderValueOption[];
    readonly headers_to_remove: readonly string[];
  };
}

/**
 * Set a header, replacing any line of that name: `append: false` for Envoy versions that read the
 * deprecated field (it wins when present), `OVERWRITE_IF_EXISTS_OR_ADD` for the rest. Left unset,
 * a newer Envoy would default to APPEND_IF_EXISTS_OR_ADD and keep a caller-sent copy.
 */
function overwrite(key: string, value: string): HeaderValueOption {
  return { header: { key, value }, append: { value: false }, append_action: OVERWRITE_IF_EXISTS_OR_ADD };
}

/** The kernel's deny answer as a DeniedHttpResponse (status passed through by Envoy). */
function denied(answer: DenyAnswer, requestId: string): ExtAuthzCheckResponse {
  const reason = answer.headers['x-trustplane-reason'] ?? 'internal_error';
  return {
    // Envoy denies on any code but OK (with denied_response); UNAUTHENTICATED marks the 401s.
    status: { code: answer.status === 401 ? GRPC_UNAUTHENTICATED : GRPC_PERMISSION_DENIED, message: reason },
    denied_response: {
      status: { code: answer.status },
      headers: [
        ...Object.entries(answer.headers).map(([k, v]) => overwrite(k, v)),
        overwrite('x-request-id', requestId),
      ],
      body: answer.body,
    },
  };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const bytes = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : Buffer.alloc(0));

/** The original request as Envoy describes it in `attributes.request.http`. */
interface CheckedRequest {
  readonly view: NodeRequestView;
  /** Header lines, pseudo-headers removed, names lowercase. */
  readonly lines: readonly (readonly [string, string])[];
  /** The body Envoy passed (`raw_body`, else `body`), possibly empty. */
  readonly body: Buffer;
  readonly clientAddress: string | undefined;
}

/**
 * Read `attributes.request.http` of a CheckRequest: the lines of `header_map` (Envoy
 * `encode_raw_headers: true`: one entry per line, so repeated lines stay visible) or of the merged
 * `headers` map, bounded in count and bytes before anything else is looked at.
 * @throws TrustplaneError `malformed_request`, `request_headers_too_large`
 */
function readCheck(call: unknown): CheckedRequest {
  const attributes = isObject(call) ? call.attributes : undefined;
  const request = isObject(attributes) ? attributes.request : undefined;
  const http = isObject(request) ? request.http : undefined;
  if (!isObject(http)) {
    throw new TrustplaneError('malformed_request', 'the check request has no attributes.request.http');
  }
  const all: [string, string][] = [];
  const map = http.header_map;
  const raw = isObject(map) && Array.isArray(map.headers) ? (map.headers as unknown[]) : [];
  if (raw.length > 0) {
    for (const h of raw) {
      if (!isObject(h)) continue;
      const value = bytes(h.raw_value);
      // The raw bytes, read as Node's HTTP parser reads header values (latin1), so that the same line
      // verifies the same way here and at the Node points.
      all.push([text(h.key).toLowerCase(), value.length > 0 ? value.toString('latin1') : text(h.value)]);
    }
  } else if (isObject(http.headers)) {
    for (const [k, v] of Object.entries(http.headers)) all.push([k.toLowerCase(), text(v)]);
  }
  let size = 0;
  for (const [k, v] of all) size += k.length + v.length;
  if (all.length > EXT_AUTHZ_MAX_HEADERS || size > EXT_AUTHZ_MAX_HEADER_BYTES) {
    throw new TrustplaneError('request_headers_too_large', 'too many or too large request headers');
  }
  const method = text(http.method);
  const target = text(http.path);
  if (method === '' || target === '') {
    throw new TrustplaneError('malformed_request', 'the check request has no method or path');
  }
  const scheme = text(http.scheme).toLowerCase();
  const source = isObject(attributes) ? attributes.source : undefined;
  const address = isObject(source) ? source.address : undefined;
  const socket = isObject(address) ? address.socket_address : undefined;
  const client = isObject(socket) ? text(socket.address) : '';
  const rawBody = bytes(http.raw_body);
  return {
    view: {
      method,
      target,
      authority: text(http.host).toLowerCase(),
      scheme: scheme === 'https' || scheme === 'http' ? scheme : 'http',
    },
    // Method, path and authority are read from their fields; pseudo-headers are not headers.
    lines: all.filter(([k]) => !k.startsWith(':')),
    body: rawBody.length > 0 ? rawBody : Buffer.from(text(http.body), 'utf8'),
    clientAddress: client !== '' ? client : undefined,
  };
}

/** One header view of the lines: repeated lines joined with ", " (`Cookie` with "; "), as Node's. */
function headerSource(lines: readonly (readonly [string, string])[]): (name: string) => string | undefined {
  const byName = new Map<string, string[]>();
  for (const [k, v] of lines) {
    const prior = byName.get(k);
    if (prior === undefined) byName.set(k, [v]);
    else prior.push(v);
  }
  return (name) => {
    const values = byName.get(name);
    if (values === undefined) return undefined;
    return values.length === 1 ? values[0] : values.join(name === 'cookie' ? '; ' : ', ');
  };
}

/**
 * What Envoy says about a body it did not pass whole: `x-envoy-auth-partial-body: true` (cut at
 * `max_request_bytes`) means there is one; otherwise the original request's framing headers do.
 */
function bodySignal(header: (name: string) => string | undefined): BodySignal {
  if (header('x-envoy-auth-partial-body')?.trim().toLowerCase() === 'true') return 'present';
  if (header('transfer-encoding') !== undefined) return 'present';
  const length = header('content-length')?.trim();
  if (length === undefined || length === '') return 'unknown';
  return length === '0' ? 'none' : 'present';
}

/**
 * Decide one CheckRequest through the kernel and build the CheckResponse: the request as Envoy
 * describes it (method, path with query, host, headers, the body Envoy passed), bound like
 * forward-auth binds ({@link gatewayBody}); an allow sets the identity headers (replacing any the
 * caller sent) and removes the passport's `Authorization` unless `forwardAuthorization`; a dry-run
 * pass removes every identity header; a deny is the kernel's answer as a DeniedHttpResponse.
 * Never throws: an unexpected failure is a deny (`internal_error`), never an RPC error that
 * `failure_mode_allow` could turn into an allow.
 * @param rt the adapter's enforcement runtime (its kernel, config, log)
 * @param call the CheckRequest as decoded by proto-loader
 * @returns the CheckResponse
 */
export async function checkExtAuthzRequest(
  rt: EnforcementRuntime,
  call: unknown,
): Promise<ExtAuthzCheckResponse> {
  const startedMs = performance.now();
  let requestId = requestIdFrom(undefined);
  try {
    let checked: CheckedRequest | undefined;
    let refusal: TrustplaneError | undefined;
    try {
      checked = readCheck(call);
      originFormTarget(checked.view.target);
      assertSafeHeaderLines(checked.lines.flat());
    } catch (e) {
      refusal =
        e instanceof TrustplaneError ? e : new TrustplaneError('malformed_request', 'bad check request');
    }
    const header = headerSource(checked?.lines ?? []);
    requestId = requestIdFrom(header('x-request-id'));
    const view = checked?.view ?? { method: 'GET', target: '/', authority: '', scheme: 'http' };
    refusal ??= originalQueryRefusal(view.target);
    const body = checked?.body ?? Buffer.alloc(0);
    if (refusal === undefined && body.length > rt.kernel.maxBodyBytes) {
      refusal = new TrustplaneError('body_too_large', 'request body too large');
    }
    let verified = true;
    let request: NormalizedRequest | TrustplaneError;
    if (refusal !== undefined) request = refusal;
    else {
      const { path: reqPath, query } = originFormTarget(view.target);
      const partial = header('x-envoy-auth-partial-body')?.trim().toLowerCase();
      const read: NormalizedRequest = {
        method: view.method,
        scheme: view.scheme,
        authority: view.authority,
        path: reqPath,
        query,
        headers: header,
        bodySha256: '',
        bodyLength: 0,
        // The bytes too: a route with `mcp` decides its JSON-RPC calls on them.
        readBody: async () => ({ sha256: hash('sha256', body, 'hex'), length: body.length, bytes: body }),
      };
      const bound = gatewayBody(read, {
        // Envoy marks every body it passes; a body cut at max_request_bytes is never the whole one.
        received: partial !== 'true' && (body.length > 0 || partial === 'false'),
        signal: bodySignal(header),
        claimedSha256: header(WIRE_HEADERS.bodySha256),
      });
      verified = bound.verified;
      request = bound.request;
    }
    const enforcement: Enforcement = await rt.kernel.enforce({
      request,
      facts: auditRequestInfo(view, { requestId, clientAddress: checked?.clientAddress }),
      startedMs,
    });
    if (enforcement.outcome === 'deny') return denied(enforcement.answer, requestId);
    const grant = gatewayGrant(enforcement, verified);
    const remove = [...grant.unset];
    if (!rt.config.forwardAuthorization) remove.push(WIRE_HEADERS.authorization);
    // The rest of the X-TrustPlane-* namespace the caller sent (proof, nonce, body digest, covered
    // headers, anything else) stops here, as in proxy mode; the headers set above are not listed.
    for (const [name] of checked?.lines ?? []) {
      if (name.startsWith('x-trustplane-') && !Object.hasOwn(grant.set, name) && !remove.includes(name)) {
        remove.push(name);
      }
    }
    return {
      status: { code: GRPC_OK, message: '' },
      ok_response: {
        headers: Object.entries(grant.set).map(([k, v]) => overwrite(k, v)),
        // Envoy removes these AFTER setting `headers`: nothing set above may be listed here.
        headers_to_remove: remove,
      },
    };
  } catch (e) {
    rt.log.error('ext_authz check failed', { error: e instanceof Error ? e.message : String(e) });
    return denied(denyAnswer({ reason: 'internal_error' }), requestId);
  }
}

/** A running ext_authz gRPC listener. */
export interface ExtAuthzGrpcServer {
  readonly address: AddressInfo;
  /** Stop accepting calls, let those in flight finish (at most `graceMs`), then close. */
  close(graceMs: number): Promise<void>;
}

/** What {@link startExtAuthzGrpcServer} needs besides the runtime. */
export interface ExtAuthzGrpcServerOptions {
  /** `host:port` to bind (port 0: any free port). */
  readonly listen: string;
  /** The adapter's readiness: the health service answers SERVING only when it is ready. */
  readonly ready: () => Promise<Readiness>;
}

/**
 * Start the gRPC listener: `envoy.service.auth.v3.Authorization/Check` through the runtime's kernel
 * ({@link checkExtAuthzRequest}) and `grpc.health.v1.Health/Check` (SERVING only while the adapter's
 * readiness is ok; `Watch` is not implemented). Plaintext HTTP/2. Calls beyond `maxInFlight` are
 * denied 503 `overloaded` before they are decided.
 * @throws DependencyMissingError (`dependency_missing`) when @grpc/grpc-js or @grpc/proto-loader is
 *   not installed; Error when the address is taken
 */
export async function startExtAuthzGrpcServer(
  rt: EnforcementRuntime,
  options: ExtAuthzGrpcServerOptions,
): Promise<ExtAuthzGrpcServer> {
  const { grpc, loader } = grpcModules();
  const root = protoRoot();
  const definition = await loader.load(
    ['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto'],
    {
      includeDirs: [path.join(root, 'envoy-ext-authz'), path.join(root, 'grpc-health')],
      keepCase: true,
      longs: String,
      enums: Number,
      defaults: true,
      oneofs: true,
      bytes: Buffer,
    },
  );
  const authorization = definition['envoy.service.auth.v3.Authorization'] as GrpcJs.ServiceDefinition;
  const health = definition['grpc.health.v1.Health'] as GrpcJs.ServiceDefinition;
  const server = new grpc.Server({
    // The body (at most maxBodyBytes) and the headers, with room for the rest of the message; a
    // larger message fails the call (RESOURCE_EXHAUSTED), which Envoy answers as a denial
    // (status_on_error) when failure_mode_allow is false.
    'grpc.max_receive_message_length': rt.config.maxBodyBytes + 2 * EXT_AUTHZ_MAX_HEADER_BYTES + 64 * 1024,
  });
  let inFlight = 0;
  server.addService(authorization, {
    Check: (
      call: GrpcJs.ServerUnaryCall<unknown, ExtAuthzCheckResponse>,
      callback: GrpcJs.sendUnaryData<ExtAuthzCheckResponse>,
    ) => {
      if (inFlight >= rt.config.maxInFlight) {
        rt.metrics.overloadRefusals.inc({ kind: 'in_flight' });
        callback(null, denied(denyAnswer({ reason: 'overloaded' }), requestIdFrom(undefined)));
        return;
      }
      inFlight += 1;
      rt.metrics.inFlight.inc();
      void checkExtAuthzRequest(rt, call.request).then((response) => {
        inFlight -= 1;
        rt.metrics.inFlight.dec();
        callback(null, response);
      });
    },
  });
  server.addService(health, {
    Check: (
      call: GrpcJs.ServerUnaryCall<{ service?: string }, { status: number }>,
      callback: GrpcJs.sendUnaryData<{ status: number }>,
    ) => {
      const service = call.request.service ?? '';
      if (service !== '' && service !== EXT_AUTHZ_SERVICE) {
        callback({ code: GRPC_NOT_FOUND, details: 'unknown service' });
        return;
      }
      options.ready().then(
        (r) => callback(null, { status: r.ready ? SERVING : NOT_SERVING }),
        () => callback(null, { status: NOT_SERVING }),
      );
    },
  });
  const i = options.listen.lastIndexOf(':');
  const host = options.listen.slice(0, i).replace(/^\[|\]$/g, '');
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.listen, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  const address: AddressInfo = { address: host, family: host.includes(':') ? 'IPv6' : 'IPv4', port };
  let closing: Promise<void> | undefined;
  return {
    address,
    close(graceMs) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closing;
    },
  };
}
