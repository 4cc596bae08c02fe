import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { expect, it } from 'vitest';
import type { AuditEvent } from '../../pkg/audit/index.js';
import { sha256Hex } from '../../pkg/internal/sha256.js';
import { canonicalizeJson } from '../../pkg/internal/jcs.js';
import { ProtectedClient, createSigningFetch, selfIssuedPassports } from '../../pkg/client/index.js';
import type { Received } from '../../examples/mcp-agent/tools.js';
import { NOW, SOFTWARE_ISSUER, TRUST_DOMAIN, type World } from '../helpers/fixture.js';

// One MCP case table, run against the adapter (proxy mode, the example MCP server as its own
// process) and the Hono middleware (the same MCP server mounted in-process): the official SDK
// client on the agent side, through trustplane/client's signing fetch.

/** The MCP API's audience. */
export const MCP_AUDIENCE = 'tools-api';

/** The `mcp` option the table's routes carry. */
export const MCP_POLICY = {
  methods: ['tools/list', 'tools/call'],
  tools: [
    { name: 'search_docs', arguments: [{ pointer: '/query', type: 'string', max_length: 200 }] },
    {
      name: 'transfer_funds',
      arguments: [
        { pointer: '/amount', required: true, type: 'number', min: 0, max: 100 },
        { pointer: '/to', required: true, pattern: 'acct-[0-9]{1,12}', max_length: 17 },
      ],
    },
  ],
};

/** A `createWorld` policy patch adding the MCP API and its routes. */
export function mcpPolicyPatch(doc: Record<string, unknown>): void {
  const software = {
    source_type: 'software_jwks',
    issuer: SOFTWARE_ISSUER,
    trust_domain: TRUST_DOMAIN,
    subject_exact: 'service:orders-client',
  };
  (doc.apis as unknown[]).push({ api_id: 'tools-api', audience: MCP_AUDIENCE });
  (doc.route_groups as unknown[]).push({
    route_group_id: 'tools',
    api_id: 'tools-api',
    routes: [
      {
        route_id: 'mcp.post',
        method: 'POST',
        path_template: '/mcp',
        allowed_sources: [software],
        mcp: MCP_POLICY,
      },
      {
        route_id: 'mcp.json',
        method: 'POST',
        path_template: '/mcp-json',
        allowed_sources: [software],
        mcp: MCP_POLICY,
      },
      { route_id: 'mcp.get', method: 'GET', path_template: '/mcp', allowed_sources: [software] },
    ],
  });
}

/** A raw answer. */
export interface McpRaw {
  readonly status: number;
  header(name: string): string | undefined;
  readonly body: string;
}

/** How the table reaches one enforcement point. */
export interface McpHarness {
  /** `http://host[:port]` the agent addresses. */
  readonly base: string;
  /** The `fetch` the signing client sends through (default the global one). */
  readonly fetch?: typeof fetch;
  /** Send a signed request (from {@link signedCall}) with `body` (another body tampers). */
  send(s: SignedCall, body: string): Promise<McpRaw>;
  /** What reached the MCP server so far. */
  received(): Promise<readonly Received[]>;
  /** Let a held `search_docs` call finish. */
  release(): Promise<void>;
  /** The audit events so far. */
  events(): readonly AuditEvent[];
}

/** The agent's passports: self-issued by the fixture's caller, on the frozen clock. */
function passportsOf(world: World) {
  return selfIssuedPassports({
    issuer: SOFTWARE_ISSUER,
    subject: 'service:orders-client',
    trustDomain: TRUST_DOMAIN,
    signingKey: world.caller,
    kid: 'caller-1',
    clock: () => NOW,
  });
}

/** An SDK client connected through the signing fetch to `path`. */
export async function connect(world: World, h: McpHarness, path = '/mcp'): Promise<Client> {
  const client = new ProtectedClient({
    baseUrl: h.base,
    audience: MCP_AUDIENCE,
    passports: passportsOf(world),
    ...(h.fetch !== undefined ? { fetch: h.fetch } : {}),
  });
  const fetch = createSigningFetch({
    client,
    routeId: ({ method, path: p }) =>
      method === 'GET' ? 'mcp.get' : p === '/mcp-json' ? 'mcp.json' : 'mcp.post',
  });
  const agent = new Client({ name: 'test-agent', version: '1.0.0' });
  await agent.connect(new StreamableHTTPClientTransport(new URL(`${h.base}${path}`), { fetch }));
  return agent;
}

/** A request signed for `POST /mcp` exactly as the agent's client would send it. */
export interface SignedCall {
  readonly url: string;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly claims: { readonly jti: string };
}

/**
 * Sign a `POST /mcp` (or `/mcp-json`) with `body` through the signing client, without sending it
 * (tampering, replay, raw answers).
 */
export async function signedCall(
  world: World,
  h: McpHarness,
  body: string,
  path: '/mcp' | '/mcp-json' = '/mcp',
): Promise<SignedCall> {
  let captured: { url: string; init: RequestInit } | undefined;
  const client = new ProtectedClient({
    baseUrl: h.base,
    audience: MCP_AUDIENCE,
    passports: passportsOf(world),
    fetch: (url, init) => {
      captured = { url: String(url), init: init ?? {} };
      return Promise.resolve(new Response(null, { status: 204 }));
    },
  });
  await client.request({
    method: 'POST',
    path,
    routeId: path === '/mcp-json' ? 'mcp.json' : 'mcp.post',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body,
  });
  const headers: Record<string, string> = {};
  new Headers(captured!.init.headers).forEach((v, k) => (headers[k] = v));
  const passport = headers.authorization!.slice('Bearer '.length);
  const claims = JSON.parse(Buffer.from(passport.split('.')[1]!, 'base64url').toString('utf8')) as {
    jti: string;
  };
  return { url: captured!.url, method: 'POST', headers, claims };
}

const call = (name: string, args: Record<string, unknown>, id: string | number = 7) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

const calls = async (h: McpHarness, tool: string) =>
  (await h.received()).filter((r) => r.method === 'tools/call' && r.tool === tool).length;

/** The JSON-RPC error an SDK call was rejected with. */
async function rejection(p: Promise<unknown>): Promise<McpError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof McpError) return e;
    throw e;
  }
  throw new Error('the call was not rejected');
}

/** Register the case table for one harness. */
export function mcpCaseTable(world: () => World, harness: () => McpHarness): void {
  it('tools/list through the SDK (SSE answer) shows only the permitted tools', async () => {
    const agent = await connect(world(), harness());
    const { tools } = await agent.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['search_docs', 'transfer_funds']);
    await agent.close();
  });

  it('tools/list through the SDK (JSON answer) shows only the permitted tools', async () => {
    const agent = await connect(world(), harness(), '/mcp-json');
    const { tools } = await agent.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['search_docs', 'transfer_funds']);
    await agent.close();
  });

  it('a permitted call gets its result', async () => {
    const h = harness();
    const before = await calls(h, 'transfer_funds');
    const agent = await connect(world(), h);
    const result = await agent.callTool({ name: 'transfer_funds', arguments: { amount: 42, to: 'acct-7' } });
    expect(result.structuredContent).toEqual({ amount: 42, to: 'acct-7', status: 'done' });
    expect(await calls(h, 'transfer_funds')).toBe(before + 1);
    await agent.close();
  });

  it('a forbidden tool gets a JSON-RPC error (mcp_tool_denied) and never reaches the server', async () => {
    const h = harness();
    const before = await calls(h, 'delete_repository');
    const agent = await connect(world(), h);
    const err = await rejection(agent.callTool({ name: 'delete_repository', arguments: { name: 'prod' } }));
    expect(err.data).toEqual({ reason: 'mcp_tool_denied' });
    expect(await calls(h, 'delete_repository')).toBe(before);
    await agent.close();
  });

  it('an argument over its limit gets a JSON-RPC error (mcp_argument_denied) and never reaches the server', async () => {
    const h = harness();
    const before = await calls(h, 'transfer_funds');
    const agent = await connect(world(), h, '/mcp-json');
    const err = await rejection(
      agent.callTool({ name: 'transfer_funds', arguments: { amount: 5000, to: 'acct-7' } }),
    );
    expect(err.data).toEqual({ reason: 'mcp_argument_denied' });
    expect(await calls(h, 'transfer_funds')).toBe(before);
    await agent.close();
  });

  it('the deny is HTTP 200 with a JSON-RPC error carrying the request id and the reason', async () => {
    const h = harness();
    const s = await signedCall(world(), h, call('delete_repository', { name: 'prod' }, 'abc'));
    const r = await h.send(s, call('delete_repository', { name: 'prod' }, 'abc'));
    expect(r.status).toBe(200);
    expect(r.header('x-trustplane-reason')).toBe('mcp_tool_denied');
    const body = JSON.parse(r.body) as {
      jsonrpc: string;
      id: unknown;
      error: { code: number; data: unknown };
    };
    expect(body).toMatchObject({ jsonrpc: '2.0', id: 'abc', error: { data: { reason: 'mcp_tool_denied' } } });
  });

  it('attack: tool name changed in flight is request_binding_mismatch, never reaching the server', async () => {
    const h = harness();
    const before = await calls(h, 'delete_repository');
    const s = await signedCall(world(), h, call('search_docs', { query: 'a' }));
    const r = await h.send(s, call('delete_repository', { name: 'a' }));
    expect(r.header('x-trustplane-reason')).toBe('request_binding_mismatch');
    expect(r.status).toBe(401);
    expect(await calls(h, 'delete_repository')).toBe(before);
  });

  it('attack: an argument changed in flight is request_binding_mismatch', async () => {
    const h = harness();
    const before = await calls(h, 'transfer_funds');
    const s = await signedCall(world(), h, call('transfer_funds', { amount: 10, to: 'acct-1' }));
    const r = await h.send(s, call('transfer_funds', { amount: 99, to: 'acct-1' }));
    expect(r.header('x-trustplane-reason')).toBe('request_binding_mismatch');
    expect(await calls(h, 'transfer_funds')).toBe(before);
  });

  it('attack: a replayed tools/call is jti_replay and reaches the server once', async () => {
    const h = harness();
    const before = await calls(h, 'transfer_funds');
    const body = call('transfer_funds', { amount: 5, to: 'acct-2' });
    const s = await signedCall(world(), h, body);
    const first = await h.send(s, body);
    expect(first.status).toBe(200);
    const again = await h.send(s, body);
    expect(again.header('x-trustplane-reason')).toBe('jti_replay');
    expect(await calls(h, 'transfer_funds')).toBe(before + 1);
  });

  it('a body that is not JSON-RPC is mcp_invalid_jsonrpc', async () => {
    const h = harness();
    const body = JSON.stringify({ hello: 'world' });
    const s = await signedCall(world(), h, body);
    const r = await h.send(s, body);
    expect(r.header('x-trustplane-reason')).toBe('mcp_invalid_jsonrpc');
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600 } });
  });

  it('SSE tools/list streams through the list filter: the first event reaches the agent before the last is produced', async () => {
    const h = harness();
    const agent = await connect(world(), h);
    let progressAt = 0;
    const { tools } = await agent.listTools(
      { cursor: 'hold' },
      {
        onprogress: () => {
          progressAt = Date.now();
          // The server holds the list until this release: a point that buffered the stream would
          // never deliver the progress event, and the server would answer an error after 20 s.
          void h.release();
        },
        timeout: 40_000,
      },
    );
    expect(progressAt).toBeGreaterThan(0);
    expect(tools.map((t) => t.name).sort()).toEqual(['search_docs', 'transfer_funds']);
    await agent.close();
  }, 45_000);

  it('SSE tools/call streams: the first event reaches the agent before the last is produced', async () => {
    const h = harness();
    const agent = await connect(world(), h);
    let progressAt = 0;
    const result = await agent.callTool(
      { name: 'search_docs', arguments: { query: 'streaming', hold: true } },
      undefined,
      {
        onprogress: () => {
          progressAt = Date.now();
          // The server holds its answer until this release: a buffered stream would never release it.
          void h.release();
        },
        timeout: 40_000,
      },
    );
    expect(progressAt).toBeGreaterThan(0);
    expect(result.structuredContent).toEqual({ query: 'streaming', released: true });
    await agent.close();
  }, 45_000);

  it('one audit record per JSON-RPC call: method, tool, argument digest, decision, reason', async () => {
    const h = harness();
    const args = { amount: 3, to: 'acct-3' };
    const body = call('transfer_funds', args, 99);
    const s = await signedCall(world(), h, body);
    await h.send(s, body);
    const denied = call('delete_repository', { name: 'x' }, 100);
    const s2 = await signedCall(world(), h, denied);
    await h.send(s2, denied);
    const byJti = (jti: string) =>
      h.events().filter((e) => e.jti === jti && e.event_type === 'authorization_decision');
    const [allow] = byJti(s.claims.jti);
    expect(byJti(s.claims.jti)).toHaveLength(1);
    expect(allow).toMatchObject({
      decision: 'allow',
      mcp: {
        method: 'tools/call',
        tool: 'transfer_funds',
        arguments_sha256: await sha256Hex(canonicalizeJson(args)),
      },
    });
    expect(allow!.mcp).not.toHaveProperty('arguments');
    const [deny] = byJti(s2.claims.jti);
    expect(deny).toMatchObject({
      decision: 'deny',
      reason: 'mcp_tool_denied',
      mcp: { method: 'tools/call', tool: 'delete_repository' },
    });
  });
}
