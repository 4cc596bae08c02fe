// The one definition of a safe raw request path, shared by the verifier (pkg/proof) and the
// policy bundle's path templates (pkg/bundle), so a template can never name a path the verifier refuses.

/** Longest raw path accepted. */
export const MAX_PATH_LENGTH = 4096;

// RFC 3986 pchar plus '/', without ';' (servlet containers strip `;` path parameters before
// routing, so `/admin;x` would be `/admin` upstream while the verifier routes `admin;x`).
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,=:@/%]*$/;
const BAD_PERCENT = /%(?![0-9a-fA-F]{2})/;
const ESCAPE = /%([0-9A-Fa-f]{2})/g;
// Characters a path may carry unencoded (RFC 3986 unreserved, sub-delims, ':' and '@'), plus ';'.
// A percent-encoded spelling of one of them is a second spelling of the same path: a decoding
// upstream (Hono, Go net/http, Flask, nginx) would route `/%61dmin` as `/admin` while the route
// table matches the raw segment. So each path has exactly one accepted spelling.
const NEEDS_NO_ENCODING = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/;

function escapeProblem(path: string): string | undefined {
  for (const m of path.matchAll(ESCAPE)) {
    const hex = m[1]!;
    const code = parseInt(hex, 16);
    // '/', '\', '.', '%' and control characters: the upstream could split or resolve differently.
    if (code === 0x2f || code === 0x5c || code === 0x2e || code === 0x25 || code < 0x20 || code === 0x7f) {
      return 'path has an encoded separator, dot, percent or control character';
    }
    if (NEEDS_NO_ENCODING.test(String.fromCharCode(code))) {
      return 'path percent-encodes a character that needs no encoding';
    }
    // RFC 3986 §2.1: uppercase hex is the normal form; a lowercase spelling is a second spelling.
    if (hex !== hex.toUpperCase()) return 'path has a lowercase percent-encoding';
  }
  return undefined;
}

/**
 * Why a raw request path is unsafe, or undefined when it is safe. A safe path starts with `/`,
 * uses only RFC 3986 path characters except `;` (no path parameters), has no `//`, no `.` or `..`
 * segment, no backslash and no control character. Percent-encodings are allowed only for
 * characters that cannot appear unencoded, in uppercase hex, and never for `/`, `\`, `.`, `%` or a
 * control character. So every path has exactly one spelling, and no upstream can decode or
 * normalize it into a different route than the one verified (letter case and HEAD-as-GET are
 * checked against the route table: `ambiguous_request_path`).
 */
export function pathSafetyProblem(path: string): string | undefined {
  if (path.length === 0 || path[0] !== '/') return 'path must start with /';
  if (path.length > MAX_PATH_LENGTH) return 'path too long';
  if (path.includes(';')) return 'path has a ; path parameter';
  if (!PATH_CHARS.test(path)) return 'path has characters outside RFC 3986 pchar';
  if (BAD_PERCENT.test(path)) return 'path has malformed percent-encoding';
  if (path.includes('%')) {
    const problem = escapeProblem(path);
    if (problem !== undefined) return problem;
  }
  if (path.includes('//')) return 'path has an empty segment (//)';
  for (const segment of path.split('/')) {
    if (segment === '.' || segment === '..') return 'path has a dot segment';
  }
  return undefined;
}
