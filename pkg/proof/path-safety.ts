import { TrustplaneError } from '../authcore/errors.js';

/** Longest raw path accepted. */
export const MAX_PATH_LENGTH = 4096;

// RFC 3986 pchar minus '%' (handled separately) plus '/'.
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
// Encodings that could change how the upstream splits or resolves the path: '/', '\', '.', '%'
// (double encoding) and every control character.
const DANGEROUS_ENCODING = /%(2[fFeE5]|5[cC]|[01][0-9a-fA-F]|7[fF])/;
const BAD_PERCENT = /%(?![0-9a-fA-F]{2})/;

/**
 * Why a raw request path is unsafe, or undefined when it is safe. A safe path starts with `/`,
 * uses only RFC 3986 path characters, has no `//`, no `.` or `..` segment (also not before a `;`
 * parameter, as in `..;x`), no segment that starts with `;`, no backslash, no
 * control character, and no percent-encoded `/`, `\`, `.`, `%` or control character, so no
 * upstream can normalize it into a different route than the one verified.
 */
export function pathSafetyProblem(path: string): string | undefined {
  if (path.length === 0 || path[0] !== '/') return 'path must start with /';
  if (path.length > MAX_PATH_LENGTH) return 'path too long';
  if (!PATH_CHARS.test(path)) return 'path has characters outside RFC 3986 pchar';
  if (BAD_PERCENT.test(path)) return 'path has malformed percent-encoding';
  if (DANGEROUS_ENCODING.test(path))
    return 'path has an encoded separator, dot, percent or control character';
  if (path.includes('//')) return 'path has an empty segment (//)';
  for (const segment of path.split('/')) {
    // Servlet containers (Tomcat, Jetty) drop `;` path parameters before resolving dot segments
    // and empty segments: upstream, `..;x` is `..` and `/a/;/b` is `/a/b`.
    const name = segment.split(';', 1)[0]!;
    if (name === '.' || name === '..') return 'path has a dot segment';
    if (name === '' && segment !== '') return 'path has an empty segment (;)';
  }
  return undefined;
}

/**
 * Throw unless the raw path is safe (see {@link pathSafetyProblem}).
 * @throws TrustplaneError `unsafe_request_path`
 */
export function assertSafePath(path: string): void {
  const problem = pathSafetyProblem(path);
  if (problem !== undefined)
    throw new TrustplaneError('unsafe_request_path', `unsafe request path: ${problem}`);
}
