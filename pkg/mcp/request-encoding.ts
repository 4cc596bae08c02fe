const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
// RFC 9110 §5.6.4: qdtext and quoted-pair (obs-text included).
const QUOTED = '"(?:[\\t !#-\\[\\]-~\\x80-\\xff]|\\\\[\\t -~\\x80-\\xff])*"';
const MEDIA_TYPE = new RegExp(`^(${TOKEN})/(${TOKEN})`);
const PARAMETER = new RegExp(`[ \\t]*;[ \\t]*(${TOKEN})=(${TOKEN}|${QUOTED})`, 'y');

/** The value of a parameter: a token as is, a quoted string unquoted (RFC 9110 §5.6.4). */
const unquote = (v: string) => (v.startsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v);

/**
 * Why an MCP request body would not be read as the UTF-8 JSON the kernel decided on, or
 * `undefined` when it would: the media type must be `application/json` (any case, parameters
 * allowed) with no `charset` or one `charset=utf-8` (any case, quoted or not), and the body must
 * not be encoded (`Content-Encoding` absent or `identity`).
 *
 * The kernel parses the exact bytes the proof covers as UTF-8. A server's body parser decodes
 * them by the request's charset (body-parser accepts `utf-7`, `utf-16le`, `latin1`, … through
 * iconv-lite), and may inflate a compressed body: the same signed bytes would be another call.
 * A header the strict grammar does not read (an empty or repeated parameter, a bare `charset`)
 * is refused too, since a lenient parser may read a charset out of it.
 * @param contentType the request's `Content-Type` (undefined when absent)
 * @param contentEncoding the request's `Content-Encoding` (undefined when absent)
 * @returns a short description of the problem (for the deny's detail), or undefined
 * @example mcpRequestEncodingProblem('application/json; charset=utf-7', undefined) // 'the request charset is not UTF-8'
 */
export function mcpRequestEncodingProblem(
  contentType: string | undefined,
  contentEncoding: string | undefined,
): string | undefined {
  if (contentEncoding !== undefined && contentEncoding.trim().toLowerCase() !== 'identity') {
    return 'the request body is encoded (Content-Encoding)';
  }
  if (contentType === undefined) return 'the request has no Content-Type';
  const text = contentType.replace(/^[ \t]+|[ \t]+$/g, '');
  const media = MEDIA_TYPE.exec(text);
  if (media === null || media[1]!.toLowerCase() !== 'application' || media[2]!.toLowerCase() !== 'json') {
    return 'the request media type is not application/json';
  }
  let at = media[0].length;
  let charsets = 0;
  while (at < text.length) {
    PARAMETER.lastIndex = at;
    const p = PARAMETER.exec(text);
    if (p === null) return 'the request Content-Type is not well formed';
    at = PARAMETER.lastIndex;
    if (p[1]!.toLowerCase() !== 'charset') continue;
    charsets += 1;
    if (charsets > 1 || unquote(p[2]!).toLowerCase() !== 'utf-8') return 'the request charset is not UTF-8';
  }
  return undefined;
}
