import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { Hono } from 'hono';
import { beforeAll, describe } from 'vitest';
import { buildToolServer, ToolServerState } from '../../examples/mcp-agent/tools.js';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import { trustplane, type TrustplaneEnv } from '../../pkg/middleware/hono/index.js';
import { NOW, createWorld, toRequest, type World } from '../helpers/fixture.js';
import { mcpCaseTable, mcpPolicyPatch, type McpHarness } from './mcp-cases.js';

// The same case table as test/mcp/adapter.test.ts, in the Hono middleware with the example MCP
// server (official SDK, Web-standard Streamable HTTP transport) mounted in-process.

const BASE = 'http://tools.local';
let world: World;
let app: Hono<TrustplaneEnv>;
const state = new ToolServerState();
const audit = new MemoryAuditSink();

beforeAll(async () => {
  world = await createWorld({ policyPatch: mcpPolicyPatch });
  app = new Hono<TrustplaneEnv>();
  app.use(
    '*',
    trustplane({
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      audit,
      clock: () => NOW,
    }),
  );
  const mount = (json: boolean) => async (c: { req: { raw: Request } }) => {
    const body: unknown = await c.req.raw.clone().json();
    state.note(body);
    const server = buildToolServer(state);
    const transport = new WebStandardStreamableHTTPServerTransport({ enableJsonResponse: json });
    await server.connect(transport);
    return transport.handleRequest(c.req.raw, { parsedBody: body });
  };
  app.post('/mcp', mount(false));
  app.post('/mcp-json', mount(true));
  app.get('/mcp', (c) => c.body(null, 405));
});

const harness = (): McpHarness => ({
  base: BASE,
  fetch: (input, init) => Promise.resolve(app.request(input instanceof URL ? input.href : input, init)),
  async send(s, body) {
    const r = await app.request(toRequest(s, { body }));
    return { status: r.status, header: (n) => r.headers.get(n) ?? undefined, body: await r.text() };
  },
  received: () => Promise.resolve(state.received),
  release: () => Promise.resolve(state.release()),
  events: () => audit.events,
});

describe('MCP in the Hono middleware (MCP server mounted in-process)', () => {
  mcpCaseTable(() => world, harness);
});
