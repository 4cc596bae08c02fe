/**
 * A real MCP server (the official TypeScript SDK, Streamable HTTP, stateless) with three tools. It
 * knows nothing of TrustPlane: the adapter in front of it enforces the per-tool policy.
 *
 *   node --import tsx examples/mcp-agent/server.ts
 *
 * Endpoints:
 *   POST /mcp        MCP over Streamable HTTP, answers as `text/event-stream`
 *   POST /mcp-json   the same server, answering `application/json`
 *   GET  /stats      what reached this server: one `{ method, tool? }` per JSON-RPC message
 *   POST /release    lets a `search_docs` call with `{"hold": true}` finish (see below)
 *
 * Tools:
 *   search_docs       `{ query, hold? }`: sends a progress notification at once, then (with
 *                     `hold: true`) waits until POST /release, at most 20 s, before it answers;
 *                     so a test sees the first event of the stream before the last is produced
 *   transfer_funds    `{ amount, to }`
 *   delete_repository `{ name }` (the policy forbids it)
 *
 * Environment: HOST, PORT (default 127.0.0.1:3001; PORT=0 picks a free port). The `listening` log
 * line on stderr carries the URL.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { buildToolServer, ToolServerState } from './tools.js';

const state = new ToolServerState();

function readJson(req: IncomingMessage, max = 1024 * 1024): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) req.destroy(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
    req.on('error', reject);
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/stats') {
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ received: state.received }));
    return;
  }
  if (req.method === 'POST' && path === '/release') {
    state.release();
    res.writeHead(204).end();
    return;
  }
  if (path !== '/mcp' && path !== '/mcp-json') {
    res.writeHead(404).end();
    return;
  }
  if (req.method !== 'POST') {
    // Stateless: no standalone SSE stream and no session to delete.
    res.writeHead(405, { allow: 'POST' }).end();
    return;
  }
  let body: unknown;
  try {
    body = await readJson(req);
  } catch {
    res.writeHead(400).end();
    return;
  }
  state.note(body);
  const server = buildToolServer(state);
  // No sessionIdGenerator: stateless (a fresh server and transport per request).
  const transport = new StreamableHTTPServerTransport({ enableJsonResponse: path === '/mcp-json' });
  res.on('close', () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
}

/**
 * Start the example MCP server.
 * @returns the listening server and its URL
 */
export async function start(host: string, port: number): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  const address = server.address() as AddressInfo;
  return { server, url: `http://${host}:${address.port}` };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { server, url } = await start(process.env.HOST ?? '127.0.0.1', Number(process.env.PORT ?? 3001));
  console.error(JSON.stringify({ level: 'info', msg: 'listening', url }));
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
  });
}
