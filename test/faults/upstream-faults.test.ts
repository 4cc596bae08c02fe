import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAdapter, startUpstream, type TestAdapter, type Upstream } from '../helpers/adapter.js';
import { scrape, send, signedSpec, waitFor, type Outcome } from '../helpers/faults.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { metricValue } from '../helpers/prometheus.js';

// An upstream that hangs, one that resets the connection, one that answers slowly. Each phase
// gets the documented answer, and afterwards nothing is left behind: the upstream's server-side
// socket count is back within the adapter's pool bound (upstreamMaxSockets) and the adapter's
// trustplane_in_flight_requests gauge is back to 0.

const POOL = 4; // upstreamMaxSockets
const RESPONSE_TIMEOUT_MS = 400; // upstreamResponseTimeoutMs
const SLOW_HEADERS_MS = 150; // slow upstream: headers after this (within the timeout) ...
const SLOW_CHUNKS = 5; // ... then the body in chunks ...
const SLOW_CHUNK_MS = 120; // ... this far apart: the whole answer takes longer than the timeout
const BURST = 10; // concurrent requests per hang / reset phase (more than the pool)

type Mode = 'hang' | 'reset' | 'slow';
let mode: Mode = 'hang';
const hanging: ServerResponse[] = [];

let world: World;
let upstream: Upstream;
let tp: TestAdapter;

beforeAll(async () => {
  world = await createWorld();
  upstream = await startUpstream((_seen, res) => {
    if (mode === 'hang') {
      hanging.push(res); // never answered
    } else if (mode === 'reset') {
      res.socket?.resetAndDestroy();
    } else {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const tick = setInterval(() => {
          i += 1;
          if (i < SLOW_CHUNKS) res.write(`chunk-${i};`);
          else {
            clearInterval(tick);
            res.end(`chunk-${i};`);
          }
        }, SLOW_CHUNK_MS);
      }, SLOW_HEADERS_MS);
    }
  });
  tp = await startTestAdapter(world, {
    upstream: upstream.url,
    upstreamMaxSockets: POOL,
    upstreamResponseTimeoutMs: RESPONSE_TIMEOUT_MS,
  });
});
afterAll(async () => {
  await tp?.adapter.close();
  await upstream?.close();
});

const connections = () =>
  new Promise<number>((resolve, reject) =>
    upstream.server.getConnections((e, n) => (e ? reject(e) : resolve(n))),
  );

let sent = 0;
async function burst(n: number): Promise<Outcome[]> {
  const specs = await Promise.all(
    Array.from({ length: n }, async () => signedSpec(await signed(world), `up-${mode}-${++sent}`)),
  );
  return Promise.all(specs.map((s) => send(tp.base, s)));
}

const summary = (os: Outcome[]) =>
  os.map((o) => (o.kind === 'response' ? `${o.status} ${o.reason ?? 'allow'}` : `error ${o.code}`));

/** Wait until nothing is left behind; returns the figures measured then. */
async function settled(phase: Mode): Promise<{ sockets: number; inFlight: number }> {
  let last = { sockets: -1, inFlight: -1 };
  await waitFor(
    async () => {
      last = {
        sockets: await connections(),
        inFlight: metricValue(await scrape(tp.admin), 'trustplane_in_flight_requests'),
      };
      return last.sockets <= POOL && last.inFlight === 0;
    },
    `the ${phase} phase to release its sockets (last: ${JSON.stringify(last)})`,
  );
  console.info(`[faults] upstream ${phase}: settled with ${JSON.stringify(last)}`);
  return last;
}

const errors = async (kind: string) =>
  metricValue(await scrape(tp.admin), 'trustplane_upstream_errors_total', { kind });

describe('fault: the upstream hangs, resets and answers slowly', () => {
  it(`hang: ${BURST} concurrent requests are answered 504 upstream_timeout; the sockets are released`, async () => {
    mode = 'hang';
    const started = performance.now();
    const outcomes = await burst(BURST);
    const ms = performance.now() - started;
    expect(summary(outcomes)).toEqual(Array(BURST).fill('504 upstream_timeout'));
    // Queued behind the pool or not, every request gets its answer near the timeout, not later.
    expect(ms).toBeLessThan(RESPONSE_TIMEOUT_MS + 5_000);
    expect(await errors('timeout')).toBe(BURST);
    expect(upstream.requests.length).toBeLessThanOrEqual(BURST);
    const after = await settled('hang');
    expect(after.sockets).toBeLessThanOrEqual(POOL);
    expect(after.inFlight).toBe(0);
    console.info(
      `[faults] upstream hang: ${BURST} × 504 in ${ms.toFixed(0)} ms (${upstream.requests.length} reached the upstream)`,
    );
  });

  it(`reset: ${BURST} concurrent requests are answered 502 upstream_unavailable; the sockets are released`, async () => {
    mode = 'reset';
    const before = upstream.requests.length;
    const outcomes = await burst(BURST);
    expect(summary(outcomes)).toEqual(Array(BURST).fill('502 upstream_unavailable'));
    expect(await errors('reset')).toBe(BURST);
    expect(upstream.requests.length - before).toBe(BURST);
    const after = await settled('reset');
    expect(after.sockets).toBeLessThanOrEqual(POOL);
    expect(after.inFlight).toBe(0);
  });

  it(`slow: ${3 * POOL} requests in waves of ${POOL} are delivered whole although each takes longer than the timeout`, async () => {
    mode = 'slow';
    const expected = Array.from({ length: SLOW_CHUNKS }, (_, i) => `chunk-${i + 1};`).join('');
    for (let wave = 0; wave < 3; wave++) {
      const started = performance.now();
      const outcomes = await burst(POOL);
      const ms = performance.now() - started;
      expect(summary(outcomes)).toEqual(Array(POOL).fill('200 allow'));
      for (const o of outcomes) expect(o.kind === 'response' && o.body).toBe(expected);
      expect(ms).toBeGreaterThan(RESPONSE_TIMEOUT_MS);
      const after = await settled('slow');
      expect(after.sockets).toBeLessThanOrEqual(POOL);
      expect(after.inFlight).toBe(0);
    }
    expect(await errors('timeout')).toBe(BURST);
    expect(await errors('reset')).toBe(BURST);
    expect(await errors('connect')).toBe(0);
  });
});
