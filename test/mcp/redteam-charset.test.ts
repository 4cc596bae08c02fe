import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { Hono } from 'hono';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildToolServer, ToolServerState } from '../../examples/mcp-agent/tools.js';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import { ProtectedClient, selfIssuedPassports } from '../../pkg/client/index.js';
import { trustplane as honoTrustplane, type TrustplaneEnv } from '../../pkg/middleware/hono/index.js';
import { trustplane } from '../../pkg/middleware/node/index.js';
import { sendSigned, startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import { createWorld, NOW, SOFTWARE_ISSUER, TRUST_DOMAIN, type World } from '../helpers/fixture.js';
import { MCP_AUDIENCE, mcpPolicyPatch } from './mcp-cases.js';

// Red team mcp-05 / mcp-06 (issue 17): a body signed and decided as UTF-8 JSON, sent with
// `Content-Type: application/json; charset=utf-7`, is decoded by express.json() (body-parser,
// iconv-lite) as UTF-7: a `search_docs` call becomes a `delete_repository` call, an argument
// in bounds becomes one out of bounds. Run at the adapter (proxy) in front of the SDK's own
// Express app (createMcpExpressApp: express.json()), and at the Node middleware in front of
// express.json(); the same kernel check at the Hono middleware (Web Request; Request.json() reads
// UTF-8 whatever the charset, so there it is a refusal, not a differential). One adapter and two
// Express servers for the file.

let world: World;
let adapter: TestAdapter;
let upstream: http.Server;
let node: http.Server;
let nodeBase: string;
const upstreamState = new ToolServerState();
const nodeState = new ToolServerState();
const honoState = new ToolServerState();
const HONO_BASE = 'http://tools.local';
let hono: Hono<TrustplaneEnv>;

/** The SDK's Streamable HTTP transport over what express.json() parsed (the SDK's own recipe). */
const mcpHandler = (state: ToolServerState) => async (req: express.Request, res: express.Response) => {
  state.note(req.body);
  const mcp = buildToolServer(state);
  const transport = new StreamableHTTPServerTransport({ enableJsonResponse: true });
  res.on('close', () => {
    void transport.close();
    void mcp.close();
  });
  await mcp.connect(transport);
  await transport.handleRequest(req, res, req.body);
};

async function listen(app: express.Express): Promise<{ server: http.Server; base: string }> {
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  world = await createWorld({ policyPatch: mcpPolicyPatch });
  const sdkApp = createMcpExpressApp({ host: '127.0.0.1' });
  sdkApp.post('/mcp', mcpHandler(upstreamState));
  const up = await listen(sdkApp);
  upstream = up.server;
  adapter = await startTestAdapter(world, { upstream: up.base });
  const app = express();
  app.use(
    trustplane({
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
    }),
  );
  app.use(express.json());
  app.post('/mcp', mcpHandler(nodeState));
  const n = await listen(app);
  node = n.server;
  nodeBase = n.base;
  hono = new Hono<TrustplaneEnv>();
  hono.use(
    '*',
    honoTrustplane({
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      clock: () => NOW,
    }),
  );
  hono.post('/mcp', async (c) => {
    const body: unknown = await c.req.raw.clone().json();
    honoState.note(body);
    const server = buildToolServer(honoState);
    const transport = new WebStandardStreamableHTTPServerTransport({ enableJsonResponse: true });
    await server.connect(transport);
    return transport.handleRequest(c.req.raw, { parsedBody: body });
  });
}, 60_000);

afterAll(async () => {
  await adapter?.adapter.close();
  for (const s of [upstream, node]) {
    s?.closeAllConnections();
    s?.close();
  }
});

/** Sign `POST /mcp` with `body` and `headers` as a client would, and send it to `base`. */
async function post(base: string, body: string, headers: Record<string, string>) {
  const signed = await sign(base, body, headers);
  if (base === HONO_BASE) {
    const r = await hono.request(new Request(signed.url, { method: 'POST', headers: signed.headers, body }));
    const h: Record<string, string> = {};
    r.headers.forEach((v, k) => (h[k] = v));
    return { status: r.status, headers: h, body: await r.text() };
  }
  return sendSigned(base, signed, { body });
}

/** The URL and headers a client sends for `POST /mcp` with `body` and `headers`. */
async function sign(base: string, body: string, headers: Record<string, string>) {
  let captured: { url: string; init: RequestInit } | undefined;
  const client = new ProtectedClient({
    baseUrl: base,
    audience: MCP_AUDIENCE,
    passports: selfIssuedPassports({
      issuer: SOFTWARE_ISSUER,
      subject: 'service:orders-client',
      trustDomain: TRUST_DOMAIN,
      signingKey: world.caller,
      kid: 'caller-1',
      clock: () => NOW,
    }),
    fetch: (url, init) => {
      captured = { url: String(url), init: init ?? {} };
      return Promise.resolve(new Response(null, { status: 204 }));
    },
  });
  await client.request({ method: 'POST', path: '/mcp', routeId: 'mcp.post', headers, body });
  const signed: Record<string, string> = {};
  new Headers(captured!.init.headers).forEach((v, k) => (signed[k] = v));
  return { url: captured!.url, method: 'POST', headers: signed };
}

/** UTF-7: `+<base64 of UTF-16BE>-` is a run of UTF-16 code units; the rest is ASCII as is. */
const utf7 = (s: string) => `+${Buffer.from(s, 'utf16le').swap16().toString('base64').replace(/=+$/, '')}-`;

const FORBIDDEN_TOOL = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"${utf7(
  '"},"name":"delete_repository","arguments":{"name":"prod-db',
)}"}}}`;
const ARGUMENT_OUT_OF_BOUNDS = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"transfer_funds","arguments":{"amount":5,"to":"acct-1","x":"${utf7(
  '","amount":1000000,"to":"evil-iban","y":"',
)}"}}}`;
const PING =
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"q"}}}';
const accept = 'application/json, text/event-stream';

const points = [
  {
    name: 'the adapter (proxy) in front of createMcpExpressApp',
    base: () => adapter.base,
    state: upstreamState,
  },
  { name: 'the Node middleware in front of express.json()', base: () => nodeBase, state: nodeState },
  { name: 'the Hono middleware (a Web Request)', base: () => HONO_BASE, state: honoState },
];

describe.each(points)('attack: a request charset other than UTF-8 on an MCP route, at $name', (point) => {
  it.each([
    ['a forbidden tool hidden in UTF-7', FORBIDDEN_TOOL, 'application/json; charset=utf-7'],
    ['an out-of-bounds argument hidden in UTF-7', ARGUMENT_OUT_OF_BOUNDS, 'application/json; charset=utf-7'],
    ['charset=utf-16le', PING, 'application/json; charset=utf-16le'],
    ['charset=latin1', PING, 'application/json; charset=latin1'],
    ['a repeated charset', PING, 'application/json; charset=utf-8; charset=utf-7'],
    ['text/plain', PING, 'text/plain'],
    ['application/json-seq', PING, 'application/json-seq'],
    ['an unparsable Content-Type', PING, 'application/json; charset'],
  ])('%s is refused mcp_invalid_jsonrpc (400) and reaches no handler', async (_label, body, contentType) => {
    const before = point.state.received.length;
    const r = await post(point.base(), body, { 'content-type': contentType, accept });
    expect({
      status: r.status,
      reason: r.headers['x-trustplane-reason'],
      reached: point.state.received.slice(before),
    }).toEqual({ status: 400, reason: 'mcp_invalid_jsonrpc', reached: [] });
  });

  it('a compressed request body (Content-Encoding: gzip) is refused and reaches no handler', async () => {
    const before = point.state.received.length;
    const r = await post(point.base(), PING, {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      accept,
    });
    expect({
      status: r.status,
      reason: r.headers['x-trustplane-reason'],
      reached: point.state.received.slice(before),
    }).toEqual({ status: 400, reason: 'mcp_invalid_jsonrpc', reached: [] });
  });

  it.each([
    ['application/json', {}],
    ['Application/JSON; Charset="UTF-8"', {}],
    ['application/json;charset=utf-8', { 'content-encoding': 'identity' }],
  ])(
    '%s is admitted and the handler gets exactly the call the kernel decided',
    async (contentType, extra) => {
      const before = point.state.received.length;
      const r = await post(point.base(), FORBIDDEN_TOOL, { 'content-type': contentType, accept, ...extra });
      expect(r.status).toBe(200);
      expect(point.state.received.slice(before)).toEqual([{ method: 'tools/call', tool: 'search_docs' }]);
    },
  );
});
