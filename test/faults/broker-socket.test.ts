import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerIpcClient, BrokerIpcError } from '../../pkg/broker/index.js';
import { ProtectedClient, brokerPassports } from '../../pkg/client/index.js';
import { startUpstream, type Upstream } from '../helpers/adapter.js';

// A broker-ipc-v1 peer that fails in the middle of an exchange. The client must reject promptly
// with a BrokerIpcError (never hang until its 20 s timeout) and a ProtectedClient must send
// nothing to the API.

type Fault = 'close-after-request' | 'half-line-then-close' | 'destroy-after-request' | 'close-mid-request';
const FAULTS: readonly Fault[] = [
  'close-after-request',
  'half-line-then-close',
  'destroy-after-request',
  'close-mid-request',
];
const CLIENT_TIMEOUT_MS = 20_000;
/** A broken exchange must be reported well before the client timeout. */
const PROMPT_MS = 3_000;
const SEQUENTIAL = 5;
const CONCURRENT = 10;

interface FaultyBroker {
  socketPath: string;
  connections: number;
  /** Complete request lines received (parsed request ids). */
  requestIds: string[];
  server: Server;
}

async function faultyBroker(dir: string, fault: Fault): Promise<FaultyBroker> {
  const state: FaultyBroker = {
    socketPath: join(dir, `${fault}.sock`),
    connections: 0,
    requestIds: [],
    server: createServer(),
  };
  state.server.on('connection', (socket: Socket) => {
    state.connections += 1;
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      if (fault === 'close-mid-request') {
        // Read a first piece of the request only, then go away.
        socket.destroy();
        return;
      }
      buffered += chunk.toString('utf8');
      const nl = buffered.indexOf('\n');
      if (nl === -1) return;
      const id = (JSON.parse(buffered.slice(0, nl)) as { request_id: string }).request_id;
      state.requestIds.push(id);
      if (fault === 'close-after-request') socket.end();
      else if (fault === 'destroy-after-request') socket.destroy();
      else {
        // The first half of a plausible answer, without its newline.
        const answer = JSON.stringify({
          request_id: id,
          accepted: true,
          artifacts: { passport: { format: 'x', value: 'eyJhbGciOiJFZERTQSJ9.eyJ', jti: 'j' } },
        });
        socket.end(answer.slice(0, Math.floor(answer.length / 2)));
      }
    });
  });
  await new Promise<void>((resolve) => state.server.listen(state.socketPath, resolve));
  return state;
}

let dir: string;
let api: Upstream;
let apiConnections = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tp-faults-broker-'));
  api = await startUpstream();
  api.server.on('connection', () => (apiConnections += 1));
});
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Settle `p`, returning its rejection and how long it took. */
async function rejectionOf(p: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  const error = await p().then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  return { error, ms: performance.now() - started };
}

function expectBrokerIpcError(result: { error: unknown; ms: number }, fault: Fault): void {
  expect(result.error, fault).toBeInstanceOf(BrokerIpcError);
  expect(['broker_protocol_error', 'broker_unreachable'], fault).toContain(
    (result.error as BrokerIpcError).reason,
  );
  expect(result.ms, fault).toBeLessThan(PROMPT_MS);
}

describe('fault: the broker socket closes mid-request', () => {
  it.each(FAULTS)(
    '%s: BrokerIpcClient and ProtectedClient reject promptly; nothing reaches the API',
    async (fault) => {
      const broker = await faultyBroker(dir, fault);
      try {
        const ipc = new BrokerIpcClient({ socketPath: broker.socketPath, timeoutMs: CLIENT_TIMEOUT_MS });
        let fetches = 0;
        const client = new ProtectedClient({
          baseUrl: api.url,
          audience: 'orders-api',
          passports: brokerPassports({
            broker: ipc,
            keyBinding: { requested: 'attested_workload', acceptable: ['attested_workload'] },
          }),
          fetch: (input, init) => {
            fetches += 1;
            return globalThis.fetch(input, init);
          },
        });
        const call = () =>
          client.request({
            method: 'POST',
            path: '/v1/orders',
            routeId: 'orders.create',
            headers: { 'content-type': 'application/json' },
            body: '{"sku":"fault"}',
          });
        const apiBefore = { requests: api.requests.length, connections: apiConnections };

        const results: { error: unknown; ms: number }[] = [];
        for (let i = 0; i < SEQUENTIAL; i++) results.push(await rejectionOf(call));
        results.push(...(await Promise.all(Array.from({ length: CONCURRENT }, () => rejectionOf(call)))));

        for (const r of results) expectBrokerIpcError(r, fault);
        const total = SEQUENTIAL + CONCURRENT;
        expect(results).toHaveLength(total);
        expect(broker.connections).toBe(total);
        if (fault !== 'close-mid-request') expect(broker.requestIds).toHaveLength(total);
        // Nothing was sent to the API: no fetch, no connection, no request.
        expect(fetches).toBe(0);
        expect(apiConnections - apiBefore.connections).toBe(0);
        expect(api.requests.length - apiBefore.requests).toBe(0);
        console.info(
          `[faults] broker ${fault}: ${total} rejections (${[...new Set(results.map((r) => (r.error as BrokerIpcError).reason))].join(', ')}), slowest ${Math.max(...results.map((r) => r.ms)).toFixed(1)} ms`,
        );
      } finally {
        await new Promise<void>((resolve) => broker.server.close(() => resolve()));
      }
    },
    30_000,
  );
});
