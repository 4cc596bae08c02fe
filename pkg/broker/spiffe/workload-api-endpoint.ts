import { isIP } from 'node:net';
import { MAX_SERVER_MESSAGE_CHARS, WorkloadApiError, printable } from './workload-api-error.js';

const MAX_ENDPOINT_CHARS = 4096;
const MAX_UNIX_PATH_BYTES = 107; // Linux sun_path is 108 bytes including the terminating NUL.

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

/** The gRPC target string of an endpoint. */
export function grpcTarget(endpoint: WorkloadEndpoint): string {
  if (endpoint.kind === 'unix') return `unix://${endpoint.path}`;
  return isIP(endpoint.host) === 6
    ? `ipv6:[${endpoint.host}]:${endpoint.port}`
    : `ipv4:${endpoint.host}:${endpoint.port}`;
}

function hasCharIn(text: string, low: number, high: number): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= low && c <= high) return true;
  }
  return false;
}
