/** Parts of a request target, taken from the raw URL text (never re-normalized). */
export interface RequestTarget {
  readonly scheme: string;
  readonly authority: string;
  readonly path: string;
  readonly query: string;
}

const TARGET = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#\s]+)(\/[^?#\s]*)?(?:\?([^#\s]*))?$/;

/**
 * Split an absolute URL into scheme, authority, raw path and raw query without any normalization
 * (WHATWG URL parsing would resolve dot segments and rewrite `\`, hiding what is actually sent).
 * Scheme and authority are lowercased; a missing path is `/`.
 * @throws TypeError for anything that is not an absolute http(s) URL without fragment
 */
export function parseRequestTarget(url: string): RequestTarget {
  const m = TARGET.exec(url);
  if (!m) throw new TypeError('url must be an absolute http(s) URL without a fragment');
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') throw new TypeError('url scheme must be http or https');
  return { scheme, authority: m[2]!.toLowerCase(), path: m[3] ?? '/', query: m[4] ?? '' };
}
