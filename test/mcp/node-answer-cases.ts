import { gzipSync } from 'node:zlib';
import { expect, it } from 'vitest';
import type { World } from '../helpers/fixture.js';
import { signedCall, type McpHarness } from './mcp-cases.js';

// Cases of the Node-stream points (the Node middleware in Express, the Fastify plugin), on top of
// the shared table: the answer's length after filtering and a compressed list answer.

/** A harness whose app can be told to answer the next `/mcp-json` request compressed. */
export interface McpNodeHarness extends McpHarness {
  /**
   * The next `/mcp-json` answer is the whole (unfiltered) tools list, gzip-compressed with
   * `Content-Encoding: gzip`, as a compression middleware behind the enforcement point sends it.
   */
  compressNext(): void;
}

/** The full tools list answer an MCP server gives (the point must filter it). */
export function unfilteredToolsAnswer(id: unknown): Buffer {
  const tools = ['search_docs', 'transfer_funds', 'delete_repository'].map((name) => ({
    name,
    inputSchema: { type: 'object' },
  }));
  return gzipSync(JSON.stringify({ jsonrpc: '2.0', id, result: { tools } }));
}

const list = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list', params: {} });

/** Register the Node-stream answer cases for one harness. */
export function mcpNodeAnswerCases(world: () => World, harness: () => McpNodeHarness): void {
  it('a filtered JSON list answer carries the Content-Length of the filtered body', async () => {
    const h = harness();
    const body = list(21);
    const r = await h.send(await signedCall(world(), h, body, '/mcp-json'), body);
    expect(r.status).toBe(200);
    const answer = JSON.parse(r.body) as { id: number; result: { tools: { name: string }[] } };
    expect(answer.id).toBe(21);
    expect(answer.result.tools.map((t) => t.name).sort()).toEqual(['search_docs', 'transfer_funds']);
    // Fastify declares the unfiltered length of the string it sends: the point must correct it.
    expect(Number(r.header('content-length'))).toBe(Buffer.byteLength(r.body));
  });

  it('attack: a compressed list answer is refused (502 upstream_unavailable), never passed unfiltered', async () => {
    const h = harness();
    h.compressNext();
    const body = list(22);
    const r = await h.send(await signedCall(world(), h, body, '/mcp-json'), body);
    expect([r.status, r.header('x-trustplane-reason')]).toEqual([502, 'upstream_unavailable']);
    expect(r.header('content-encoding')).toBeUndefined();
    expect(JSON.parse(r.body)).toMatchObject({ allowed: false, reason: 'upstream_unavailable' });
  });
}
