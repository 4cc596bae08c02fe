import { TrustplaneError } from '../authcore/errors.js';
import { pathSafetyProblem } from './path-safety.js';

/** Options for {@link clientPathProblem} and {@link assertClientPath}. */
export interface ClientPathOptions {
  /**
   * Path prefix of the client's base URL (`/v1` for `https://api.example/v1`), without a trailing
   * slash; '' or undefined when the base URL has none. The path must be the prefix itself or lie
   * under it (`/v1` or `/v1/…`), never a sibling such as `/v10/x` or `/v1evil`.
   */
  readonly basePath?: string;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Why a request path is unsafe for the SDK to send, or undefined when it is safe.
 *
 * The rules are those of the official TrustPlane SDKs (`validate_concrete_request_path` of
 * trustplane-auth-sdk-python, `protected_client`/`profile`), which are stricter than the verifier,
 * plus the verifier's own rules ({@link pathSafetyProblem}) as a floor:
 * - the path starts with `/`;
 * - no `%` at all (the SDK never sends percent-encoding, so nothing can be decoded differently
 *   by an intermediary or the upstream);
 * - no `?` or `#` (a query goes in the `query` option; a fragment is never sent);
 * - no control character, no `\`, no `//`;
 * - no `.` or `..` segment (also not as `..;x`, see the verifier's rules);
 * - no trailing slash, except for the root path `/` itself (as the official SDK: `/a/` and `/a`
 *   may be different routes upstream while a verifier template matches only one of them);
 * - no `{` or `}` (an unexpanded path template);
 * - with `basePath`, the path is `basePath` or starts with `basePath + '/'` (a plain
 *   `startsWith` would let `/v1evil` through for `/v1`).
 *
 * @param path the raw path, exactly as it will be sent (no query)
 * @param options the client's base path
 * @returns a short description of the first problem found (never the path itself), or undefined
 * @example
 * clientPathProblem('/v1/orders/search') // undefined
 * clientPathProblem('/v1/orders/%2e%2e/admin') // 'path has percent-encoding'
 * clientPathProblem('/v10/orders', { basePath: '/v1' }) // 'path is outside the base URL path'
 */
export function clientPathProblem(path: string, options: ClientPathOptions = {}): string | undefined {
  if (typeof path !== 'string' || path.length === 0 || path[0] !== '/') return 'path must start with /';
  if (path.includes('%')) return 'path has percent-encoding';
  if (path.includes('?') || path.includes('#')) return 'path has a query or fragment character';
  if (CONTROL.test(path)) return 'path has a control character';
  if (path.includes('\\')) return 'path has a backslash';
  if (path.includes('//')) return 'path has an empty segment (//)';
  if (path.includes('{') || path.includes('}')) return 'path has a template brace';
  for (const segment of path.split('/')) {
    if (segment === '.' || segment === '..') return 'path has a dot segment';
  }
  if (path.length > 1 && path.endsWith('/')) return 'path has a trailing slash';
  const floor = pathSafetyProblem(path);
  if (floor !== undefined) return floor;
  const base = options.basePath ?? '';
  if (base !== '' && path !== base && !path.startsWith(`${base}/`)) {
    return 'path is outside the base URL path';
  }
  return undefined;
}

/**
 * Throw unless the path is safe for the SDK to send (see {@link clientPathProblem}).
 * @throws TrustplaneError `unsafe_request_path` (the message names the rule, never the path)
 * @example
 * assertClientPath('/v1/orders/ord_1', { basePath: '/v1' })
 */
export function assertClientPath(path: string, options: ClientPathOptions = {}): void {
  const problem = clientPathProblem(path, options);
  if (problem !== undefined)
    throw new TrustplaneError('unsafe_request_path', `unsafe request path: ${problem}`);
}
