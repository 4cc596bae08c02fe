import { TrustplaneError } from '../authcore/errors.js';
import { getHeader, type HeaderSource } from './header-source.js';

// Headers that make common upstream stacks read the request differently from what was verified.
// Method overrides (Express method-override, Rails, Laravel, ASP.NET) turn a verified POST into a
// DELETE; URL rewrite headers (IIS, Symfony, Laravel, Zend) replace the verified path.
const METHOD_OVERRIDE = ['x-http-method-override', 'x-http-method', 'x-method-override'] as const;
const URL_REWRITE = ['x-original-url', 'x-rewrite-url'] as const;
// Tokens a `Connection` header may carry: options and hop-by-hop names. Any other name would have
// a proxy drop that end-to-end header after it was verified (`Connection: content-type`).
const CONNECTION_TOKENS = new Set([
  'close',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'transfer-encoding',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

/**
 * Why a header name is unsafe, or undefined. A name with `_` is refused: CGI, WSGI and Rack map
 * `-` and `_` to the same variable, so `X_TrustPlane_Subject` or `X_Tenant_Id` would merge with
 * (or replace) the header the verifier read. nginx drops such headers by default for the same
 * reason.
 */
export function headerNameProblem(name: string): string | undefined {
  return name.includes('_') ? 'header name with an underscore' : undefined;
}

/**
 * Why the request's headers could make an upstream read it differently, or undefined: a method
 * override header, a URL rewrite header, or a `Connection` header naming an end-to-end header.
 * Header names are checked by {@link headerNameProblem} where the enforcement point can list them.
 * @param headers lookup by lowercase name
 */
export function headerSafetyProblem(headers: HeaderSource): string | undefined {
  for (const name of METHOD_OVERRIDE) {
    if (getHeader(headers, name) !== undefined) return `method override header ${name}`;
  }
  for (const name of URL_REWRITE) {
    if (getHeader(headers, name) !== undefined) return `URL rewrite header ${name}`;
  }
  const connection = getHeader(headers, 'connection');
  if (connection !== undefined) {
    for (const token of connection.split(',')) {
      const t = token.trim().toLowerCase();
      if (t !== '' && !CONNECTION_TOKENS.has(t)) return 'Connection names an end-to-end header';
    }
  }
  return undefined;
}

/**
 * Throw unless the headers are safe (see {@link headerSafetyProblem}).
 * @throws TrustplaneError `unsafe_request_header`
 */
export function assertSafeHeaders(headers: HeaderSource): void {
  const problem = headerSafetyProblem(headers);
  if (problem !== undefined)
    throw new TrustplaneError('unsafe_request_header', `unsafe request header: ${problem}`);
}
