import { describe, expect, it } from 'vitest';
import { runToExit } from './helpers.js';

// examples/mcp-agent/agent.ts as a real process: bundles with a per-tool policy, the example MCP
// server (official SDK), the adapter in front, an SDK agent signing through createSigningFetch.
describe('examples/mcp-agent', () => {
  it('lists only the permitted tools, calls one, and gets JSON-RPC errors for the forbidden tool and the argument over its limit', async () => {
    const r = await runToExit('examples/mcp-agent/agent.ts', {}, 50_000);
    expect(r.stderr).not.toContain('UNEXPECTED');
    expect(r.stdout).toContain('search_docs, transfer_funds\n');
    expect(r.stdout).toMatch(/delete_repository +-> JSON-RPC error -32001 mcp_tool_denied/);
    expect(r.stdout).toMatch(/transfer_funds \{amount: 5000\} +-> JSON-RPC error -32001 mcp_argument_denied/);
    expect(r.stdout).toMatch(/the MCP server received +-> tools\/call transfer_funds\n/);
    expect(r.stdout).not.toContain('UNEXPECTED');
    expect(r.code).toBe(0);
  }, 60_000);
});
