/**
 * True when `raw` is a resource URI in canonical form: it parses as a WHATWG URL and serializes
 * back to exactly the same text (no dot segments, raw or percent-encoded, no backslashes, lowercase
 * scheme and host, no default port, nothing the parser would rewrite), and has no percent-encoded
 * `/` or `\` (a server that decodes a URI template variable would see another path).
 *
 * The official TypeScript SDK looks a resource up by `new URL(uri).toString()`; a rule that
 * matched the raw text of a non-canonical URI (`file:///docs/../secret`) would admit a URI the
 * server resolves elsewhere. Refusing anything not canonical makes the raw text and the server's
 * view the same string, so a rule's pattern is matched against what the server will use.
 * @param raw the URI as the request carries it
 * @returns whether the rules may be matched against it
 * @example isCanonicalResourceUri('file:///docs/a.md') // true
 * @example isCanonicalResourceUri('file:///docs/../secret') // false
 */
export function isCanonicalResourceUri(raw: string): boolean {
  let href: string;
  try {
    href = new URL(raw).href;
  } catch {
    return false;
  }
  return href === raw && !/%(?:2f|5c)/i.test(raw);
}
