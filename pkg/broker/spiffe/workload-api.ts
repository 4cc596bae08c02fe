import * as grpc from '@grpc/grpc-js';
import { isIP } from 'node:net';
import {
  WORKLOAD_API_SECURITY_HEADER,
  loadWorkloadApiDefinition,
  type WorkloadApiDefinition,
} from './workload-proto.js';

/*
 * SPIFFE Workload API client, X.509-SVID profile: one long-lived FetchX509SVID server stream,
 * each message turned into an immutable update. This module parses and bounds what the agent
 * sends; it does NOT verify the SVID (chain, SPIFFE ID match, validity): `verifyX509Svid` does,
 * and the broker glues the two together.
 */

/** Stable codes of {@link WorkloadApiError} (public API: add, never rename). */
export type WorkloadApiErrorCode =
  /** No endpoint given and `SPIFFE_ENDPOINT_SOCKET` unset or empty. */
  | 'workload_api_no_endpoint'
  /** The endpoint is not a `unix:` absolute path or a `tcp://<ip>:<port>` address. */
  | 'workload_api_bad_endpoint'
  /** The agent is unreachable, failed, ended the stream, or gave nothing within the timeout. */
  | 'workload_api_unavailable'
  /** The agent holds no identity for this workload (gRPC PERMISSION_DENIED / UNAUTHENTICATED). */
  | 'workload_api_no_identity'
  /** The agent rejected the call itself (gRPC INVALID_ARGUMENT, UNIMPLEMENTED, FAILED_PRECONDITION). */
  | 'workload_api_rejected'
  /** The agent sent a response that is empty, malformed or over a bound; it was ignored. */
  | 'workload_api_bad_response'
  /** The source was closed. */
  | 'workload_api_closed';

/** Non-secret structured details of a {@link WorkloadApiError} (for logs and audit events). */
export type WorkloadApiErrorDetails = Readonly<Record<string, string | number | boolean>>;

/**
 * A Workload API failure. `code` is stable; messages and details never contain key material or
 * certificate bytes.
 *
 * @example
 * try { await WorkloadApiX509Source.connect() } catch (e) {
 *   if (e instanceof WorkloadApiError && e.code === 'workload_api_no_identity') { ... }
 * }
 */
export class WorkloadApiError extends Error {
  /** Stable code (public API). */
  readonly code: WorkloadApiErrorCode;
  /** Non-secret details: gRPC status name, endpoint, offending field, ... */
  readonly details: WorkloadApiErrorDetails;

  constructor(code: WorkloadApiErrorCode, message: string, details: WorkloadApiErrorDetails = {}) {
    super(message);
    this.name = 'WorkloadApiError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

/** Largest Workload API message accepted, bytes (gRPC's usual default, made explicit). */
export const WORKLOAD_API_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Most X.509-SVIDs accepted in one response. */
export const WORKLOAD_API_MAX_SVIDS = 128;
/** Most certificates accepted in one SVID chain (leaf + intermediates). */
export const WORKLOAD_API_MAX_CHAIN_CERTS = 16;
/** Most CA certificates accepted in one trust bundle. */
export const WORKLOAD_API_MAX_BUNDLE_CERTS = 1024;
/** Most federated trust domains accepted in one response. */
export const WORKLOAD_API_MAX_FEDERATED_BUNDLES = 1024;

const MAX_ENDPOINT_CHARS = 4096;
const MAX_UNIX_PATH_BYTES = 107; // Linux sun_path is 108 bytes including the terminating NUL.
const MAX_SPIFFE_ID_CHARS = 2048;
const MAX_TRUST_DOMAIN_CHARS = 255;
const MAX_HINT_CHARS = 1024;
const MAX_SERVER_MESSAGE_CHARS = 200;

// ---------------------------------------------------------------------------------------------
// Endpoint

/** A parsed Workload API endpoint. */
export type WorkloadEndpoint =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/**
 * Parse a Workload API endpoint address as the SPIFFE Workload Endpoint specification defines it:
 * `unix:///absolute/path` or `unix:/absolute/path` (no authority, query or fragment; the path may
 * be percent-encoded), or `tcp://<IP literal>:<port>` (no host name, user info, path, query or
 * fragment). Anything else, including a bare path, is refused.
 *
 * @param endpoint - The address, e.g. the value of `SPIFFE_ENDPOINT_SOCKET`.
 * @returns The socket path or IP address and port.
 * @throws {WorkloadApiError} `workload_api_bad_endpoint`.
 * @example
 * parseWorkloadEndpoint('unix:///run/spire/sockets/agent.sock'); // { kind: 'unix', path: '/run/spire/sockets/agent.sock' }
 * parseWorkloadEndpoint('tcp://127.0.0.1:8081'); // { kind: 'tcp', host: '127.0.0.1', port: 8081 }
 */
export function parseWorkloadEndpoint(endpoint: string): WorkloadEndpoint {
  if (typeof endpoint !== 'string') throw new TypeError('parseWorkloadEndpoint: endpoint must be a string');
  const bad = (why: string): WorkloadApiError =>
    new WorkloadApiError('workload_api_bad_endpoint', `Workload API endpoint ${why}`, {
      endpoint: printable(endpoint, MAX_SERVER_MESSAGE_CHARS),
    });
  if (endpoint.length === 0 || endpoint.length > MAX_ENDPOINT_CHARS) throw bad('is empty or too long');
  // The WHATWG URL parser silently drops tabs, newlines and surrounding spaces; refuse them instead.
  if (hasCharIn(endpoint, 0x00, 0x20) || endpoint.includes('\u007f'))
    throw bad('contains whitespace or control characters');
  if (endpoint.includes('?') || endpoint.includes('#')) throw bad('must not include a query or fragment');
  const colon = endpoint.indexOf(':');
  const scheme = colon === -1 ? '' : endpoint.slice(0, colon).toLowerCase();
  if (scheme === 'unix') return parseUnixEndpoint(endpoint.slice(colon + 1), bad);
  if (scheme === 'tcp') return parseTcpEndpoint(endpoint, bad);
  throw bad('must be unix:///absolute/path or tcp://<ip>:<port>');
}

function parseUnixEndpoint(rest: string, bad: (why: string) => WorkloadApiError): WorkloadEndpoint {
  let encoded = rest;
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    const authority = slash === -1 ? rest.slice(2) : rest.slice(2, slash);
    if (authority !== '') throw bad('(unix) must not include an authority: use unix:///absolute/path');
    encoded = slash === -1 ? '' : rest.slice(slash);
  }
  if (!encoded.startsWith('/')) throw bad('(unix) must name an absolute socket path');
  let path: string;
  try {
    path = decodeURIComponent(encoded);
  } catch {
    throw bad('(unix) has invalid percent-encoding');
  }
  if (path.includes('\u0000')) throw bad('(unix) path contains NUL');
  if (path === '/' || path.endsWith('/')) throw bad('(unix) must name a socket file, not a directory');
  if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES)
    throw bad(`(unix) path is longer than ${MAX_UNIX_PATH_BYTES} bytes`);
  return Object.freeze({ kind: 'unix', path });
}

function parseTcpEndpoint(endpoint: string, bad: (why: string) => WorkloadApiError): WorkloadEndpoint {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw bad('(tcp) is not a valid URI');
  }
  if (!endpoint.slice(4).startsWith('//')) throw bad('(tcp) must be tcp://<ip>:<port>');
  if (url.username !== '' || url.password !== '' || endpoint.includes('@'))
    throw bad('(tcp) must not include user info');
  if (url.pathname !== '') throw bad('(tcp) must not include a path');
  const host =
    url.hostname.startsWith('[') && url.hostname.endsWith(']') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') throw bad('(tcp) must include a host');
  if (isIP(host) === 0) throw bad('(tcp) host must be an IP address');
  // URL drops a port equal to a scheme default; tcp has none, so an empty port means none was given.
  if (url.port === '') throw bad('(tcp) must include a port');
  const port = Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw bad('(tcp) port must be 1-65535');
  return Object.freeze({ kind: 'tcp', host, port });
}

function grpcTarget(endpoint: WorkloadEndpoint): string {
  if (endpoint.kind === 'unix') return `unix://${endpoint.path}`;
  return isIP(endpoint.host) === 6
    ? `ipv6:[${endpoint.host}]:${endpoint.port}`
    : `ipv4:${endpoint.host}:${endpoint.port}`;
}

// ---------------------------------------------------------------------------------------------
// DER

/** Options of {@link splitConcatenatedDer}. */
export interface SplitDerOptions {
  /** Most items accepted (default {@link WORKLOAD_API_MAX_BUNDLE_CERTS}). */
  readonly maxItems?: number;
  /** Field name used in error details (default `der`). */
  readonly field?: string;
}

/**
 * Split concatenated DER values (the Workload API's encoding of certificate chains and bundles)
 * into one copy per value. Only the outer framing is checked: every item must be a SEQUENCE with a
 * definite, minimally encoded length of at most 4 length octets, the items must cover the input
 * exactly (no trailing bytes), and there must be at least one. The content of each item is not
 * parsed: X.509 validation is the verifier's job.
 *
 * @param bytes - Concatenated DER.
 * @param options - {@link SplitDerOptions}.
 * @returns Fresh `Uint8Array` copies, in order.
 * @throws {WorkloadApiError} `workload_api_bad_response` (empty, truncated, trailing garbage,
 *   indefinite or non-minimal length, not a SEQUENCE, too many items).
 * @example
 * const [leaf, ...intermediates] = splitConcatenatedDer(svid.x509_svid, { maxItems: 16 });
 */
export function splitConcatenatedDer(bytes: Uint8Array, options: SplitDerOptions = {}): Uint8Array[] {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('splitConcatenatedDer: bytes must be a Uint8Array');
  const maxItems = options.maxItems ?? WORKLOAD_API_MAX_BUNDLE_CERTS;
  if (!Number.isSafeInteger(maxItems) || maxItems < 1)
    throw new RangeError('splitConcatenatedDer: maxItems must be a positive integer');
  const field = options.field ?? 'der';
  const bad = (why: string, offset: number): WorkloadApiError =>
    new WorkloadApiError(
      'workload_api_bad_response',
      `Workload API response: ${field} is not valid concatenated DER (${why})`,
      {
        field,
        offset,
      },
    );
  const items: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (items.length === maxItems) throw bad(`more than ${maxItems} items`, at);
    if (bytes[at] !== 0x30) throw bad('item is not a SEQUENCE', at);
    const first = bytes[at + 1];
    if (first === undefined) throw bad('truncated length', at);
    let length: number;
    let header: number;
    if (first < 0x80) {
      length = first;
      header = 2;
    } else if (first === 0x80) {
      throw bad('indefinite length', at);
    } else {
      const octets = first & 0x7f;
      if (octets > 4) throw bad('length too large', at);
      if (at + 2 + octets > bytes.length) throw bad('truncated length', at);
      if (bytes[at + 2] === 0) throw bad('non-minimal length', at);
      length = 0;
      for (let k = 0; k < octets; k++) length = length * 256 + (bytes[at + 2 + k] ?? 0);
      if (length < 0x80) throw bad('non-minimal length', at);
      header = 2 + octets;
    }
    const end = at + header + length;
    if (end > bytes.length) throw bad('truncated item', at);
    items.push(new Uint8Array(bytes.subarray(at, end)));
    at = end;
  }
  if (items.length === 0) throw bad('empty', 0);
  return items;
}

// ---------------------------------------------------------------------------------------------
// Updates

/**
 * One X.509-SVID as the agent sent it: parsed and bounded, NOT verified.
 *
 * `keyPkcs8Der` is a non-enumerable property, so logging, spreading or `JSON.stringify` of an
 * SVID or an update never shows the private key; read it explicitly.
 */
export interface X509Svid {
  /** The SPIFFE ID the agent says this SVID carries (checked for SPIFFE ID syntax only). */
  readonly spiffeId: string;
  /** DER certificates, leaf first, then intermediates. */
  readonly chainDer: readonly Uint8Array[];
  /** DER PKCS#8 private key of the leaf (non-enumerable; a copy owned by this update). */
  readonly keyPkcs8Der: Uint8Array;
  /** DER CA certificates of the SVID's own trust domain. */
  readonly bundleDer: readonly Uint8Array[];
  /** Operator hint (`''` when none). */
  readonly hint: string;
}

/** One Workload API update. Frozen; the byte arrays are copies nobody else holds. */
export interface X509SvidUpdate {
  /** At least one SVID; the first is the default one (Workload API specification). */
  readonly svids: readonly X509Svid[];
  /** Federated trust domain name (e.g. `partner.example`, without `spiffe://`) → DER CA certificates. Read-only. */
  readonly federatedBundles: ReadonlyMap<string, readonly Uint8Array[]>;
  /** When the update arrived, epoch seconds (from the injected clock). */
  readonly receivedAt: number;
}

/** A Map whose mutators throw, so a shared update cannot be edited by one of its readers. */
class ReadonlyMapImpl<K, V> extends Map<K, V> {
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    for (const [k, v] of entries) super.set(k, v);
    Object.freeze(this);
  }
  override set(): this {
    throw new TypeError('X509SvidUpdate.federatedBundles is read-only');
  }
  override delete(): boolean {
    throw new TypeError('X509SvidUpdate.federatedBundles is read-only');
  }
  override clear(): void {
    throw new TypeError('X509SvidUpdate.federatedBundles is read-only');
  }
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SPIFFE_ID = /^spiffe:\/\/([a-z0-9._-]+)((?:\/[A-Za-z0-9._-]+)*)$/;

function isSpiffeIdSyntax(value: string): boolean {
  if (value.length > MAX_SPIFFE_ID_CHARS) return false;
  const m = SPIFFE_ID.exec(value);
  if (m === null) return false;
  const [, td = '', path = ''] = m;
  if (td.length > MAX_TRUST_DOMAIN_CHARS) return false;
  return path.split('/').every((seg, i) => i === 0 || (seg !== '.' && seg !== '..'));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Turn one decoded `X509SVIDResponse` into an immutable {@link X509SvidUpdate}: at least one SVID,
 * every SPIFFE ID syntactically valid, chains and bundles split with {@link splitConcatenatedDer},
 * the key exactly one DER SEQUENCE, federated bundles keyed by trust domain. The CRL field is not
 * used. Nothing is verified cryptographically.
 *
 * @param message - The decoded message (untrusted).
 * @param receivedAt - Arrival time, epoch seconds.
 * @returns The update.
 * @throws {WorkloadApiError} `workload_api_bad_response`.
 * @example
 * const update = parseX509SvidResponse(decoded, Math.floor(Date.now() / 1000));
 */
export function parseX509SvidResponse(message: unknown, receivedAt: number): X509SvidUpdate {
  const bad = (why: string, details: WorkloadApiErrorDetails = {}): WorkloadApiError =>
    new WorkloadApiError('workload_api_bad_response', `Workload API response: ${why}`, details);
  if (!isRecord(message)) throw bad('not a message');
  const svidsIn = message['svids'];
  if (!Array.isArray(svidsIn)) throw bad('svids is not a list');
  if (svidsIn.length === 0) throw bad('no X.509-SVID in the response');
  if (svidsIn.length > WORKLOAD_API_MAX_SVIDS) throw bad(`more than ${WORKLOAD_API_MAX_SVIDS} SVIDs`);
  const svids = svidsIn.map((raw: unknown, index) => parseSvid(raw, index, bad));

  const federatedIn = message['federated_bundles'] ?? {};
  if (!isRecord(federatedIn)) throw bad('federated_bundles is not a map');
  const keys = Object.keys(federatedIn);
  if (keys.length > WORKLOAD_API_MAX_FEDERATED_BUNDLES)
    throw bad(`more than ${WORKLOAD_API_MAX_FEDERATED_BUNDLES} federated bundles`);
  const federated = new Map<string, readonly Uint8Array[]>();
  for (const key of keys) {
    const td = key.startsWith('spiffe://') ? key.slice('spiffe://'.length) : key;
    if (td.length === 0 || td.length > MAX_TRUST_DOMAIN_CHARS || !TRUST_DOMAIN.test(td)) {
      throw bad('federated bundle key is not a trust domain', { key: printable(key, 64) });
    }
    if (federated.has(td)) throw bad('federated trust domain listed twice', { trustDomain: td });
    const value = federatedIn[key];
    if (!(value instanceof Uint8Array)) throw bad('federated bundle is not bytes', { trustDomain: td });
    federated.set(
      td,
      Object.freeze(
        splitConcatenatedDer(value, { maxItems: WORKLOAD_API_MAX_BUNDLE_CERTS, field: 'federated_bundles' }),
      ),
    );
  }
  return Object.freeze({
    svids: Object.freeze(svids),
    federatedBundles: new ReadonlyMapImpl(federated),
    receivedAt,
  });
}

function parseSvid(
  raw: unknown,
  index: number,
  bad: (why: string, details?: WorkloadApiErrorDetails) => WorkloadApiError,
): X509Svid {
  if (!isRecord(raw)) throw bad('SVID entry is not a message', { index });
  const spiffeId = raw['spiffe_id'];
  if (typeof spiffeId !== 'string' || !isSpiffeIdSyntax(spiffeId))
    throw bad('SVID has no valid SPIFFE ID', { index });
  const chain = raw['x509_svid'];
  const key = raw['x509_svid_key'];
  const bundle = raw['bundle'];
  const hint = raw['hint'] ?? '';
  if (!(chain instanceof Uint8Array) || !(key instanceof Uint8Array) || !(bundle instanceof Uint8Array)) {
    throw bad('SVID fields are not bytes', { index, spiffeId });
  }
  if (typeof hint !== 'string' || hint.length > MAX_HINT_CHARS)
    throw bad('SVID hint is not a bounded string', { index, spiffeId });
  const chainDer = splitConcatenatedDer(chain, {
    maxItems: WORKLOAD_API_MAX_CHAIN_CERTS,
    field: 'x509_svid',
  });
  const bundleDer = splitConcatenatedDer(bundle, {
    maxItems: WORKLOAD_API_MAX_BUNDLE_CERTS,
    field: 'bundle',
  });
  const [keyDer] = splitConcatenatedDer(key, { maxItems: 1, field: 'x509_svid_key' });
  const svid = { spiffeId, chainDer: Object.freeze(chainDer), bundleDer: Object.freeze(bundleDer), hint };
  Object.defineProperty(svid, 'keyPkcs8Der', {
    value: keyDer,
    enumerable: false,
    writable: false,
    configurable: false,
  });
  return Object.freeze(svid) as X509Svid;
}

// ---------------------------------------------------------------------------------------------
// gRPC status mapping

function errorFromStatus(code: number, serverMessage: string): WorkloadApiError {
  const name = grpc.status[code] ?? `UNKNOWN_${code}`;
  const details = { grpcStatus: name, serverMessage: printable(serverMessage, MAX_SERVER_MESSAGE_CHARS) };
  switch (code) {
    case grpc.status.PERMISSION_DENIED:
    case grpc.status.UNAUTHENTICATED:
      return new WorkloadApiError(
        'workload_api_no_identity',
        `Workload API has no identity for this workload (${name})`,
        details,
      );
    case grpc.status.INVALID_ARGUMENT:
    case grpc.status.UNIMPLEMENTED:
    case grpc.status.FAILED_PRECONDITION:
      return new WorkloadApiError(
        'workload_api_rejected',
        `Workload API rejected the call (${name})`,
        details,
      );
    default:
      return new WorkloadApiError('workload_api_unavailable', `Workload API call failed (${name})`, details);
  }
}

/** Server-supplied text for a log line: bounded, control characters replaced. */
function printable(text: string, max: number): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  let out = '';
  for (const ch of cut) {
    const c = ch.codePointAt(0) ?? 0;
    out += c < 0x20 || (c >= 0x7f && c <= 0x9f) ? '?' : ch;
  }
  return out;
}

function hasCharIn(text: string, low: number, high: number): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= low && c <= high) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Source

/** Reconnect backoff of {@link WorkloadApiX509Source}: `initialMs`, doubling, capped at `maxMs`. */
export interface WorkloadApiBackoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** Options of {@link WorkloadApiX509Source.connect}. */
export interface WorkloadApiX509SourceOptions {
  /** Workload API address (see {@link parseWorkloadEndpoint}); default `process.env.SPIFFE_ENDPOINT_SOCKET`. */
  readonly endpoint?: string;
  /** Called with every accepted update, the first one included. Must not throw (exceptions are swallowed). */
  readonly onUpdate?: (update: X509SvidUpdate) => void;
  /**
   * Called with every failure the source survives: a stream that failed or ended (a reconnect
   * follows), a response that was ignored (the last good update stays current). Must not throw.
   */
  readonly onError?: (error: WorkloadApiError) => void;
  /** How long `connect()` waits for the first good update, ms (default 10,000). */
  readonly initialTimeoutMs?: number;
  /** Reconnect backoff (default `{ initialMs: 1000, maxMs: 30000 }`). */
  readonly backoff?: WorkloadApiBackoff;
  /** Clock, epoch seconds (default: system clock); stamps `receivedAt`. */
  readonly now?: () => number;
}

/** Options of {@link WorkloadApiX509Source.currentSvid}. */
export interface CurrentSvidOptions {
  /** Pick the first SVID with this hint instead of the default (first) one. */
  readonly hint?: string;
}

interface Settings {
  readonly onUpdate: ((update: X509SvidUpdate) => void) | undefined;
  readonly onError: ((error: WorkloadApiError) => void) | undefined;
  readonly initialTimeoutMs: number;
  readonly backoff: WorkloadApiBackoff;
  readonly now: () => number;
}

interface PendingConnect {
  readonly resolve: () => void;
  readonly reject: (error: WorkloadApiError) => void;
  readonly timer: NodeJS.Timeout;
  lastError: WorkloadApiError | undefined;
}

const MAX_DELAY_MS = 24 * 3600 * 1000;

function checkSettings(options: WorkloadApiX509SourceOptions): Settings {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('WorkloadApiX509Source.connect: options must be an object');
  const fn = <T>(value: T | undefined, name: string): T | undefined => {
    if (value !== undefined && typeof value !== 'function')
      throw new TypeError(`WorkloadApiX509Source.connect: ${name} must be a function`);
    return value;
  };
  const ms = (value: number, name: string): number => {
    if (!Number.isSafeInteger(value) || value < 1 || value > MAX_DELAY_MS) {
      throw new RangeError(
        `WorkloadApiX509Source.connect: ${name} must be an integer number of ms in 1..${MAX_DELAY_MS}`,
      );
    }
    return value;
  };
  const backoff = options.backoff ?? { initialMs: 1000, maxMs: 30_000 };
  const initialMs = ms(backoff.initialMs, 'backoff.initialMs');
  const maxMs = ms(backoff.maxMs, 'backoff.maxMs');
  if (initialMs > maxMs)
    throw new RangeError('WorkloadApiX509Source.connect: backoff.initialMs must not exceed backoff.maxMs');
  if (options.endpoint !== undefined && typeof options.endpoint !== 'string') {
    throw new TypeError('WorkloadApiX509Source.connect: endpoint must be a string');
  }
  return {
    onUpdate: fn(options.onUpdate, 'onUpdate'),
    onError: fn(options.onError, 'onError'),
    initialTimeoutMs: ms(options.initialTimeoutMs ?? 10_000, 'initialTimeoutMs'),
    backoff: Object.freeze({ initialMs, maxMs }),
    now: fn(options.now, 'now') ?? (() => Math.floor(Date.now() / 1000)),
  };
}

/**
 * A live X.509-SVID source backed by the SPIFFE Workload API (`FetchX509SVID` server stream).
 *
 * Every call carries the `workload.spiffe.io: true` metadata the specification requires. Each
 * response becomes an immutable {@link X509SvidUpdate}; a bad response is reported through
 * `onError` and ignored (the last good update stays current). When the stream fails or ends, the
 * source reconnects with exponential backoff and keeps serving the last good update meanwhile.
 * Nothing here verifies the SVID: pass `current()` through `verifyX509Svid` before trusting it.
 *
 * @example
 * const source = await WorkloadApiX509Source.connect({
 *   endpoint: 'unix:///run/spire/sockets/agent.sock',
 *   onError: (e) => log.warn({ code: e.code, ...e.details }, e.message),
 * });
 * const { spiffeId, chainDer, keyPkcs8Der } = source.currentSvid();
 * // ... later
 * source.close();
 */
export class WorkloadApiX509Source {
  readonly #client: grpc.Client;
  readonly #method: WorkloadApiDefinition['fetchX509Svid'];
  readonly #settings: Settings;
  #call: grpc.ClientReadableStream<unknown> | undefined;
  #current: X509SvidUpdate | undefined;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #pending: PendingConnect | undefined;

  private constructor(endpoint: WorkloadEndpoint, settings: Settings) {
    this.#settings = settings;
    this.#method = loadWorkloadApiDefinition().fetchX509Svid;
    this.#client = new grpc.Client(grpcTarget(endpoint), grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': WORKLOAD_API_MAX_MESSAGE_BYTES,
      // The channel's own reconnect pacing follows ours, so a restarted agent is found promptly.
      'grpc.initial_reconnect_backoff_ms': settings.backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': settings.backoff.maxMs,
      // Never share a subchannel (and its backoff state) with another client in the process.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.enable_retries': 0,
    });
  }

  /**
   * Connect to the Workload API and wait for the first good X.509-SVID update.
   *
   * Transient failures (agent not up yet, no identity issued yet, a bad response) are retried with
   * backoff until `initialTimeoutMs`; a call the agent rejects outright fails at once.
   *
   * @param options - {@link WorkloadApiX509SourceOptions}.
   * @returns A connected source; `current()` is defined.
   * @throws {WorkloadApiError} `workload_api_no_endpoint`, `workload_api_bad_endpoint`,
   *   `workload_api_rejected` (at once); on timeout `workload_api_no_identity` or
   *   `workload_api_bad_response` when that was the last failure, else `workload_api_unavailable`.
   * @throws {TypeError | RangeError} for malformed options.
   * @example
   * const source = await WorkloadApiX509Source.connect({ initialTimeoutMs: 5000 });
   */
  static async connect(options: WorkloadApiX509SourceOptions = {}): Promise<WorkloadApiX509Source> {
    const settings = checkSettings(options);
    const text = options.endpoint ?? process.env['SPIFFE_ENDPOINT_SOCKET'];
    if (text === undefined || text === '') {
      throw new WorkloadApiError(
        'workload_api_no_endpoint',
        'Workload API endpoint not configured: pass endpoint or set SPIFFE_ENDPOINT_SOCKET',
      );
    }
    const source = new WorkloadApiX509Source(parseWorkloadEndpoint(text), settings);
    await source.#waitForFirstUpdate();
    return source;
  }

  /**
   * The latest good update (the first SVID in it is the default one).
   *
   * @returns The current update; it stays current while the stream reconnects.
   * @throws {WorkloadApiError} `workload_api_closed` after {@link close}.
   * @example
   * const { svids, federatedBundles } = source.current();
   */
  current(): X509SvidUpdate {
    if (this.#closed || this.#current === undefined) {
      throw new WorkloadApiError('workload_api_closed', 'Workload API source is closed');
    }
    return this.#current;
  }

  /**
   * The default SVID of the latest update (the first one), or the first whose hint matches.
   *
   * @param options - {@link CurrentSvidOptions}.
   * @returns The SVID (unverified).
   * @throws {WorkloadApiError} `workload_api_no_identity` when no SVID has the hint;
   *   `workload_api_closed` after {@link close}.
   * @example
   * const svid = source.currentSvid({ hint: 'internal' });
   */
  currentSvid(options: CurrentSvidOptions = {}): X509Svid {
    const { svids } = this.current();
    const svid = options.hint === undefined ? svids[0] : svids.find((s) => s.hint === options.hint);
    if (svid === undefined) {
      throw new WorkloadApiError(
        'workload_api_no_identity',
        'Workload API gave no SVID with the requested hint',
        {
          hint: printable(options.hint ?? '', 64),
        },
      );
    }
    return svid;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Cancel the stream, stop reconnecting, close the channel and drop the current update.
   * Idempotent.
   *
   * @example
   * process.on('SIGTERM', () => source.close());
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const call = this.#call;
    this.#call = undefined;
    call?.cancel();
    this.#client.close();
    this.#current = undefined;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      pending.reject(new WorkloadApiError('workload_api_closed', 'Workload API source is closed'));
    }
  }

  #waitForFirstUpdate(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timeoutMs = this.#settings.initialTimeoutMs;
      const timer = setTimeout(() => {
        const last = this.#pending?.lastError;
        const code =
          last !== undefined && last.code !== 'workload_api_unavailable'
            ? last.code
            : 'workload_api_unavailable';
        this.#failConnect(
          new WorkloadApiError(code, `Workload API gave no usable X.509-SVID within ${timeoutMs} ms`, {
            timeoutMs,
            ...(last !== undefined ? { lastError: last.code, lastMessage: last.message } : {}),
          }),
        );
      }, timeoutMs);
      this.#pending = { resolve, reject, timer, lastError: undefined };
      this.#openStream();
    });
  }

  #failConnect(error: WorkloadApiError): void {
    const pending = this.#pending;
    this.#pending = undefined;
    this.close();
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
  }

  #openStream(): void {
    if (this.#closed) return;
    const metadata = new grpc.Metadata();
    metadata.set(WORKLOAD_API_SECURITY_HEADER, 'true');
    const m = this.#method;
    const call = this.#client.makeServerStreamRequest<Record<string, never>, unknown>(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      {},
      metadata,
      {},
    );
    this.#call = call;
    call.on('data', (message: unknown) => {
      if (this.#call === call) this.#onMessage(message);
    });
    // 'status' fires exactly once per call, for failures and clean ends alike; 'error' carries the
    // same information, but must have a listener or the stream would throw it.
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => {
      if (this.#call !== call) return;
      this.#call = undefined;
      this.#onStreamClosed(
        status.code === grpc.status.OK
          ? new WorkloadApiError('workload_api_unavailable', 'Workload API ended the X.509-SVID stream', {
              grpcStatus: 'OK',
            })
          : errorFromStatus(status.code, status.details),
      );
    });
  }

  #onMessage(message: unknown): void {
    let update: X509SvidUpdate;
    try {
      update = parseX509SvidResponse(message, this.#settings.now());
    } catch (e) {
      const error =
        e instanceof WorkloadApiError
          ? e
          : new WorkloadApiError('workload_api_bad_response', 'Workload API response could not be read');
      if (this.#pending !== undefined) this.#pending.lastError = error;
      this.#report(error);
      return;
    }
    this.#current = update;
    this.#failures = 0;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      pending.resolve();
    }
    try {
      this.#settings.onUpdate?.(update);
    } catch {
      // A throwing callback must not break the stream.
    }
  }

  #onStreamClosed(error: WorkloadApiError): void {
    if (this.#closed) return;
    if (this.#pending !== undefined) {
      // A rejected call will be rejected again: fail now instead of retrying until the timeout.
      if (error.code === 'workload_api_rejected') {
        this.#failConnect(error);
        return;
      }
      this.#pending.lastError = error;
    }
    this.#report(error);
    const { initialMs, maxMs } = this.#settings.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#openStream();
    }, delay);
  }

  #report(error: WorkloadApiError): void {
    try {
      this.#settings.onError?.(error);
    } catch {
      // A throwing callback must not break the stream.
    }
  }
}
