import { describe, expect, it } from 'vitest';
import { mcpPolicySchema, type McpPolicy } from '../../pkg/bundle/index.js';
import { decideMcp, McpSseFilter, type McpListFilterSpec } from '../../pkg/mcp/index.js';
import { createWorld } from '../helpers/fixture.js';

// Regressions of the red team's MCP findings (issue 17) that the MCP module decides on its own:
// resource URIs in non-canonical form (mcp-01), integers beyond the double's exact range (mcp-02),
// SSE events ended by mixed line endings (mcp-07), patterns without a length bound (mcp-08), and
// resources/subscribe and completion/complete without a rule (finding 7).

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const policy = (p: unknown): McpPolicy => mcpPolicySchema.parse(p);
const pass = () => undefined;
const reasonOf = (p: McpPolicy, body: unknown) => decideMcp(p, enc(body), pass).deny?.reason;

const rpc = (method: string, params: Record<string, unknown>, id = 1) => ({
  jsonrpc: '2.0',
  id,
  method,
  params,
});

describe('attack: resource URI not in canonical form (red team mcp-01)', () => {
  const p = policy({
    methods: ['resources/read'],
    resources: [{ uri: 'file:///docs/*' }, { uri: 'https://vault.example/public/*' }],
  });
  const read = (uri: string) => reasonOf(p, rpc('resources/read', { uri }));

  it.each([
    'file:///docs/../secret/keys.txt',
    'file:///docs/%2e%2e/secret/keys.txt',
    'file:///docs/.%2E/secret/keys.txt',
    'file:///docs/..\\secret\\keys.txt',
    'file:///docs/./../secret/keys.txt',
    'file:///docs/sub/../../secret/keys.txt',
    'https://vault.example/public/../root-token',
    'https://vault.example/public/%2E%2E/root-token',
    'https://vault.example/public/a%2F..%2F..%2Froot-token',
    'https://vault.example/public/a%5c..%5croot-token',
    'HTTPS://vault.example/public/x',
    'https://VAULT.example/public/x',
    'https://vault.example:443/public/x',
    'file:///docs/ x',
    'not a uri /docs/x',
  ])('%s is refused mcp_resource_denied', (uri) => {
    expect(read(uri)).toBe('mcp_resource_denied');
  });

  it.each(['file:///docs/readme.md', 'file:///docs/sub/page.md', 'https://vault.example/public/x?v=1'])(
    '%s (canonical, under the rule) is admitted',
    (uri) => {
      expect(read(uri)).toBeUndefined();
    },
  );
});

describe('attack: integers beyond the exact range of a double (red team mcp-02)', () => {
  const p = policy({
    methods: ['tools/call'],
    tools: [
      {
        name: 'transfer_funds',
        arguments: [
          { pointer: '/amount', type: 'integer', min: 0, max: 10000000000000000 },
          { pointer: '/account', type: 'integer', enum: [Number('18446744073709551615')] },
          { pointer: '/n', type: 'number' },
          { pointer: '/free' },
        ],
      },
    ],
  });
  const callRaw = (args: string) =>
    decideMcp(
      p,
      enc(
        `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"transfer_funds","arguments":${args}}}`,
      ),
      pass,
    ).deny?.reason;

  it.each([
    ['amount 10000000000000001 (rounds to max 1e16)', '{"amount":10000000000000001}'],
    ['account 18446744073709551616 (rounds to the enum value)', '{"account":18446744073709551616}'],
    ['amount 9007199254740993 (2^53 + 1)', '{"amount":9007199254740993}'],
    ['amount -9007199254740993', '{"amount":-9007199254740993}'],
    ['n 1e300', '{"n":1e300}'],
  ])('%s is refused mcp_argument_denied', (_label, args) => {
    expect(callRaw(args)).toBe('mcp_argument_denied');
  });

  it('n 1e400 (Infinity to JSON.parse) is refused before any rule: its arguments are not canonical JSON', () => {
    expect(callRaw('{"n":1e400}')).toBe('mcp_invalid_jsonrpc');
  });

  it.each([
    ['amount MAX_SAFE_INTEGER', `{"amount":${Number.MAX_SAFE_INTEGER}}`],
    ['amount 5', '{"amount":5}'],
    ['n 0.1 (a non-integer is taken as parsed)', '{"n":0.1}'],
    ['free 1e300 (no numeric constraint)', '{"free":1e300}'],
  ])('%s is admitted', (_label, args) => {
    expect(callRaw(args)).toBeUndefined();
  });
});

/** Events of an SSE stream, parsed as the SSE specification (and the SDK's parser) does. */
function sseEvents(text: string): { data: string }[] {
  const events: { data: string }[] = [];
  let data: string[] = [];
  for (const line of text.split(/\r\n|\n|\r/)) {
    if (line === '') {
      if (data.length > 0) events.push({ data: data.join('\n') });
      data = [];
    } else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
  }
  return events;
}

describe('attack: SSE events ended by mixed line endings (red team mcp-07)', () => {
  const spec: McpListFilterSpec = {
    requests: new Map([[1, 'tools/list']]),
    visible: (_kind, name) => name === 'search_docs',
  };
  const tools = ['search_docs', 'transfer_funds', 'delete_repository'].map((name) => ({ name }));
  const note = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info' } });
  const list = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools } });

  it.each(['\n\n', '\r\n\r\n', '\r\r', '\n\r\n', '\r\n\r', '\r\n\n', '\n\r'])(
    'events ended by %j: the agent sees only the visible tool, whatever the chunking',
    (sep) => {
      const text = `event: message\ndata: ${note}${sep}event: message\ndata: ${list}${sep}`;
      for (const cut of [0, 1, text.indexOf(sep), text.indexOf(sep) + 1, text.length - 1]) {
        const f = new McpSseFilter(spec);
        const out = dec(f.push(enc(text.slice(0, cut)))) + dec(f.push(enc(text.slice(cut)))) + dec(f.end());
        const events = sseEvents(out);
        const answers = events.map(
          (e) => JSON.parse(e.data) as { id?: number; result?: { tools: { name: string }[] } },
        );
        const names = answers.flatMap((a) => a.result?.tools.map((t) => t.name) ?? []);
        expect({ sep, cut, names, count: events.length }).toEqual({
          sep,
          cut,
          names: ['search_docs'],
          count: 2,
        });
      }
    },
  );

  it('an event ended by CR CR at the end of a chunk goes out at once, not with the next chunk', () => {
    const f = new McpSseFilter(spec);
    const first = dec(f.push(enc(`data: ${note}\r\r`)));
    expect(sseEvents(first).map((e) => e.data)).toEqual([note]);
    const rest = dec(f.push(enc(`\ndata: ${list}\r`))) + dec(f.push(enc('\n\r\n'))) + dec(f.end());
    const answers = sseEvents(rest).map(
      (e) => JSON.parse(e.data) as { result: { tools: { name: string }[] } },
    );
    expect(answers.map((a) => a.result.tools.map((t) => t.name))).toEqual([['search_docs']]);
  });

  it('an event whose data is not JSON is dropped (fail closed), the others pass', () => {
    const broken = `data: {"jsonrpc":"2.0","id":1,"result":{"tools":${JSON.stringify(tools)}}\ndata: x\n\n`;
    const f = new McpSseFilter(spec);
    const out = dec(f.push(enc(`data: ${note}\n\n${broken}id: 7\ndata: \n\n`))) + dec(f.end());
    expect(out).not.toContain('delete_repository');
    expect(sseEvents(out).map((e) => e.data)).toEqual([note, '']);
  });
});

describe('attack: a pattern without a length bound (red team mcp-08)', () => {
  it('the schema refuses pattern without max_length, and max_length over 4096 with pattern, naming the path', () => {
    const r = mcpPolicySchema.safeParse({
      tools: [{ name: 'lookup', arguments: [{ pointer: '/email', type: 'string', pattern: '(\\w+\\s?)+' }] }],
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join('.'))).toEqual(['tools.0.arguments.0.max_length']);
    const big = mcpPolicySchema.safeParse({
      tools: [{ name: 'lookup', arguments: [{ pointer: '/email', pattern: 'a+', max_length: 4097 }] }],
    });
    expect(big.success).toBe(false);
    expect(
      mcpPolicySchema.safeParse({
        tools: [{ name: 'lookup', arguments: [{ pointer: '/email', pattern: 'a+', max_length: 4096 }] }],
      }).success,
    ).toBe(true);
  });

  it('a bundle with such a pattern is refused at load with the path of the rule', async () => {
    await expect(
      createWorld({
        policyPatch: (doc) => {
          const routes = (doc.route_groups as { routes: Record<string, unknown>[] }[])[0]!.routes;
          routes[0]!.mcp = { tools: [{ name: 'lookup', arguments: [{ pointer: '/e', pattern: '(a+)+' }] }] };
        },
      }),
    ).rejects.toThrow(
      'routes[0].mcp.tools[0].arguments[0].max_length: a rule with pattern needs max_length (at most 4096)',
    );
  });

  it('type and max_length are checked before the pattern runs: a long or non-string value never reaches it', () => {
    const p = policy({
      methods: ['tools/call'],
      tools: [
        {
          name: 'lookup',
          arguments: [{ pointer: '/email', type: 'string', max_length: 20, pattern: '(\\w+\\s?)+' }],
        },
      ],
    });
    const started = performance.now();
    // 25 characters and a failing suffix: the backtracking pattern takes seconds on it (40: minutes).
    expect(
      reasonOf(p, rpc('tools/call', { name: 'lookup', arguments: { email: `${'a'.repeat(25)}!` } })),
    ).toBe('mcp_argument_denied');
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('attack: resources/subscribe and completion/complete without a rule (finding 7)', () => {
  const p = policy({
    methods: ['resources/*', 'completion/complete'],
    resources: [{ uri: 'file:///docs/*' }],
    prompts: [{ name: 'summary' }],
  });

  it.each([
    [
      'subscribe outside the rules',
      rpc('resources/subscribe', { uri: 'file:///secret/keys.txt' }),
      'mcp_resource_denied',
    ],
    [
      'unsubscribe outside the rules',
      rpc('resources/unsubscribe', { uri: 'file:///secret/k' }),
      'mcp_resource_denied',
    ],
    [
      'subscribe with dot segments',
      rpc('resources/subscribe', { uri: 'file:///docs/../secret' }),
      'mcp_resource_denied',
    ],
    ['subscribe without a uri', rpc('resources/subscribe', {}), 'mcp_invalid_jsonrpc'],
    ['subscribe under the rules', rpc('resources/subscribe', { uri: 'file:///docs/a.md' }), undefined],
    ['unsubscribe under the rules', rpc('resources/unsubscribe', { uri: 'file:///docs/a.md' }), undefined],
    [
      'completion of an unlisted prompt',
      rpc('completion/complete', {
        ref: { type: 'ref/prompt', name: 'secret' },
        argument: { name: 'a', value: '' },
      }),
      'mcp_prompt_denied',
    ],
    [
      'completion of a listed prompt',
      rpc('completion/complete', {
        ref: { type: 'ref/prompt', name: 'summary' },
        argument: { name: 'a', value: '' },
      }),
      undefined,
    ],
    [
      'completion of an unlisted resource template',
      rpc('completion/complete', {
        ref: { type: 'ref/resource', uri: 'file:///secret/{name}' },
        argument: { name: 'name', value: '' },
      }),
      'mcp_resource_denied',
    ],
    [
      'completion of a listed resource template',
      rpc('completion/complete', {
        ref: { type: 'ref/resource', uri: 'file:///docs/{name}' },
        argument: { name: 'name', value: '' },
      }),
      undefined,
    ],
    [
      'completion without a ref',
      rpc('completion/complete', { argument: { name: 'a', value: '' } }),
      'mcp_invalid_jsonrpc',
    ],
    [
      'completion with an unknown ref type',
      rpc('completion/complete', {
        ref: { type: 'ref/tool', name: 'x' },
        argument: { name: 'a', value: '' },
      }),
      'mcp_invalid_jsonrpc',
    ],
  ])('%s', (_label, body, reason) => {
    expect(reasonOf(p, body)).toBe(reason);
  });
});
