import { McpAnswerFilter } from './answer-filter.js';
import type { McpListFilterSpec } from './decide-mcp.js';
import { McpSseFilter } from './filter-response.js';

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
 * `MAX_MCP_FILTERED_MESSAGE_BYTES`) are read, filtered and re-sent with a new length; other
 * answers pass unchanged.
 * @throws RangeError when a JSON answer is over the limit (the point answers 502)
 */
export async function filterMcpResponse(response: Response, spec: McpListFilterSpec): Promise<Response> {
  const filter = new McpAnswerFilter(spec, {
    contentType: response.headers.get('content-type'),
    contentEncoding: response.headers.get('content-encoding'),
  });
  if (response.body === null || filter.mode === 'pass') return response;
  if (filter.mode === 'refuse') {
    await response.body.cancel();
    throw new RangeError('a compressed MCP list answer cannot be filtered');
  }
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  const init = { status: response.status, statusText: response.statusText, headers };
  if (filter.mode === 'sse') return new Response(response.body.pipeThrough(mcpSseTransform(spec)), init);
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    try {
      filter.push(value);
    } catch (e) {
      await reader.cancel();
      throw e;
    }
  }
  return new Response(filter.end() as Uint8Array<ArrayBuffer>, init);
}
