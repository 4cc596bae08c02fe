/**
 * The MCP example end to end, in one process: signed bundles with a per-tool policy, the example
 * MCP server (server.ts), the adapter in front of it, and an agent (the official SDK's `Client`)
 * whose every request is signed by `createSigningFetch` from `trustplane/client`.
 *
 *   npm run build && node --import tsx examples/mcp-agent/agent.ts
 *
 * Prints one line per step; exits 0 when every step behaved as the policy says, 1 otherwise.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { resolveAdapterConfig, startAdapter } from 'trustplane/adapter';
import { MemoryAuditSink } from 'trustplane/audit';
import { generateSigningKey } from 'trustplane/authcore';
import { buildPolicyBundle, buildTrustMaterial, signDocument, type McpPolicy } from 'trustplane/bundle';
import { ProtectedClient, createSigningFetch, selfIssuedPassports } from 'trustplane/client';
import { start } from './server.js';

const ISSUER = 'https://issuer.example/agents';
const SUBJECT = 'agent:research-assistant';
const TRUST_DOMAIN = 'example.local';
const AUDIENCE = 'tools-api';

/** The per-tool policy of the MCP route. */
export const MCP_RULES: McpPolicy = {
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

/** Write signed trust material and a policy bundle with the MCP routes into `dir`. */
async function writeBundles(dir: string, caller: Awaited<ReturnType<typeof generateSigningKey>>) {
  const signer = await generateSigningKey();
  const now = Math.floor(Date.now() / 1000);
  const source = {
    source_type: 'software_jwks',
    issuer: ISSUER,
    trust_domain: TRUST_DOMAIN,
    subject_exact: SUBJECT,
  };
  const trust = buildTrustMaterial(
    {
      trust_domain: TRUST_DOMAIN,
      issuers: [
        {
          issuer: ISSUER,
          trust_domain: TRUST_DOMAIN,
          source_type: 'software_jwks',
          keys: [{ kty: 'OKP', crv: 'Ed25519', x: caller.publicKey.x, kid: 'agent-1' }],
        },
      ],
    },
    now,
  );
  const policy = buildPolicyBundle(
    {
      trust_domain: TRUST_DOMAIN,
      apis: [{ api_id: 'tools-api', audience: AUDIENCE }],
      route_groups: [
        {
          route_group_id: 'tools',
          api_id: 'tools-api',
          routes: [
            {
              route_id: 'tools.mcp',
              method: 'POST',
              path_template: '/mcp',
              allowed_sources: [source],
              mcp: MCP_RULES,
            },
            // The SDK opens a GET stream after initialization: signed too, and under the same rules, so
            // list answers replayed on it are filtered as well (docs/mcp.md); this stateless server
            // answers it 405.
            {
              route_id: 'tools.mcp.get',
              method: 'GET',
              path_template: '/mcp',
              allowed_sources: [source],
              mcp: MCP_RULES,
            },
          ],
        },
      ],
      policy_version: 'mcp-example',
    },
    now,
  );
  const signedBy = { issuer: 'https://bundles.example', kid: 'example-signer' };
  const files = { trust: path.join(dir, 'trust.json'), policy: path.join(dir, 'policy.json') };
  writeFileSync(files.trust, JSON.stringify(await signDocument(trust, signer, signedBy)));
  writeFileSync(files.policy, JSON.stringify(await signDocument(policy, signer, signedBy)));
  return { ...files, signerKey: signer.publicKey.x };
}

/** The outcome of one agent call, as a short text. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    const result = (await call) as { structuredContent?: unknown; content?: unknown };
    const text = (result.content as { text?: string }[] | undefined)?.[0]?.text;
    return text ?? JSON.stringify(result.structuredContent);
  } catch (e) {
    if (e instanceof McpError) return `JSON-RPC error ${e.code} ${(e.data as { reason?: string }).reason}`;
    throw e;
  }
}

async function main(): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tp-mcp-agent-'));
  const caller = await generateSigningKey();
  const files = await writeBundles(dir, caller);
  const mcp = await start('127.0.0.1', 0);
  const audit = new MemoryAuditSink();
  const adapter = await startAdapter(
    resolveAdapterConfig({
      flags: {
        listen: '127.0.0.1:0',
        adminListen: '127.0.0.1:0',
        upstream: mcp.url,
        trustMaterial: files.trust,
        policyBundle: files.policy,
        trustMaterialPublicKeys: [files.signerKey],
        policyBundlePublicKeys: [files.signerKey],
        replayJournal: path.join(dir, 'replay.journal'),
        logLevel: 'warn',
      },
    }),
    { audit },
  );
  const base = `http://127.0.0.1:${adapter.address.port}`;
  const client = new ProtectedClient({
    baseUrl: base,
    audience: AUDIENCE,
    passports: selfIssuedPassports({
      issuer: ISSUER,
      subject: SUBJECT,
      trustDomain: TRUST_DOMAIN,
      signingKey: caller,
      kid: 'agent-1',
    }),
  });
  const fetch = createSigningFetch({
    client,
    routeId: ({ method }) => (method === 'GET' ? 'tools.mcp.get' : 'tools.mcp'),
  });
  const agent = new Client({ name: 'research-assistant', version: '1.0.0' });
  let failures = 0;
  const line = (step: string, got: string, ok: boolean) => {
    if (!ok) failures += 1;
    console.log(`${step.padEnd(34)}-> ${got}${ok ? '' : '   UNEXPECTED'}`);
  };
  try {
    await agent.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { fetch }));
    const names = (await agent.listTools()).tools.map((t) => t.name).sort();
    line('tools/list', names.join(', '), names.join() === 'search_docs,transfer_funds');
    const paid = await outcome(
      agent.callTool({ name: 'transfer_funds', arguments: { amount: 42, to: 'acct-7' } }),
    );
    line('transfer_funds {amount: 42}', paid, paid === 'transferred 42 to acct-7');
    const forbidden = await outcome(
      agent.callTool({ name: 'delete_repository', arguments: { name: 'prod' } }),
    );
    line('delete_repository', forbidden, forbidden.endsWith('mcp_tool_denied'));
    const over = await outcome(
      agent.callTool({ name: 'transfer_funds', arguments: { amount: 5000, to: 'acct-7' } }),
    );
    line('transfer_funds {amount: 5000}', over, over.endsWith('mcp_argument_denied'));
    const stats = (await (await globalThis.fetch(`${mcp.url}/stats`)).json()) as {
      received: { method: string; tool?: string }[];
    };
    const calls = stats.received.filter((r) => r.method === 'tools/call').map((r) => r.tool);
    line('the MCP server received', `tools/call ${calls.join(', ')}`, calls.join() === 'transfer_funds');
    const denied = audit.events.filter((e) => e.decision === 'deny').map((e) => `${e.mcp?.tool} ${e.reason}`);
    line('audit: denied calls', denied.join('; '), denied.length === 2);
  } finally {
    await agent.close().catch(() => undefined);
    await adapter.close();
    mcp.server.close();
    mcp.server.closeAllConnections();
  }
  return failures === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main();
}
