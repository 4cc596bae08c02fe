import type { McpListFilterSpec } from './decide-mcp.js';
import { filterJsonAnswerBytes, McpSseFilter, MAX_MCP_FILTERED_MESSAGE_BYTES } from './filter-response.js';

/** The media type of a `Content-Type` value, lowercase, without parameters. */
export function mediaTypeOf(contentType: string | null | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * A `TransformStream` that filters a `text/event-stream` answer event by event (see
 * {@link McpSseFilter}): each event goes out as soon as it is complete.
 */
export function mcpSseTransform(spec: McpListFilterSpec): TransformStream<Uint8Array, Uint8Array> {
  const filter = new McpSseFilter(spec);
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      const out = filter.push(chunk);
      if (out.length > 0) controller.enqueue(out);
    },
    flush(controller) {
      const out = filter.end();
      if (out.length > 0) controller.enqueue(out);
    },
  });
}

/**
 * Filter an MCP endpoint's Web `Response` to a request with list calls (a compressed JSON or SSE
 * answer, which cannot be read, is refused: RangeError): `text/event-stream`
 * answers stream through {@link mcpSseTransform}; `application/json` answers (at most
 * {@link MAX_MCP_FILTERED_MESSAGE_BYTES}) are read, filtered and re-sent with a new length; other
 * answers pass unchanged.
 * @throws RangeError when a JSON answer is over the limit (the point answers 502)
 */
export async function filterMcpResponse(response: Response, spec: McpListFilterSpec): Promise<Response> {
  const type = mediaTypeOf(response.headers.get('content-type'));
  if (response.body === null || (type !== 'text/event-stream' && type !== 'application/json'))
    return response;
  const encoding = (response.headers.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') {
    // A compressed list answer cannot be filtered: fail closed rather than pass it unfiltered.
    await response.body.cancel();
    throw new RangeError('a compressed MCP list answer cannot be filtered');
  }
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  const init = { status: response.status, statusText: response.statusText, headers };
  if (type === 'text/event-stream')
    return new Response(response.body.pipeThrough(mcpSseTransform(spec)), init);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > MAX_MCP_FILTERED_MESSAGE_BYTES) {
      await reader.cancel();
      throw new RangeError('the MCP answer is too large to filter');
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.length;
  }
  return new Response(filterJsonAnswerBytes(bytes, spec) as Uint8Array<ArrayBuffer>, init);
}
