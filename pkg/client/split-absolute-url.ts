// scheme://authority[/path][?query], no fragment; the authority is host[:port] without userinfo.
const ABSOLUTE_URL = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#\s]+)([^?#\s]*)(?:\?([^#\s]*))?$/;
const AUTHORITY =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/** An absolute http(s) URL split without normalization. */
export interface SplitUrl {
  readonly scheme: 'http' | 'https';
  readonly authority: string;
  readonly path: string;
  readonly query: string | undefined;
}

/**
 * Split an absolute http(s) URL by text (WHATWG URL parsing would resolve dot segments and rewrite
 * `\`). Scheme and authority are lowercased; userinfo and fragments are refused.
 * @throws TypeError
 */
export function splitAbsoluteUrl(url: string, what: string): SplitUrl {
  const m = typeof url === 'string' ? ABSOLUTE_URL.exec(url) : null;
  if (!m) throw new TypeError(`${what} must be an absolute http(s) URL without a fragment`);
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') throw new TypeError(`${what} scheme must be http or https`);
  if (m[2]!.includes('@')) throw new TypeError(`${what} must not carry userinfo`);
  if (!AUTHORITY.test(m[2]!)) throw new TypeError(`${what} has an invalid host`);
  return { scheme, authority: m[2]!.toLowerCase(), path: m[3]!, query: m[4] };
}
