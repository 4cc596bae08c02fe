import type { OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { McpAnswerFilter, type McpListFilterSpec } from '../../mcp/index.js';
import { denyAnswer } from '../../verifier/index.js';
import { writeDeny } from './write-deny.js';

/** Options for {@link filterMcpAnswer}. */
export interface FilterMcpAnswerOptions {
  /** Echo this request id (`X-Request-Id`) on the 502 (the adapter's). */
  readonly requestId?: string | undefined;
  /** Told why an answer could not be filtered (before the 502 or the abort): for the point's log. */
  readonly onFailure?: (message: string) => void;
}

/** What {@link filterMcpAnswer} hands back to the point. */
export interface McpAnswerFiltering {
  /** The answer could not be filtered: 502 `upstream_unavailable` if nothing was sent, else aborted. */
  fail(message: string): void;
  /** Whether the answer was refused or aborted (the writer's further writes are dropped). */
  readonly failed: boolean;
}

type Callback = (error?: Error | null) => void;
type Chunk = string | Uint8Array;

const headerText = (v: number | string | string[] | undefined): string | undefined =>
  v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : String(v);

/** Put the headers of a `writeHead(status, [message], headers)` call into the response's header map. */
function applyHeaders(res: ServerResponse, headers: unknown): void {
  if (headers === undefined || headers === null) return;
  if (Array.isArray(headers)) {
    // [[name, value], …] or [name, value, name, value, …]; a repeated name keeps every value.
    const pairs: [string, string][] = Array.isArray(headers[0])
      ? (headers as [string, string][])
      : Array.from({ length: Math.floor(headers.length / 2) }, (_, i) => [
          String(headers[2 * i]),
          String(headers[2 * i + 1]),
        ]);
    const grouped = new Map<string, { name: string; values: string[] }>();
    for (const [name, value] of pairs) {
      const key = name.toLowerCase();
      const entry = grouped.get(key) ?? { name, values: [] };
      entry.values.push(String(value));
      grouped.set(key, entry);
    }
    for (const { name, values } of grouped.values()) {
      res.setHeader(name, values.length === 1 ? values[0]! : values);
    }
    return;
  }
  for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
    if (value !== undefined) res.setHeader(name, value as OutgoingHttpHeader);
  }
}

const asBytes = (chunk: Chunk, encoding: BufferEncoding | undefined): Uint8Array =>
  typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : chunk;

const later = (cb: Callback | undefined) => {
  if (cb !== undefined) process.nextTick(cb);
};

/**
 * Filter the answer written on a Node response to an allowed MCP request with list calls
 * (`tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`) to what the caller
 * may use, as its writer produces it: the one Node answer filter of the adapter (upstream answers
 * piped in), the Node middleware (the handler's `res`) and the Fastify plugin (`reply.raw`, whether
 * the route replies through `reply.send()` or takes the reply over).
 *
 * It wraps `res.writeHead`, `res.write`, `res.end` and `res.flushHeaders` and decides from the
 * answer's head ({@link McpAnswerFilter}, the same choice as the Web points):
 * - `text/event-stream`: each event is written as soon as it is complete (nothing waits for the
 *   end of the stream), `Content-Length` removed;
 * - `application/json`: held until `end()` (at most 8 MiB), filtered, sent with its new
 *   `Content-Length` (unchanged when nothing was hidden);
 * - a compressed JSON or SSE answer, or one over the limit before anything was sent: 502
 *   `upstream_unavailable` (the kernel's deny answer, none of the writer's headers); a stream over
 *   the limit after its head went out is aborted. The writer's further writes are dropped;
 * - anything else: the originals are put back, the answer passes untouched.
 * @param res the response to filter
 * @param spec the allow's list filter (`enforcement.mcp.lists`)
 * @param options the request id to echo, a failure observer
 * @returns a handle to fail the answer from outside (an upstream that broke off)
 * @example
 * const lists = enforcement.mcp?.lists
 * if (lists !== undefined) filterMcpAnswer(res, lists)
 * next()
 */
export function filterMcpAnswer(
  res: ServerResponse,
  spec: McpListFilterSpec,
  options: FilterMcpAnswerOptions = {},
): McpAnswerFiltering {
  const original = {
    writeHead: res.writeHead,
    write: res.write,
    end: res.end,
    flushHeaders: res.flushHeaders,
  };
  const send = (bytes: Uint8Array, callback: Callback | undefined): boolean =>
    (original.write as (...a: unknown[]) => boolean).call(res, bytes, callback);
  const finish = (bytes: Uint8Array, callback: Callback | undefined): ServerResponse =>
    (original.end as (...a: unknown[]) => ServerResponse).call(res, bytes, callback);
  let filter: McpAnswerFilter | undefined;
  let failed = false;

  const restore = () => {
    res.writeHead = original.writeHead;
    res.write = original.write;
    res.end = original.end;
    res.flushHeaders = original.flushHeaders;
  };

  const fail = (message: string) => {
    if (failed) return;
    failed = true;
    options.onFailure?.(message);
    restore();
    if (res.headersSent) res.destroy();
    else if (!res.writableEnded && !res.destroyed) {
      // The kernel's deny answer alone: none of the writer's headers (its type, its encoding).
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      writeDeny(res, denyAnswer({ reason: 'upstream_unavailable' }), {
        ...(options.requestId !== undefined ? { requestId: options.requestId } : {}),
      });
    }
    // The writer goes on as if its answer were sent; nothing more reaches the client.
    res.writeHead = (() => res) as unknown as ServerResponse['writeHead'];
    res.write = ((_c: Chunk, e?: BufferEncoding | Callback, cb?: Callback) => {
      later(typeof e === 'function' ? e : cb);
      return true;
    }) as ServerResponse['write'];
    res.end = ((c?: Chunk | Callback, e?: BufferEncoding | Callback, cb?: Callback) => {
      later(typeof c === 'function' ? c : typeof e === 'function' ? e : cb);
      return res;
    }) as ServerResponse['end'];
    res.flushHeaders = () => {};
  };

  /** The head is complete (explicit `writeHead` or the first write): choose the mode. */
  const start = (): McpAnswerFilter => {
    const f = new McpAnswerFilter(spec, {
      contentType: headerText(res.getHeader('content-type')),
      contentEncoding: headerText(res.getHeader('content-encoding')),
    });
    filter = f;
    if (f.mode === 'pass') restore();
    else if (f.mode === 'refuse') fail('a compressed MCP list answer cannot be filtered');
    else if (f.mode === 'sse') res.removeHeader('content-length');
    return f;
  };

  res.writeHead = function writeHead(statusCode: number, ...rest: unknown[]): ServerResponse {
    if (failed) return res;
    const message = typeof rest[0] === 'string' ? rest[0] : undefined;
    applyHeaders(res, message !== undefined ? rest[1] : rest[0]);
    res.statusCode = statusCode;
    if (message !== undefined) res.statusMessage = message;
    if (filter !== undefined) return res; // a later head of a held JSON answer: it replaces the first
    const f = start();
    // SSE and untouched answers: the head goes out now; a JSON answer's waits for its new length.
    if (f.mode === 'pass' || f.mode === 'sse') original.writeHead.call(res, res.statusCode);
    return res;
  } as unknown as ServerResponse['writeHead'];

  res.flushHeaders = function flushHeaders() {
    if (failed) return;
    const f = filter ?? start();
    if (f.mode === 'pass' || f.mode === 'sse') original.flushHeaders.call(res);
  };

  res.write = function write(...args: [Chunk, (BufferEncoding | Callback)?, Callback?]) {
    const [chunk, e, cb] = args;
    const encoding = typeof e === 'string' ? e : undefined;
    const callback = typeof e === 'function' ? e : cb;
    const f = filter ?? start();
    // Refused (the stub drops it) or untouched (the original writes it): as the writer called it.
    if (failed || f.mode === 'pass') return (res.write as (...a: unknown[]) => boolean)(...args);
    let out: Uint8Array;
    try {
      out = f.push(asBytes(chunk, encoding));
    } catch (err) {
      fail(err instanceof Error ? err.message : 'the MCP answer could not be filtered');
      later(callback);
      return true;
    }
    if (out.length > 0) return send(out, callback);
    later(callback);
    return true;
  } as unknown as ServerResponse['write'];

  res.end = function end(
    ...args: [(Chunk | Callback | null)?, (BufferEncoding | Callback | null)?, Callback?]
  ) {
    const [c, e, cb] = args;
    // `end(null, null, null)` (Fastify, after a stream) is an end without a chunk.
    const chunk = typeof c === 'function' || c === null ? undefined : c;
    const encoding = typeof e === 'string' ? e : undefined;
    const callback = typeof c === 'function' ? c : typeof e === 'function' ? e : cb;
    const f = filter ?? start();
    if (failed || f.mode === 'pass') return (res.end as (...a: unknown[]) => ServerResponse)(...args);
    let body: Uint8Array;
    try {
      const head = chunk !== undefined ? f.push(asBytes(chunk, encoding)) : new Uint8Array(0);
      const rest = f.end();
      body = head.length === 0 ? rest : rest.length === 0 ? head : Buffer.concat([head, rest]);
    } catch (err) {
      fail(err instanceof Error ? err.message : 'the MCP answer could not be filtered');
      return res.end(callback);
    }
    if (f.mode === 'json') {
      if (f.changed) {
        if (res.hasHeader('transfer-encoding')) res.removeHeader('content-length');
        else res.setHeader('content-length', String(body.length));
      }
      original.writeHead.call(res, res.statusCode);
    }
    restore();
    return finish(body, callback);
  } as unknown as ServerResponse['end'];

  return {
    fail,
    get failed() {
      return failed;
    },
  };
}
