import { afterAll, beforeAll, describe } from 'vitest';
import type { Received } from '../../examples/mcp-agent/tools.js';
import { sendSigned, startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import { createWorld, type World } from '../helpers/fixture.js';
import { startExample, type ExampleProcess } from '../examples/helpers.js';
import { mcpCaseTable, mcpPolicyPatch, type McpHarness } from './mcp-cases.js';

// The adapter (proxy mode, on loopback) in front of examples/mcp-agent/server.ts, which runs as its
// own process; the official SDK client on the agent side. One adapter and one MCP server for the file.

let world: World;
let server: ExampleProcess;
let adapter: TestAdapter;

beforeAll(async () => {
  world = await createWorld({ policyPatch: mcpPolicyPatch });
  server = await startExample('examples/mcp-agent/server.ts', {});
  adapter = await startTestAdapter(world, { upstream: server.base });
}, 60_000);

afterAll(async () => {
  await adapter?.adapter.close();
  await server?.stop();
});

const harness = (): McpHarness => ({
  base: adapter.base,
  async send(s, body) {
    const r = await sendSigned(adapter.base, s, { body });
    return { status: r.status, header: (n) => r.headers[n] as string | undefined, body: r.body };
  },
  async received() {
    const r = await fetch(`${server.base}/stats`);
    return ((await r.json()) as { received: Received[] }).received;
  },
  async release() {
    await fetch(`${server.base}/release`, { method: 'POST' });
  },
  events: () => adapter.audit.events,
});

describe('MCP through the adapter (proxy)', () => {
  mcpCaseTable(() => world, harness);
});
