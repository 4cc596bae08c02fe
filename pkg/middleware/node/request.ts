import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** SHA-256 of the empty body. */
export const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * The first repeated header among those a decision depends on, if any. Node keeps only the first
 * `Authorization`, `Host` and `Content-Type` in `req.headers` while a peer might use the other one,
 * `Set-Cookie` lines cannot be combined (RFC 9110 §5.3), and an `X-TrustPlane-*` header must have
 * one meaning. Enforcement points refuse such requests `malformed_request`.
 * @param rawHeaders `req.rawHeaders` (name, value, name, value, ...)
 */
export function repeatedCriticalHeader(rawHeaders: readonly string[]): string | undefined {
  let seen: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (
      name === 'authorization' ||
      name === 'host' ||
      name === 'content-type' ||
      name === 'set-cookie' ||
      name.startsWith('x-trustplane-')
    ) {
      seen ??= new Set();
      if (seen.has(name)) return name;
      seen.add(name);
    }
  }
  return undefined;
}

/** Split a raw request target (`/path?query`) at the first `?`, without normalizing the path. */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

/** The first value of a possibly repeated header. */
export function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The scheme the caller used: the first `X-Forwarded-Proto` value when the proxy in front is
 * trusted, else whether this socket is TLS.
 */
export function requestScheme(req: IncomingMessage, trustForwarded: boolean): 'http' | 'https' {
  if (trustForwarded) {
    const forwarded = firstValue(req.headers['x-forwarded-proto'])?.split(',')[0]?.trim().toLowerCase();
    if (forwarded === 'https' || forwarded === 'http') return forwarded;
  }
  return (req.socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http';
}
