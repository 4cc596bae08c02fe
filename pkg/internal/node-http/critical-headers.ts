import { TrustplaneError } from '../../authcore/errors.js';
import { headerNameProblem } from '../../proof/header-safety.js';

/**
 * The first repeated header among those a decision depends on, if any. Node keeps only the first
 * `Authorization`, `Host` and `Content-Type` in `req.headers` while a peer might use the other one,
 * `Set-Cookie` lines cannot be combined (RFC 9110 §5.3), and an `X-TrustPlane-*` header must have
 * one meaning.
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

/**
 * Refuse a request that repeats a header the decision depends on (see {@link repeatedCriticalHeader}).
 * @throws TrustplaneError `malformed_request`
 */
export function assertNoRepeatedCriticalHeader(rawHeaders: readonly string[]): void {
  const repeated = repeatedCriticalHeader(rawHeaders);
  if (repeated !== undefined) throw new TrustplaneError('malformed_request', `repeated ${repeated} header`);
}

/**
 * Refuse a header line whose name an upstream could read as another header (see
 * `headerNameProblem`), then a repeated critical header.
 * @throws TrustplaneError `unsafe_request_header`, `malformed_request`
 */
export function assertSafeHeaderLines(rawHeaders: readonly string[]): void {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const problem = headerNameProblem(rawHeaders[i]!);
    if (problem !== undefined)
      throw new TrustplaneError('unsafe_request_header', `unsafe request header: ${problem}`);
  }
  assertNoRepeatedCriticalHeader(rawHeaders);
}
