import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildToolServer, ToolServerState } from '../../examples/mcp-agent/tools.js';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import { trustplane } from '../../pkg/middleware/fastify/index.js';
import { sendSigned } from '../helpers/adapter.js';
import { createWorld, NOW, type World } from '../helpers/fixture.js';
import { mcpCaseTable, mcpPolicyPatch, signedCall } from './mcp-cases.js';
import { mcpNodeAnswerCases, unfilteredToolsAnswer, type McpNodeHarness } from './node-answer-cases.js';

// The same case table as test/mcp/adapter.test.ts, on the Fastify plugin in a real Fastify 5 app
// over loopback, with the example MCP server (official SDK) mounted in-process both ways a Fastify
// app does it: POST /mcp (SSE answers) takes the reply over (`reply.hijack()`) and hands the raw
// request and response to the SDK's Node transport; POST /mcp-json (JSON answers) runs the
// Web-standard transport and sends its answer through `reply.send()` as a string, whose
// Content-Length Fastify computes before the plugin filters it.

let world: World;
let app: FastifyInstance;
let base: string;
const state = new ToolServerState();
const audit = new MemoryAuditSink();
let compress = false;
let sendResponse = false;

beforeAll(async () => {
  world = await createWorld({ policyPatch: mcpPolicyPatch });
  app = Fastify();
  await app.register(trustplane, {
    trust: world.trust,
    policy: world.policy,
    replayStore: new MemoryReplayStore(),
    audit,
    clock: () => NOW,
  });
  app.post('/mcp', async (request, reply) => {
    state.note(request.body);
    const mcp = buildToolServer(state);
    const transport = new StreamableHTTPServerTransport({});
    reply.raw.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    reply.hijack();
    await mcp.connect(transport);
    await transport.handleRequest(request.raw, reply.raw, request.body);
  });
  app.post('/mcp-json', async (request, reply) => {
    state.note(request.body);
    if (compress) {
      // What a compression plugin behind the point sends.
      compress = false;
      const id = (request.body as { id?: unknown }).id;
      return reply
        .header('content-type', 'application/json')
        .header('content-encoding', 'gzip')
        .send(unfilteredToolsAnswer(id));
    }
    const mcp = buildToolServer(state);
    const transport = new WebStandardStreamableHTTPServerTransport({ enableJsonResponse: true });
    await mcp.connect(transport);
    const headers = new Headers();
    for (const [k, v] of Object.entries(request.headers)) if (typeof v === 'string') headers.set(k, v);
    const web = new Request(`http://${request.headers.host ?? 'localhost'}${request.url}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(request.body),
    });
    const answer = await transport.handleRequest(web, { parsedBody: request.body });
    if (sendResponse) {
      // Fastify 5 sends a Web Response itself (status, headers, its body as a Web stream).
      sendResponse = false;
      reply.raw.on('close', () => void transport.close().then(() => mcp.close()));
      return reply.send(answer);
    }
    const text = await answer.text();
    await transport.close();
    await mcp.close();
    reply.code(answer.status);
    answer.headers.forEach((v, k) => void reply.header(k, v));
    return reply.send(text);
  });
  app.get('/mcp', async (_request, reply) => reply.code(405).send());
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
});

const harness = (): McpNodeHarness => ({
  base,
  async send(s, body) {
    const r = await sendSigned(base, s, { body });
    return { status: r.status, header: (n) => r.headers[n] as string | undefined, body: r.body };
  },
  received: () => Promise.resolve(state.received),
  release: () => Promise.resolve(state.release()),
  events: () => audit.events,
  compressNext: () => void (compress = true),
});

describe('MCP in the Fastify plugin (MCP server mounted in-process)', () => {
  mcpCaseTable(() => world, harness);
  mcpNodeAnswerCases(() => world, harness);

  it('a list answer sent as a Web Response through reply.send() is filtered too', async () => {
    const h = harness();
    sendResponse = true;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 31, method: 'tools/list', params: {} });
    const r = await h.send(await signedCall(world, h, body, '/mcp-json'), body);
    expect(r.status).toBe(200);
    const answer = JSON.parse(r.body) as { id: number; result: { tools: { name: string }[] } };
    expect(answer.id).toBe(31);
    expect(answer.result.tools.map((t) => t.name).sort()).toEqual(['search_docs', 'transfer_funds']);
  });
});
