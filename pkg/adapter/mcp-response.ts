import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { writeDeny } from '../internal/node-http/index.js';
import {
  filterJsonAnswerBytes,
  MAX_MCP_FILTERED_MESSAGE_BYTES,
  McpSseFilter,
  mediaTypeOf,
  type McpListFilterSpec,
} from '../mcp/index.js';
import { denyAnswer } from '../verifier/index.js';
import type { EnforcementRuntime } from './enforcement-runtime.js';

/**
 * Answer an allowed MCP request that has list calls (`tools/list`, `resources/list`,
 * `resources/templates/list`, `prompts/list`) with the upstream's answer filtered to what the
 * caller may use:
 * - `text/event-stream`: event by event as the upstream produces them (each complete event is
 *   written at once; nothing waits for the end of the stream);
 * - `application/json`: read (at most 8 MiB, else 502 `upstream_unavailable`), filtered, sent
 *   with its new length;
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
  const type = mediaTypeOf(upRes.headers['content-type']);
  const encoding = (upRes.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  const fail = (message: string) => {
    upRes.destroy();
    rt.log.warn('mcp answer not filtered', { request_id: requestId, error: message });
    if (!res.headersSent) writeDeny(res, denyAnswer({ reason: 'upstream_unavailable' }), { requestId });
    else res.destroy();
  };
  if (encoding !== 'identity' && (type === 'text/event-stream' || type === 'application/json')) {
    // A compressed list answer cannot be filtered: fail closed rather than pass it unfiltered.
    fail(`a list answer with Content-Encoding ${encoding} cannot be filtered`);
    return;
  }
  upRes.on('error', () => fail('the upstream response failed'));
  upRes.on('aborted', () => fail('the upstream response was aborted'));
  if (type === 'text/event-stream') {
    const filter = new McpSseFilter(lists);
    const out = { ...headers };
    delete out['content-length'];
    res.writeHead(status, out);
    // Events go out as soon as they are complete: flush the head now.
    res.flushHeaders();
    upRes.on('data', (chunk: Buffer) => {
      let bytes: Uint8Array;
      try {
        bytes = filter.push(chunk);
      } catch (e) {
        fail(e instanceof Error ? e.message : 'filter failed');
        return;
      }
      if (bytes.length > 0) res.write(bytes);
    });
    upRes.on('end', () => res.end(filter.end()));
    return;
  }
  if (type === 'application/json') {
    const chunks: Buffer[] = [];
    let size = 0;
    upRes.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_MCP_FILTERED_MESSAGE_BYTES) fail('the MCP answer is too large to filter');
      else chunks.push(chunk);
    });
    upRes.on('end', () => {
      if (size > MAX_MCP_FILTERED_MESSAGE_BYTES) return;
      const body = filterJsonAnswerBytes(Buffer.concat(chunks), lists);
      res.writeHead(status, { ...headers, 'content-length': String(body.length) });
      res.end(body);
    });
    return;
  }
  res.writeHead(status, headers);
  upRes.pipe(res);
}
