import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import express from 'express';
import { afterAll, beforeAll, describe } from 'vitest';
import { buildToolServer, ToolServerState } from '../../examples/mcp-agent/tools.js';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import { trustplane } from '../../pkg/middleware/node/index.js';
import { sendSigned } from '../helpers/adapter.js';
import { createWorld, NOW, type World } from '../helpers/fixture.js';
import { mcpCaseTable, mcpPolicyPatch } from './mcp-cases.js';
import { mcpNodeAnswerCases, unfilteredToolsAnswer, type McpNodeHarness } from './node-answer-cases.js';

// The same case table as test/mcp/adapter.test.ts, in the Node middleware in a real Express app
// over loopback, with the example MCP server (official SDK, Node Streamable HTTP transport)
// mounted in-process behind express.json(): the kernel's MCP stage decides on the bytes the
// middleware digested, and list answers (JSON and SSE) are filtered as the handler writes them.

let world: World;
let server: http.Server;
let base: string;
const state = new ToolServerState();
const audit = new MemoryAuditSink();
let compress = false;

beforeAll(async () => {
  world = await createWorld({ policyPatch: mcpPolicyPatch });
  const app = express();
  app.use(
    trustplane({
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      audit,
      clock: () => NOW,
    }),
  );
  app.use(express.json());
  const mount = (json: boolean) => async (req: express.Request, res: express.Response) => {
    const body: unknown = req.body;
    state.note(body);
    if (json && compress) {
      // What a compression middleware behind the point sends.
      compress = false;
      const id = (body as { id?: unknown }).id;
      res.set({ 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(unfilteredToolsAnswer(id));
      return;
    }
    const mcp = buildToolServer(state);
    const transport = new StreamableHTTPServerTransport({ enableJsonResponse: json });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(req, res, body);
  };
  app.post('/mcp', mount(false));
  app.post('/mcp-json', mount(true));
  app.get('/mcp', (_req, res) => void res.status(405).end());
  server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
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

describe('MCP in the Node middleware (Express, MCP server mounted in-process)', () => {
  mcpCaseTable(() => world, harness);
  mcpNodeAnswerCases(() => world, harness);
});
