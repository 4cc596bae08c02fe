import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import { trustplane } from '../../pkg/middleware/node/index.js';
import { createWorld, NOW, type World } from '../helpers/fixture.js';
import { mcpPolicyPatch, signedCall, type McpHarness } from './mcp-cases.js';

// The Node (Express) middleware on an MCP route: the kernel's MCP stage decides there too (the
// body bytes it digested are the ones decided on). It does not filter list answers (docs/mcp.md).

let world: World;
let server: http.Server;
let base: string;
const reached: string[] = [];

beforeAll(async () => {
  world = await createWorld({ policyPatch: mcpPolicyPatch });
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
  app.post('/mcp', (req, res) => {
    const body = req.body as { id: number; params: { name: string } };
    reached.push(body.params.name);
    res.json({
      jsonrpc: '2.0',
      id: body.id,
      result: { content: [{ type: 'text', text: `ran ${body.params.name}` }] },
    });
  });
  server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const call = (name: string, args: Record<string, unknown>) =>
  JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name, arguments: args } });

async function send(body: string) {
  const s = await signedCall(world, { base } as McpHarness, body);
  const r = await fetch(s.url, { method: 'POST', headers: s.headers, body });
  return { status: r.status, reason: r.headers.get('x-trustplane-reason'), body: await r.text() };
}

describe('MCP in the Node middleware (Express)', () => {
  it('a permitted call reaches the handler with its body intact', async () => {
    const r = await send(call('transfer_funds', { amount: 1, to: 'acct-1' }));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({
      id: 5,
      result: { content: [{ text: 'ran transfer_funds' }] },
    });
    expect(reached).toContain('transfer_funds');
  });

  it('a forbidden tool and an argument over its limit are JSON-RPC errors; the handler never runs', async () => {
    const before = reached.length;
    const tool = await send(call('delete_repository', { name: 'x' }));
    expect([tool.status, tool.reason]).toEqual([200, 'mcp_tool_denied']);
    expect(JSON.parse(tool.body)).toMatchObject({
      id: 5,
      error: { code: -32001, data: { reason: 'mcp_tool_denied' } },
    });
    const arg = await send(call('transfer_funds', { amount: 101, to: 'acct-1' }));
    expect([arg.status, arg.reason]).toEqual([200, 'mcp_argument_denied']);
    expect(reached.length).toBe(before);
  });
});
