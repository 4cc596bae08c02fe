import http, { type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filterMcpAnswer } from '../../pkg/internal/node-http/index.js';
import { MAX_MCP_FILTERED_MESSAGE_BYTES, type McpListFilterSpec } from '../../pkg/mcp/index.js';
import { rawSend } from '../helpers/adapter.js';

// The one Node answer filter (the adapter, the Node middleware and the Fastify plugin use it) on a
// plain Node server over loopback: each case's writer is what a handler, a framework or the
// adapter's pipe does to `res`; the filter is installed before it writes, as the points do.

const spec: McpListFilterSpec = {
  requests: new Map([[1, 'tools/list']]),
  visible: (_kind, name) => name !== 'secret',
};
const listAnswer = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  result: { tools: [{ name: 'ok' }, { name: 'secret' }] },
});
const filtered = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'ok' }] } });

let writer: (res: ServerResponse) => void = (res) => res.end();
const failures: string[] = [];
let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    filterMcpAnswer(res, spec, { onFailure: (m) => failures.push(m) });
    writer(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const get = () => rawSend(base, { method: 'POST', target: '/mcp', body: '{}' });

describe('filterMcpAnswer (the Node answer filter)', () => {
  it('JSON written in pieces (strings and bytes, with callbacks) goes out filtered with its new Content-Length', async () => {
    const called: string[] = [];
    writer = (res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(listAnswer.length) });
      res.write(listAnswer.slice(0, 10), 'utf8', () => called.push('write'));
      res.write(Buffer.from(listAnswer.slice(10, 30)));
      res.end(listAnswer.slice(30), () => called.push('end'));
    };
    const r = await get();
    expect([r.status, r.body, r.headers['content-length']]).toEqual([200, filtered, String(filtered.length)]);
    expect(called.sort()).toEqual(['end', 'write']);
  });

  it('an answer the filter does not change keeps its bytes and its Content-Length', async () => {
    const other = JSON.stringify({ jsonrpc: '2.0', id: 2, result: { tools: [{ name: 'secret' }] } });
    writer = (res) => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('content-length', String(other.length));
      res.end(other);
    };
    const r = await get();
    expect([r.status, r.body, r.headers['content-length']]).toEqual([200, other, String(other.length)]);
  });

  it('headers as a raw array, the status message and an implicit head are kept', async () => {
    writer = (res) => {
      res.writeHead(201, 'Made', ['Content-Type', 'application/json', 'X-A', '1', 'X-A', '2']);
      res.end(listAnswer);
    };
    const r = await get();
    expect([r.status, r.body, r.headers['x-a']]).toEqual([201, filtered, '1, 2']);
    writer = (res) => {
      res.statusCode = 202;
      res.setHeader('content-type', 'application/json; charset=utf-8');
      res.end(listAnswer);
    };
    const implicit = await get();
    expect([implicit.status, implicit.body]).toEqual([202, filtered]);
    writer = (res) => {
      // As Fastify ends a streamed payload: end(null, null, null).
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(listAnswer);
      res.end(null, null as unknown as BufferEncoding, null as unknown as () => void);
    };
    const nullEnd = await get();
    expect([nullEnd.status, nullEnd.body]).toEqual([200, filtered]);
  });

  it('an answer that is neither JSON nor SSE passes untouched', async () => {
    writer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(listAnswer.length) });
      res.write(listAnswer.slice(0, 5));
      res.end(listAnswer.slice(5));
    };
    const r = await get();
    expect([r.status, r.body, r.headers['content-length']]).toEqual([
      200,
      listAnswer,
      String(listAnswer.length),
    ]);
  });

  it('SSE: filtered event by event, Content-Length dropped, other events byte for byte', async () => {
    const progress =
      'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n';
    writer = (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-length': '9999' }).flushHeaders();
      res.write(progress.slice(0, 20));
      res.write(progress.slice(20));
      res.end(`data: ${listAnswer}\n\n`);
    };
    const r = await get();
    expect(r.headers['content-length']).toBeUndefined();
    expect(r.body).toBe(`${progress}data: ${filtered}\n\n`);
  });

  it('attack: a compressed list answer is 502 upstream_unavailable with none of the writer headers', async () => {
    const before = failures.length;
    writer = (res) => {
      res.setHeader('set-cookie', 'session=1');
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'br' });
      res.write('compressed bytes', () => {
        res.end('more');
      });
    };
    const r = await get();
    expect([r.status, r.headers['x-trustplane-reason']]).toEqual([502, 'upstream_unavailable']);
    expect(r.headers['set-cookie']).toBeUndefined();
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(r.body)).toMatchObject({ allowed: false, reason: 'upstream_unavailable' });
    expect(failures.length).toBe(before + 1);
  });

  it('a JSON answer over the limit is 502 upstream_unavailable, not sent in part', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    writer = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i <= MAX_MCP_FILTERED_MESSAGE_BYTES / chunk.length; i++) res.write(chunk);
      res.end();
    };
    const r = await get();
    expect([r.status, r.headers['x-trustplane-reason']]).toEqual([502, 'upstream_unavailable']);
  });

  it('an SSE event over the limit after the head went out aborts the answer', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    writer = (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"jsonrpc":"2.0","method":"notifications/progress"}\n\ndata: ');
      for (let i = 0; i <= MAX_MCP_FILTERED_MESSAGE_BYTES / chunk.length; i++) res.write(chunk);
      res.end('\n\n');
    };
    await expect(get()).rejects.toThrow();
  });
});
