import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { filterMcpAnswer } from '../internal/node-http/index.js';
import type { McpListFilterSpec } from '../mcp/index.js';
import type { EnforcementRuntime } from './enforcement-runtime.js';

/**
 * Answer an allowed MCP request that has list calls (`tools/list`, `resources/list`,
 * `resources/templates/list`, `prompts/list`) with the upstream's answer filtered to what the
 * caller may use, through the one Node answer filter of the Node points (`filterMcpAnswer`, shared
 * with the Node middleware and the Fastify plugin):
 * - `text/event-stream`: event by event as the upstream produces them (each complete event is
 *   written at once; nothing waits for the end of the stream);
 * - `application/json`: read (at most 8 MiB, else 502 `upstream_unavailable`), filtered, sent
 *   with its new length;
 * - a compressed JSON or SSE answer: 502 `upstream_unavailable`, never passed unfiltered;
 * - anything else: piped unchanged.
 */
export function respondWithMcpFilter(
  rt: EnforcementRuntime,
  res: ServerResponse,
  upRes: IncomingMessage,
  status: number,
  headers: OutgoingHttpHeaders,
  lists: McpListFilterSpec,
  requestId: string,
): void {
  const filtering = filterMcpAnswer(res, lists, {
    requestId,
    onFailure: (message) => {
      upRes.destroy();
      rt.log.warn('mcp answer not filtered', { request_id: requestId, error: message });
    },
  });
  upRes.on('error', () => filtering.fail('the upstream response failed'));
  upRes.on('aborted', () => filtering.fail('the upstream response was aborted'));
  res.writeHead(status, headers);
  if (filtering.failed) return;
  // An event stream's head goes out now (the filter holds a JSON answer's until its new length).
  res.flushHeaders();
  upRes.pipe(res);
}
