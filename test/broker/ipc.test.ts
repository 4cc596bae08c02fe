import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import {
  Broker,
  BrokerIpcClient,
  BrokerIpcError,
  serveBrokerIpc,
  spiffeWorkloadIdentity,
  type BrokerIpcRequest,
  type BrokerIpcServer,
} from '../../pkg/broker/index.js';
import { sha256HexSync } from '../../pkg/internal/sha256.js';
import {
  BROKER_ISSUER,
  NOW,
  TRUST_DOMAIN,
  allowBrokerOn,
  createWorld,
  type World,
} from '../helpers/fixture.js';

const WORKLOAD = 'spiffe://example.local/ns/orders/sa/worker';
let world: World;
let dir: string;
const servers: BrokerIpcServer[] = [];
const audit = new MemoryAuditSink();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tp-ipc-'));
  world = await createWorld({
    policyPatch: allowBrokerOn(['orders.search']),
  });
});

afterEach(async () => {
  while (servers.length > 0) await servers.pop()!.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function newBroker(): Broker {
  const identity = spiffeWorkloadIdentity(WORKLOAD, TRUST_DOMAIN, NOW + 3600);
  return new Broker({
    issuer: BROKER_ISSUER,
    issuerKey: world.broker,
    issuerKid: 'broker-1',
    identity: { keyBinding: 'attested_workload', kind: 'test', current: () => identity },
    material: () => ({ trust: world.trust, policy: world.policy }),
    clock: () => NOW,
    audit,
  });
}

async function serve(name: string, timeoutMs?: number): Promise<BrokerIpcServer> {
  const server = await serveBrokerIpc(newBroker(), {
    socketPath: join(dir, name),
    ...(timeoutMs ? { timeoutMs } : {}),
  });
  servers.push(server);
  return server;
}

function request(id: string): BrokerIpcRequest {
  const nonce = `nonce-${id}`;
  return {
    request_id: id,
    protocol: 'local-json-ipc',
    operation: 'issue_request_bound_passport',
    http: {
      method: 'GET',
      scheme: 'https',
      authority: 'orders.example',
      path: '/v1/orders/search',
      content_encoding: 'identity',
      query: {
        raw: '',
        normalization: 'rfc3986-sort-keys-values',
        normalized: '',
        sha256: sha256HexSync(''),
      },
      headers: {
        allow_list: ['x-trustplane-nonce'],
        selected: [{ name: 'x-trustplane-nonce', value_sha256: sha256HexSync(nonce) }],
      },
      audience: 'orders-api',
      route_id: 'orders.search',
      body_sha256: sha256HexSync(''),
      nonce,
    },
    key_binding: {
      intent: 'route_policy_minimum',
      requested_key_binding: 'attested_workload',
      acceptable_key_bindings: ['attested_workload'],
      allow_software_fallback: false,
    },
  };
}

/** Open a raw connection and collect response lines. */
async function rawConnection(path: string) {
  const socket: Socket = createConnection(path);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const lines: string[] = [];
  let buffer = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      lines.push(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  });
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  const waitFor = async (check: () => boolean, ms = 5000) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { socket, lines, isClosed: () => closed, waitFor };
}

describe('broker-ipc-v1 over a Unix socket', () => {
  it('creates the socket owner-only (0600) and removes it on close', async () => {
    const server = await serve('perm.sock');
    const mode = statSync(server.socketPath).mode;
    expect(mode & 0o777).toBe(0o600);
    expect(statSync(server.socketPath).isSocket()).toBe(true);
    await server.close();
    servers.length = 0;
    expect(existsSync(server.socketPath)).toBe(false);
  });

  it('round-trips a request through BrokerIpcClient', async () => {
    const server = await serve('rt.sock');
    const client = new BrokerIpcClient({ socketPath: server.socketPath });
    const response = await client.issue(request('rt-1'));
    expect(response).toMatchObject({
      request_id: 'rt-1',
      accepted: true,
      reason_code: 'broker_passport_issued',
    });
  });

  it('answers several lines on one connection in order, and keeps going after a non-JSON line', async () => {
    const server = await serve('order.sock');
    const conn = await rawConnection(server.socketPath);
    conn.socket.write(
      `${JSON.stringify(request('a'))}\nnot json\n${JSON.stringify(request('b'))}\n${JSON.stringify({ request_id: 'c' })}\n`,
    );
    await conn.waitFor(() => conn.lines.length === 4);
    const parsed = conn.lines.map((l) => JSON.parse(l) as { request_id: string; reason_code: string });
    expect(parsed.map((p) => [p.request_id, p.reason_code])).toEqual([
      ['a', 'broker_passport_issued'],
      ['unknown', 'malformed_request'],
      ['b', 'broker_passport_issued'],
      ['c', 'malformed_request'],
    ]);
    conn.socket.destroy();
  });

  it('refuses a line over 1 MiB with malformed_request and closes the connection', async () => {
    const server = await serve('big.sock');
    const conn = await rawConnection(server.socketPath);
    const before = audit.events.length;
    conn.socket.write(Buffer.alloc(1024 * 1024 + 10, 0x61));
    await conn.waitFor(() => conn.lines.length === 1 && conn.isClosed());
    expect(JSON.parse(conn.lines[0]!)).toMatchObject({
      request_id: 'unknown',
      accepted: false,
      reason_code: 'malformed_request',
      error: { message: 'the message exceeds 1 MiB' },
    });
    expect(audit.events.slice(before).map((e) => e.reason)).toEqual(['malformed_request']);
  });

  it('refuses invalid UTF-8', async () => {
    const server = await serve('utf8.sock');
    const conn = await rawConnection(server.socketPath);
    conn.socket.write(Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]));
    await conn.waitFor(() => conn.lines.length === 1);
    expect(JSON.parse(conn.lines[0]!)).toMatchObject({ reason_code: 'malformed_request' });
  });

  it('closes idle connections after the timeout', async () => {
    const server = await serve('idle.sock', 150);
    const conn = await rawConnection(server.socketPath);
    await conn.waitFor(() => conn.isClosed(), 3000);
    expect(conn.lines).toEqual([]);
  });

  it('refuses to start over a live broker or a regular file, and replaces a stale socket', async () => {
    const live = await serve('live.sock');
    await expect(serveBrokerIpc(newBroker(), { socketPath: live.socketPath })).rejects.toThrow(
      /another broker is listening/,
    );
    const file = join(dir, 'regular.sock');
    writeFileSync(file, 'not a socket');
    await expect(serveBrokerIpc(newBroker(), { socketPath: file })).rejects.toThrow(/not a socket/);

    // A stale socket: left behind by a broker that was SIGKILLed.
    const stalePath = join(dir, 'stale.sock');
    const child = spawn(
      process.execPath,
      ['-e', `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => console.log('up'))`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((r) => child.stdout!.once('data', () => r()));
    child.kill('SIGKILL');
    await new Promise<void>((r) => child.once('exit', () => r()));
    expect(statSync(stalePath).isSocket()).toBe(true);
    const server = await serveBrokerIpc(newBroker(), { socketPath: stalePath });
    servers.push(server);
    const response = await new BrokerIpcClient({ socketPath: stalePath }).issue(request('stale'));
    expect(response.accepted).toBe(true);
  });
});

describe('BrokerIpcClient failures', () => {
  it('reports an unreachable broker', async () => {
    const client = new BrokerIpcClient({ socketPath: join(dir, 'missing.sock') });
    await expect(client.issue(request('x'))).rejects.toMatchObject({
      name: 'BrokerIpcError',
      reason: 'broker_unreachable',
    });
  });

  it('times out when the broker never answers', async () => {
    const path = join(dir, 'mute.sock');
    const mute = createServer(() => undefined);
    await new Promise<void>((r) => mute.listen(path, r));
    try {
      const client = new BrokerIpcClient({ socketPath: path, timeoutMs: 150 });
      const error = await client.issue(request('x')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BrokerIpcError);
      expect((error as BrokerIpcError).reason).toBe('broker_timeout');
    } finally {
      mute.close();
    }
  });

  it('refuses an answer for another request_id or out of protocol', async () => {
    for (const [answer, code] of [
      [JSON.stringify({ ...JSON.parse('{}'), request_id: 'other' }), 'broker_protocol_error'],
      ['garbage', 'broker_protocol_error'],
    ] as const) {
      const path = join(dir, `liar-${code}-${answer.length}.sock`);
      const liar = createServer((s) => s.write(`${answer}\n`));
      await new Promise<void>((r) => liar.listen(path, r));
      try {
        const error = await new BrokerIpcClient({ socketPath: path })
          .issue(request('x'))
          .catch((e: unknown) => e);
        expect((error as BrokerIpcError).reason).toBe(code);
      } finally {
        liar.close();
      }
    }
    // A well-formed allow for a different request id is refused too.
    const ok = await newBroker().issue(request('someone-else'));
    const path = join(dir, 'swap.sock');
    const swap = createServer((s) => s.write(`${JSON.stringify(ok)}\n`));
    await new Promise<void>((r) => swap.listen(path, r));
    try {
      const error = await new BrokerIpcClient({ socketPath: path })
        .issue(request('mine'))
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ reason: 'broker_protocol_error', message: /another request_id/ });
    } finally {
      swap.close();
    }
  });
});
