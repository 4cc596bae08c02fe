import { describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { MemoryReplayStore } from '../../pkg/authcore/index.js';
import { mcpPolicySchema, type McpPolicy } from '../../pkg/bundle/index.js';
import {
  compileGlob,
  decideMcp,
  filterJsonAnswerBytes,
  filterMcpResponse,
  mcpDenyBody,
  McpSseFilter,
  type McpListFilterSpec,
} from '../../pkg/mcp/index.js';
import { ProtectedClient, selfIssuedPassports } from '../../pkg/client/index.js';
import { createEnforcementKernel } from '../../pkg/verifier/index.js';
import { NOW, SOFTWARE_ISSUER, TRUST_DOMAIN, createWorld } from '../helpers/fixture.js';
import { MCP_AUDIENCE, mcpPolicyPatch } from './mcp-cases.js';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const call = (name: string, args?: unknown, id: number | string = 1) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, ...(args !== undefined ? { arguments: args } : {}) },
});
const policy = (p: unknown): McpPolicy => mcpPolicySchema.parse(p);
const pass = () => undefined;

const base = policy({
  methods: ['tools/*', 'resources/read', 'prompts/get'],
  tools: [
    { name: 'pay', arguments: [{ pointer: '/amount', required: true, type: 'integer', min: 1, max: 100 }] },
    {
      name: 'tag',
      arguments: [
        { pointer: '/tags', max_length: 2 },
        { pointer: '/kind', enum: ['a', 'b'] },
      ],
    },
    { name: 'mail', arguments: [{ pointer: '/to', pattern: '[a-z]+@example\\.org', max_length: 254 }] },
    {
      name: 'admin_*',
      allowed_sources: [
        { source_type: 'software_jwks', issuer: 'x', trust_domain: 'd', subject_exact: 'root' },
      ],
    },
    { name: 'a~b/c', arguments: [{ pointer: '/x~1y/0', max: 1 }] },
  ],
  resources: [{ uri: 'file:///docs/*' }],
  prompts: [{ name: 'summary', arguments: [{ pointer: '/style', enum: ['short'] }] }],
});

describe('mcp policy schema', () => {
  it('refuses a pattern that is not a valid ECMAScript regular expression, or longer than 256', () => {
    expect(
      mcpPolicySchema.safeParse({ tools: [{ name: 't', arguments: [{ pointer: '/a', pattern: '([' }] }] })
        .success,
    ).toBe(false);
    expect(
      mcpPolicySchema.safeParse({
        tools: [{ name: 't', arguments: [{ pointer: '/a', pattern: 'a'.repeat(257) }] }],
      }).success,
    ).toBe(false);
    expect(mcpPolicySchema.safeParse({ tools: [{ name: 't', arguments: [{ pointer: 'a' }] }] }).success).toBe(
      false,
    );
    expect(mcpPolicySchema.safeParse({ tools: [{ name: 't', unknown: 1 }] }).success).toBe(false);
  });
});

describe('decideMcp', () => {
  it('globs match whole names; \\* is a literal star', () => {
    expect(compileGlob('admin_*').test('admin_reset')).toBe(true);
    expect(compileGlob('admin_*').test('xadmin_reset')).toBe(false);
    expect(compileGlob('a.b').test('axb')).toBe(false);
    expect(compileGlob('a\\*').test('a*')).toBe(true);
    expect(compileGlob('a\\*').test('ab')).toBe(false);
  });

  it.each([
    ['an amount in range', call('pay', { amount: 5 }), undefined],
    ['an amount over max', call('pay', { amount: 101 }), 'mcp_argument_denied'],
    ['a non-integer amount', call('pay', { amount: 1.5 }), 'mcp_argument_denied'],
    ['a string amount', call('pay', { amount: '5' }), 'mcp_argument_denied'],
    ['a missing required amount', call('pay', {}), 'mcp_argument_denied'],
    ['no arguments at all', call('pay'), 'mcp_argument_denied'],
    ['an array over max_length', call('tag', { tags: [1, 2, 3] }), 'mcp_argument_denied'],
    ['a value outside enum', call('tag', { kind: 'c' }), 'mcp_argument_denied'],
    ['absent optional values', call('tag', {}), undefined],
    ['a pattern match (anchored)', call('mail', { to: 'bob@example.org' }), undefined],
    [
      'a pattern with a suffix (anchored)',
      call('mail', { to: 'bob@example.org.evil' }),
      'mcp_argument_denied',
    ],
    ['escaped pointer tokens', call('a~b/c', { 'x/y': [2] }), 'mcp_argument_denied'],
    ['an unlisted tool', call('drop_table', {}), 'mcp_tool_denied'],
    ['a tool with narrowed sources', call('admin_reset', {}), 'mcp_tool_denied'],
    [
      'a call without a name',
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} },
      'mcp_invalid_jsonrpc',
    ],
    ['a method not listed', { jsonrpc: '2.0', id: 1, method: 'sampling/createMessage' }, 'mcp_method_denied'],
    ['initialize', { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }, undefined],
    ['a notification', { jsonrpc: '2.0', method: 'notifications/initialized' }, undefined],
    ['a client response', { jsonrpc: '2.0', id: 3, result: {} }, undefined],
    [
      'a resource under the pattern',
      { jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'file:///docs/a.md' } },
      undefined,
    ],
    [
      'a resource elsewhere',
      { jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'file:///etc/passwd' } },
      'mcp_resource_denied',
    ],
    [
      'a prompt with a bad argument',
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'prompts/get',
        params: { name: 'summary', arguments: { style: 'long' } },
      },
      'mcp_argument_denied',
    ],
    [
      'an unknown prompt',
      { jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'other' } },
      'mcp_prompt_denied',
    ],
    ['not JSON-RPC', { hello: 1 }, 'mcp_invalid_jsonrpc'],
    ['an empty batch', [], 'mcp_invalid_jsonrpc'],
    ['attack: __proto__ pointer', call('tag', JSON.parse('{"__proto__": {"kind": "c"}}')), undefined],
  ])('%s', (_name, body, reason) => {
    const check = (rules: { allowed_sources?: unknown }) =>
      rules.allowed_sources ? ('source_subject_mismatch' as const) : undefined;
    expect(decideMcp(base, enc(body), check).deny?.reason).toBe(reason);
  });

  it('invalid bodies: not JSON (-32700), not UTF-8, too deep, too many messages', () => {
    const notJson = decideMcp(base, enc('{'), pass).deny;
    expect(notJson?.reason).toBe('mcp_invalid_jsonrpc');
    expect(notJson?.details.jsonrpc_code).toBe(-32700);
    expect(decideMcp(base, new Uint8Array([0xff, 0xfe]), pass).deny?.reason).toBe('mcp_invalid_jsonrpc');
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = [deep];
    expect(decideMcp(base, enc(call('pay', { amount: 1, x: deep })), pass).deny?.reason).toBe(
      'mcp_invalid_jsonrpc',
    );
    const many = Array.from({ length: 65 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' }));
    expect(decideMcp(base, enc(many), pass).deny?.reason).toBe('mcp_invalid_jsonrpc');
  });

  it('a batch: one denied message denies the batch; every message is described; repeated ids are invalid', () => {
    const v = decideMcp(base, enc([call('pay', { amount: 1 }, 1), call('drop', {}, 2)]), pass);
    expect(v.deny?.reason).toBe('mcp_tool_denied');
    expect(v.ids).toEqual([1, 2]);
    expect(v.calls.map((c) => [c.tool, c.batchIndex, c.batchSize])).toEqual([
      ['pay', 0, 2],
      ['drop', 1, 2],
    ]);
    expect(
      decideMcp(base, enc([call('pay', { amount: 1 }, 1), call('pay', { amount: 2 }, 1)]), pass).deny?.reason,
    ).toBe('mcp_invalid_jsonrpc');
  });

  it('audits arguments by digest; the canonical text only with audit_arguments', () => {
    const args = { b: 1, a: 'x' };
    const off = decideMcp(base, enc(call('tag', args)), pass).calls[0]!;
    expect(off.argumentsSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(off.arguments).toBeUndefined();
    const on = decideMcp(policy({ ...base, audit_arguments: true }), enc(call('tag', args)), pass).calls[0]!;
    expect(on.arguments).toBe('{"a":"x","b":1}');
    expect(on.argumentsSha256).toBe(off.argumentsSha256);
  });

  it('the deny body: 200 with one error per request id; the reason status and id null without ids', () => {
    expect(mcpDenyBody('mcp_tool_denied', 403, [7])).toEqual({
      status: 200,
      body: '{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"denied by policy","data":{"reason":"mcp_tool_denied"}}}',
    });
    expect(JSON.parse(mcpDenyBody('mcp_tool_denied', 403, [1, 'b']).body)).toHaveLength(2);
    expect(mcpDenyBody('mcp_method_denied', 403, []).status).toBe(403);
    expect(JSON.parse(mcpDenyBody('mcp_invalid_jsonrpc', 400, [1], -32600).body)).toMatchObject({
      id: null,
      error: { code: -32600 },
    });
  });
});

describe('list filtering', () => {
  const spec: McpListFilterSpec = {
    requests: new Map<string | number, string>([
      [1, 'tools/list'],
      ['r', 'resources/list'],
    ]),
    visible: (kind, name) => (kind === 'tool' ? name !== 'secret' : name.startsWith('file:///docs/')),
  };
  const tools = {
    jsonrpc: '2.0',
    id: 1,
    result: { tools: [{ name: 'ok' }, { name: 'secret' }], nextCursor: 'c' },
  };

  it('JSON: filters the answers of list requests only', () => {
    const out = JSON.parse(new TextDecoder().decode(filterJsonAnswerBytes(enc(tools), spec))) as typeof tools;
    expect(out.result).toEqual({ tools: [{ name: 'ok' }], nextCursor: 'c' });
    const other = enc({ jsonrpc: '2.0', id: 2, result: { tools: [{ name: 'secret' }] } });
    expect(filterJsonAnswerBytes(other, spec)).toBe(other);
    const res = {
      jsonrpc: '2.0',
      id: 'r',
      result: { resources: [{ uri: 'file:///docs/a' }, { uri: 'file:///etc/x' }] },
    };
    expect(new TextDecoder().decode(filterJsonAnswerBytes(enc([res]), spec))).not.toContain('/etc/x');
  });

  it('SSE: events split across chunks in any place; each event goes out when it is complete', () => {
    const progress =
      'event: message\nid: 1\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n';
    const answer = `id: 2\ndata: ${JSON.stringify(tools)}\n\n`;
    const text = progress + answer;
    for (const cut of [1, 7, progress.length - 1, progress.length, progress.length + 5, text.length - 1]) {
      const f = new McpSseFilter(spec);
      const a = new TextDecoder().decode(f.push(enc(text.slice(0, cut))));
      if (cut >= progress.length) expect(a.startsWith(progress)).toBe(true);
      else expect(a).toBe('');
      const rest = new TextDecoder().decode(f.push(enc(text.slice(cut)))) + new TextDecoder().decode(f.end());
      const all = a + rest;
      expect(all.startsWith(progress)).toBe(true);
      expect(all).not.toContain('secret');
      expect(all).toContain('id: 2\n');
      expect(all).toContain('"name":"ok"');
    }
  });

  it('attack: a compressed list answer is refused, never passed unfiltered', async () => {
    const gz = new Response(enc(tools), {
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    await expect(filterMcpResponse(gz, spec)).rejects.toThrow(RangeError);
    const plain = await filterMcpResponse(
      new Response(enc(tools), { headers: { 'content-type': 'application/json' } }),
      spec,
    );
    expect(await plain.text()).not.toContain('secret');
  });

  it('SSE: multi-byte characters split across chunks pass intact', () => {
    const event = `data: {"jsonrpc":"2.0","method":"notifications/message","params":{"t":"é✓"}}\n\n`;
    const bytes = enc(event);
    const f = new McpSseFilter(spec);
    const out = [f.push(bytes.slice(0, 72)), f.push(bytes.slice(72)), f.end()];
    expect(new TextDecoder().decode(Buffer.concat(out))).toBe(event);
  });
});

/** The MCP routes of the case table, plus a dry-run MCP route and a tool with a receipt. */
function kernelPatch(doc: Record<string, unknown>): void {
  mcpPolicyPatch(doc);
  const groups = doc.route_groups as { route_group_id: string; routes: Record<string, unknown>[] }[];
  const tools = groups.find((g) => g.route_group_id === 'tools')!;
  const post = tools.routes.find((r) => r.route_id === 'mcp.post')!;
  tools.routes.push(
    { ...post, route_id: 'mcp.dry', path_template: '/mcp-dry', enforcement: 'dry-run' },
    {
      ...post,
      route_id: 'mcp.receipt',
      path_template: '/mcp-receipt',
      mcp: { methods: ['tools/call'], tools: [{ name: 'sign_me', receipt: true }, { name: 'plain' }] },
    },
  );
}

async function kernelWorld(component: 'library' | 'forward-auth') {
  const world = await createWorld({ policyPatch: kernelPatch });
  const audit = new MemoryAuditSink();
  const kernel = createEnforcementKernel({
    component,
    trust: world.trust,
    policy: world.policy,
    replayStore: new MemoryReplayStore(),
    audit,
    clock: () => NOW,
    receipts: { sign: () => Promise.resolve('receipt') },
  });
  let sent: Request | undefined;
  const client = new ProtectedClient({
    baseUrl: 'http://tools.local',
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
      sent = new Request(url, init);
      return Promise.resolve(new Response(null, { status: 204 }));
    },
  });
  const enforce = async (path: string, routeId: string, body: unknown) => {
    await client.request({
      method: 'POST',
      path,
      routeId,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return kernel.enforce({ request: sent!, facts: { method: 'POST', path }, startedMs: performance.now() });
  };
  return { audit, enforce };
}

describe('the kernel on MCP routes: forward-auth, dry-run, receipts', () => {
  it('forward-auth answers an MCP deny with the normal deny (its gateway reads any 2xx as an allow)', async () => {
    const { enforce } = await kernelWorld('forward-auth');
    const e = await enforce('/mcp', 'mcp.post', call('delete_repository', { name: 'x' }));
    expect(e.outcome).toBe('deny');
    if (e.outcome !== 'deny') return;
    expect(e.answer.status).toBe(403);
    expect(JSON.parse(e.answer.body)).toEqual({ allowed: false, reason: 'mcp_tool_denied' });
  });

  it('a dry-run MCP route records the deny (would_deny) and lets the call through, unfiltered', async () => {
    const { enforce, audit } = await kernelWorld('library');
    const e = await enforce('/mcp-dry', 'mcp.dry', call('delete_repository', { name: 'x' }));
    expect(e.outcome).toBe('pass');
    expect(audit.events.at(-1)).toMatchObject({
      decision: 'deny',
      reason: 'mcp_tool_denied',
      enforcement: 'dry-run',
    });
    const list = await enforce('/mcp-dry', 'mcp.dry', { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect(list.outcome).toBe('allow');
    if (list.outcome === 'allow') expect(list.mcp).toBeUndefined();
  });

  it('a tool with receipt: true asks for a receipt; another tool of the same route does not', async () => {
    const { enforce } = await kernelWorld('library');
    const signed = await enforce('/mcp-receipt', 'mcp.receipt', call('sign_me', {}));
    const plain = await enforce('/mcp-receipt', 'mcp.receipt', call('plain', {}));
    expect(signed.outcome === 'allow' && signed.receipt).toBe(true);
    expect(plain.outcome === 'allow' && plain.receipt).toBe(false);
  });
});

describe('the kernel (library) on an MCP route', () => {
  it('a denied batch: one error per id with the reason, one audit record per message, nothing allowed', async () => {
    const world = await createWorld({ policyPatch: mcpPolicyPatch });
    const audit = new MemoryAuditSink();
    const kernel = createEnforcementKernel({
      component: 'library',
      trust: world.trust,
      policy: world.policy,
      replayStore: new MemoryReplayStore(),
      audit,
      clock: () => NOW,
    });
    let sent: Request | undefined;
    const client = new ProtectedClient({
      baseUrl: 'http://tools.local',
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
        sent = new Request(url, init);
        return Promise.resolve(new Response(null, { status: 204 }));
      },
    });
    const body = JSON.stringify([
      call('search_docs', { query: 'x' }, 1),
      call('transfer_funds', { amount: 1000, to: 'acct-1' }, 2),
    ]);
    await client.request({
      method: 'POST',
      path: '/mcp',
      routeId: 'mcp.post',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const e = await kernel.enforce({
      request: sent!,
      facts: { method: 'POST', path: '/mcp' },
      startedMs: performance.now(),
    });
    expect(e.outcome).toBe('deny');
    if (e.outcome !== 'deny') return;
    expect(e.answer.status).toBe(200);
    expect(e.answer.headers['x-trustplane-reason']).toBe('mcp_argument_denied');
    expect(JSON.parse(e.answer.body)).toEqual([
      {
        jsonrpc: '2.0',
        id: 1,
        error: { code: -32001, message: 'denied by policy', data: { reason: 'mcp_argument_denied' } },
      },
      {
        jsonrpc: '2.0',
        id: 2,
        error: { code: -32001, message: 'denied by policy', data: { reason: 'mcp_argument_denied' } },
      },
    ]);
    expect(
      audit.events.map((ev) => [ev.decision, ev.reason, ev.stage, ev.mcp?.tool, ev.mcp?.batch_index]),
    ).toEqual([
      ['deny', 'mcp_argument_denied', 'mcp', 'search_docs', 0],
      ['deny', 'mcp_argument_denied', 'mcp', 'transfer_funds', 1],
    ]);
  });
});
