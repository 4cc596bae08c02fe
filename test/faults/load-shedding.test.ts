import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, writeWorld, type Upstream } from '../helpers/adapter.js';
import { bundleArgs, spawnAdapter, type AdapterProcess } from '../helpers/adapter-process.js';
import { scrape, send, signedSpec, type Outcome, type SendSpec } from '../helpers/faults.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { metricValue } from '../helpers/prometheus.js';

// The adapter as a process in front of a slow upstream, hit by a burst of BURST concurrent
// requests, each with its own passport, with small caps: MAX_IN_FLIGHT requests in flight,
// MAX_SOCKETS upstream connections, QUEUE_TIMEOUT_MS to wait for one. The excess is refused
// 503 `overloaded` with Retry-After, fast (well under the upstream's delay), BEFORE the kernel
// consumes the jti: the very same signed requests are accepted when resent after the burst.

const BURST = 200;
const MAX_IN_FLIGHT = 50;
const MAX_SOCKETS = 10;
const QUEUE_TIMEOUT_MS = 500;
const UPSTREAM_DELAY_MS = 5_000;
/** A refusal must come well before the slow upstream could have answered. */
const FAST_MS = 2_500;

const now = () => Math.floor(Date.now() / 1000);

let world: World;
let upstream: Upstream;
let files: ReturnType<typeof writeWorld>;
let adapter: AdapterProcess | undefined;
let slow = true;

beforeAll(async () => {
  world = await createWorld({ issuedAt: now() - 60 });
  files = writeWorld(world);
  upstream = await startUpstream((_seen, res) => {
    setTimeout(
      () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('answer');
      },
      slow ? UPSTREAM_DELAY_MS : 0,
    );
  });
});
afterAll(async () => {
  await adapter?.stop('SIGKILL');
  await upstream.close();
});

const label = (o: Outcome) =>
  o.kind === 'response' ? `${o.status} ${o.reason ?? 'allow'}` : `error ${o.code}`;

/** Run `fn` over `items` with at most `n` at a time. */
async function pool<T, R>(items: readonly T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

describe('fault: a burst against a slow upstream', () => {
  it(`${BURST} concurrent requests: the excess is refused 503 overloaded at once, no jti burnt, counted by kind`, async () => {
    adapter = await spawnAdapter(
      [
        '--upstream',
        upstream.url,
        ...bundleArgs(files),
        '--replay-journal',
        path.join(files.dir, 'shed.journal'),
        '--upstream-max-sockets',
        String(MAX_SOCKETS),
        '--upstream-response-timeout-ms',
        '20000',
        '--log-level',
        'warn',
      ],
      {
        env: {
          TRUSTPLANE_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
          TRUSTPLANE_UPSTREAM_QUEUE_TIMEOUT_MS: String(QUEUE_TIMEOUT_MS),
        },
      },
    );
    const base = adapter.base;
    const specs: SendSpec[] = await Promise.all(
      Array.from({ length: BURST }, async (_, i) =>
        signedSpec(await signed(world, { claims: { iat: now() } }), `burst-${i}`),
      ),
    );

    const startedAt = performance.now();
    const burst = await Promise.all(
      specs.map(async (s) => {
        const outcome = await send(base, s, { timeoutMs: 10_000 });
        return { outcome, ms: performance.now() - startedAt };
      }),
    );
    const labels = burst.map((b) => label(b.outcome));
    const tally: Record<string, number> = {};
    for (const l of labels) tally[l] = (tally[l] ?? 0) + 1;

    const refused = burst.flatMap((b, i) =>
      b.outcome.kind === 'response' && b.outcome.status === 503 && b.outcome.reason === 'overloaded'
        ? [{ i, ms: b.ms, headers: b.outcome.headers }]
        : [],
    );
    const allowed = burst.flatMap((b, i) =>
      b.outcome.kind === 'response' && b.outcome.status === 200 ? [i] : [],
    );
    // Only what the upstream sockets can carry is let through; everything else is refused.
    // (Soft: on a failure, the rest still shows whether the jtis of the others were burnt.)
    expect.soft(tally).toEqual({ '200 allow': MAX_SOCKETS, '503 overloaded': BURST - MAX_SOCKETS });
    expect(allowed).toHaveLength(MAX_SOCKETS);
    expect.soft(upstream.requests).toHaveLength(MAX_SOCKETS);
    // Refused fast (never after waiting for the upstream), and told when to come back.
    const slowest = Math.max(0, ...refused.map((r) => r.ms));
    expect.soft(slowest).toBeLessThan(FAST_MS);
    for (const r of refused) expect(r.headers['retry-after']).toMatch(/^\d+$/);

    // Counted by kind: in-flight cap and upstream queue, one refusal each.
    const m = await scrape(adapter.admin);
    const inFlight = metricValue(m, 'trustplane_overload_refusals_total', { kind: 'in_flight' });
    const queue = metricValue(m, 'trustplane_overload_refusals_total', { kind: 'upstream_queue' });
    expect.soft(inFlight).toBeGreaterThan(0);
    expect.soft(queue).toBeGreaterThan(0);
    expect.soft(inFlight + queue).toBe(refused.length);

    // No jti was consumed by a refusal: the very same signed requests are accepted now.
    slow = false;
    const others = specs.filter((_, i) => !allowed.includes(i));
    const resent = await pool(others, MAX_SOCKETS, (s) => send(base, s));
    const resentTally: Record<string, number> = {};
    for (const l of resent.map(label)) resentTally[l] = (resentTally[l] ?? 0) + 1;
    expect(resentTally).toEqual({ '200 allow': BURST - MAX_SOCKETS });
    // Positive control: the ones that were let through are replays now.
    const replays = await Promise.all(allowed.map((i) => send(base, specs[i]!)));
    expect(replays.map(label)).toEqual(Array(MAX_SOCKETS).fill('401 jti_replay'));

    console.info(
      `[faults] burst of ${BURST}: ${JSON.stringify(tally)}; refusals in_flight=${inFlight} upstream_queue=${queue}, slowest refusal ${slowest.toFixed(0)} ms (upstream delay ${UPSTREAM_DELAY_MS} ms); resent: ${JSON.stringify(resentTally)}`,
    );
  }, 40_000);
});
