import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildToolServer, ToolServerState } from '../../examples/mcp-agent/tools.js';
import { ProtectedClient, selfIssuedPassports } from '../../pkg/client/index.js';
import { McpSessionBindings } from '../../pkg/mcp/index.js';
import { startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import {
  createWorld,
  NOW,
  SOFTWARE_ISSUER,
  TRUST_DOMAIN,
  UNLISTED_ISSUER,
  type World,
} from '../helpers/fixture.js';
import { MCP_AUDIENCE, MCP_POLICY } from './mcp-cases.js';

// Red team mcp-03 (issue 17): a stateful SDK server with an event store replays a stream's events
// on GET /mcp with Last-Event-ID, so a tools/list answer filtered on its POST came back unfiltered
// on the GET; and a session id was not bound to the caller who used it. The adapter in front of
// that server; the GET and DELETE routes carry `mcp` too (as docs/mcp.md now recommends).

let world: World;
let adapter: TestAdapter;
let upstream: http.Server;

const software = {
  source_type: 'software_jwks',
  issuer: SOFTWARE_ISSUER,
  trust_domain: TRUST_DOMAIN,
  subject_exact: 'service:orders-client',
};
const intruderSource = {
  source_type: 'software_jwks',
  issuer: UNLISTED_ISSUER,
  trust_domain: TRUST_DOMAIN,
  subject_exact: 'service:intruder',
};

function policyPatch(doc: Record<string, unknown>): void {
  const sources = [software, intruderSource];
  (doc.apis as unknown[]).push({ api_id: 'tools-api', audience: MCP_AUDIENCE });
  (doc.route_groups as unknown[]).push({
    route_group_id: 'tools',
    api_id: 'tools-api',
    routes: [
      {
        route_id: 'mcp.post',
        method: 'POST',
        path_template: '/mcp',
        allowed_sources: sources,
        mcp: MCP_POLICY,
      },
      {
        route_id: 'mcp.get',
        method: 'GET',
        path_template: '/mcp',
        allowed_sources: sources,
        mcp: MCP_POLICY,
      },
      {
        route_id: 'mcp.delete',
        method: 'DELETE',
        path_template: '/mcp',
        allowed_sources: sources,
        mcp: MCP_POLICY,
      },
    ],
  });
}

beforeAll(async () => {
  world = await createWorld({ policyPatch });
  const state = new ToolServerState();
  const transports = new Map<string, StreamableHTTPServerTransport>();
  upstream = http.createServer((req, res) => {
    void (async () => {
      const sid = req.headers['mcp-session-id'] as string | undefined;
      let t = sid !== undefined ? transports.get(sid) : undefined;
      if (t === undefined) {
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          eventStore: new InMemoryEventStore(),
          onsessioninitialized: (id) => void transports.set(id, created),
        });
        await buildToolServer(state).connect(created);
        t = created;
      }
      await t.handleRequest(req, res);
    })();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  adapter = await startTestAdapter(world, { upstream: base });
}, 60_000);

afterAll(async () => {
  await adapter?.adapter.close();
  upstream?.closeAllConnections();
  upstream?.close();
});

type Caller = 'agent' | 'intruder';

function passportsOf(caller: Caller) {
  return caller === 'agent'
    ? selfIssuedPassports({
        issuer: SOFTWARE_ISSUER,
        subject: 'service:orders-client',
        trustDomain: TRUST_DOMAIN,
        signingKey: world.caller,
        kid: 'caller-1',
        clock: () => NOW,
      })
    : selfIssuedPassports({
        issuer: UNLISTED_ISSUER,
        subject: 'service:intruder',
        trustDomain: TRUST_DOMAIN,
        signingKey: world.unlisted,
        kid: 'unlisted-1',
        clock: () => NOW,
      });
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * Sign and send one request through the adapter; the answer is read until it ends, or until
 * `until` matches it, or 20 s (an SSE stream on GET stays open; a loaded machine is slow).
 */
async function send(
  caller: Caller,
  method: 'POST' | 'GET' | 'DELETE',
  headers: Record<string, string>,
  body?: string,
  until?: RegExp,
): Promise<Answer> {
  let captured: { url: string; init: RequestInit } | undefined;
  const client = new ProtectedClient({
    baseUrl: adapter.base,
    audience: MCP_AUDIENCE,
    passports: passportsOf(caller),
    fetch: (url, init) => {
      captured = { url: String(url), init: init ?? {} };
      return Promise.resolve(new Response(null, { status: 204 }));
    },
  });
  const routeId = method === 'POST' ? 'mcp.post' : method === 'GET' ? 'mcp.get' : 'mcp.delete';
  await client.request({ method, path: '/mcp', routeId, headers, ...(body !== undefined ? { body } : {}) });
  const signed: Record<string, string> = {};
  new Headers(captured!.init.headers).forEach((v, k) => (signed[k] = v));
  const u = new URL(adapter.base);
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method, path: '/mcp', headers: { host: u.host, ...signed } },
      (res) => {
        let text = '';
        const timer = setTimeout(done, 20_000);
        function done() {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
          req.destroy();
        }
        res.on('data', (c: Buffer) => {
          text += c.toString('utf8');
          if (until?.test(text) === true) done();
        });
        res.on('end', done);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const json = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const toolNames = (text: string) => [...text.matchAll(/"name":"([a-z_]+)"/g)].map((m) => m[1]!);

/** A session opened by the agent, with a filtered tools/list answer on its POST stream. */
async function openSession(): Promise<{ session: string; priming: string; listed: string[] }> {
  const init = await send(
    'agent',
    'POST',
    json,
    JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
    /"result"/,
  );
  const session = init.headers['mcp-session-id'] as string;
  expect(typeof session).toBe('string');
  const sh = { ...json, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
  const note = await send(
    'agent',
    'POST',
    sh,
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  );
  expect(note.status).toBe(202);
  const list = await send(
    'agent',
    'POST',
    sh,
    JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    /"tools"/,
  );
  const priming = /id: (\S+)\r?\n(?:retry: \d+\r?\n)?data: \r?\n/.exec(list.body)?.[1];
  expect(priming).toBeDefined();
  return { session, priming: priming!, listed: toolNames(list.body) };
}

describe('attack: GET /mcp with Last-Event-ID replays a list answer (red team mcp-03)', () => {
  it('the replayed tools/list answer on the GET stream is filtered like the POST one', async () => {
    const { session, priming, listed } = await openSession();
    expect(listed.sort()).toEqual(['search_docs', 'transfer_funds']);
    const replay = await send(
      'agent',
      'GET',
      {
        accept: 'text/event-stream',
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-11-25',
        'last-event-id': priming,
      },
      undefined,
      /"tools"/,
    );
    expect({ status: replay.status, tools: toolNames(replay.body).sort() }).toEqual({
      status: 200,
      tools: ['search_docs', 'transfer_funds'],
    });
  });
});

describe('attack: another caller reuses an MCP session id (red team mcp-03)', () => {
  it('is refused mcp_session_mismatch on POST, GET and DELETE; the owner goes on', async () => {
    const { session, priming } = await openSession();
    const sh = { ...json, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
    const call = JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method: 'tools/call',
      params: { name: 'search_docs', arguments: { query: 'q' } },
    });
    const post = await send('intruder', 'POST', sh, call, /"result"|"error"/);
    const get = await send('intruder', 'GET', {
      accept: 'text/event-stream',
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-11-25',
      'last-event-id': priming,
    });
    const del = await send('intruder', 'DELETE', {
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-11-25',
    });
    const reasons = [post, get, del].map((r) => ({
      status: r.status,
      reason: r.headers['x-trustplane-reason'],
    }));
    expect(reasons).toEqual([
      { status: 403, reason: 'mcp_session_mismatch' },
      { status: 403, reason: 'mcp_session_mismatch' },
      { status: 403, reason: 'mcp_session_mismatch' },
    ]);
    expect(post.body).not.toContain('3 results');
    const own = await send('agent', 'POST', sh, call, /"result"|"error"/);
    expect({ status: own.status, answered: own.body.includes('3 results') }).toEqual({
      status: 200,
      answered: true,
    });
  });
});

describe('McpSessionBindings', () => {
  it('binds an id to its first caller, stays bounded, and forgets the least recently used first', () => {
    const s = new McpSessionBindings(2);
    expect([s.bind('a', 'alice'), s.bind('a', 'alice'), s.bind('a', 'mallory')]).toEqual([true, true, false]);
    expect(s.bind('b', 'bob')).toBe(true);
    expect(s.bind('a', 'alice')).toBe(true); // a is now the most recently used
    expect(s.bind('c', 'carol')).toBe(true); // forgets b
    expect(s.size).toBe(2);
    expect([s.bind('a', 'mallory'), s.bind('c', 'mallory'), s.bind('b', 'mallory')]).toEqual([
      false,
      false,
      true,
    ]);
    expect(() => new McpSessionBindings(0)).toThrow(RangeError);
  });
});
