import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLedgerFile, verifyLedgerStream } from '../../pkg/audit/index.js';
import { startUpstream, writeWorld, type Upstream } from '../helpers/adapter.js';
import { bundleArgs, spawnAdapter, type AdapterProcess } from '../helpers/adapter-process.js';
import { scrape, send, signedSpec, waitFor, type Outcome } from '../helpers/faults.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { metricValue } from '../helpers/prometheus.js';

// The adapter as a process (built CLI, real clock), 40 requests in flight to a slow upstream,
// then SIGTERM: every in-flight request completes, requests sent after the signal are answered or
// refused at the connection (never half-handled), the process exits 0 within shutdownTimeoutMs,
// and its hash-chained audit file holds exactly one record per decision.

const IN_FLIGHT = 40;
const LATE = 10; // requests sent right after SIGTERM
const UPSTREAM_DELAY_MS = 1_500;
const SHUTDOWN_TIMEOUT_MS = 8_000;

const now = () => Math.floor(Date.now() / 1000);

let world: World;
let upstream: Upstream;
let files: ReturnType<typeof writeWorld>;
let adapter: AdapterProcess | undefined;

beforeAll(async () => {
  world = await createWorld({ issuedAt: now() - 60 });
  files = writeWorld(world);
  upstream = await startUpstream((_seen, res) => {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('slow answer');
    }, UPSTREAM_DELAY_MS);
  });
});
afterAll(async () => {
  await adapter?.stop('SIGKILL');
  await upstream.close();
});

describe('fault: SIGTERM under load', () => {
  it(`${IN_FLIGHT} in-flight requests complete, the process exits 0 in time, one audit record per decision`, async () => {
    const auditFile = path.join(files.dir, 'sigterm-audit.jsonl');
    adapter = await spawnAdapter([
      '--upstream',
      upstream.url,
      ...bundleArgs(files),
      '--replay-journal',
      path.join(files.dir, 'sigterm.journal'),
      '--audit',
      auditFile,
      '--shutdown-timeout-ms',
      String(SHUTDOWN_TIMEOUT_MS),
      '--log-level',
      'warn',
    ]);
    const child = adapter.child;
    const exited = new Promise<{ code: number | null; signal: string | null; at: number }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
    );

    const inFlightSpecs = await Promise.all(
      Array.from({ length: IN_FLIGHT }, async (_, i) =>
        signedSpec(await signed(world, { claims: { iat: now() } }), `inflight-${i}`),
      ),
    );
    const inFlight = Promise.all(inFlightSpecs.map((s) => send(adapter!.base, s, { timeoutMs: 20_000 })));
    await waitFor(() => upstream.requests.length === IN_FLIGHT, `${IN_FLIGHT} requests at the upstream`);
    const gauge = metricValue(await scrape(adapter.admin), 'trustplane_in_flight_requests');
    expect(gauge).toBe(IN_FLIGHT);

    const lateSpecs = await Promise.all(
      Array.from({ length: LATE }, async (_, i) =>
        signedSpec(await signed(world, { claims: { iat: now() } }), `late-${i}`),
      ),
    );
    const signalledAt = performance.now();
    child.kill('SIGTERM');
    const late = await Promise.all(lateSpecs.map((s) => send(adapter!.base, s, { timeoutMs: 20_000 })));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const exit = await exited;
    clearTimeout(timer);
    const exitMs = exit.at - signalledAt;
    const answered: Outcome[] = await inFlight;

    // Every in-flight request completed with the upstream's answer.
    expect(answered.map((o) => (o.kind === 'response' ? `${o.status} ${o.body}` : o.code))).toEqual(
      Array(IN_FLIGHT).fill('200 slow answer'),
    );
    // The process exited 0 within shutdownTimeoutMs.
    expect([exit.code, exit.signal]).toEqual([0, null]);
    expect(exitMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS);

    // A late request is answered whole or refused at the connection: nothing in between.
    const lateAnswered = late.flatMap((o, i) => (o.kind === 'response' ? [`late-${i}`] : []));
    const lateRefused = late.flatMap((o) => (o.kind === 'error' ? [o.code] : []));
    for (const code of lateRefused) expect(['ECONNREFUSED', 'ECONNRESET']).toContain(code);
    for (const o of late) if (o.kind === 'response') expect([200, 503]).toContain(o.status);

    // Exactly one audit record per decision, none for a refused connection; the chain verifies.
    const lines = readFileSync(auditFile, 'utf8').trim().split('\n');
    const records = lines.map(
      (l) => JSON.parse(l) as { request_id?: string; decision: string; jti?: string },
    );
    const expectedIds = [...inFlightSpecs.map((s) => s.headers['x-request-id']!), ...lateAnswered];
    expect(records.map((r) => r.request_id).sort()).toEqual([...expectedIds].sort());
    const allowedJtis = records.filter((r) => r.decision === 'allow').map((r) => r.jti);
    expect(new Set(allowedJtis).size).toBe(allowedJtis.length);
    expect(allowedJtis.length).toBeGreaterThanOrEqual(IN_FLIGHT);
    const chain = await verifyLedgerStream(readLedgerFile(auditFile));
    expect([chain.ok, chain.count]).toEqual([true, expectedIds.length]);
    // The upstream saw the in-flight requests and the late ones that were answered 200, nothing else.
    const lateAllowed = late.filter((o) => o.kind === 'response' && o.status === 200).length;
    expect(upstream.requests.length).toBe(IN_FLIGHT + lateAllowed);

    console.info(
      `[faults] SIGTERM: ${IN_FLIGHT} in flight (gauge ${gauge}) all 200; exit 0 after ${exitMs.toFixed(0)} ms (limit ${SHUTDOWN_TIMEOUT_MS}); late: ${lateAnswered.length} answered ${JSON.stringify(late.flatMap((o) => (o.kind === 'response' ? [o.status] : [])))}, refused ${JSON.stringify(lateRefused)}; ${records.length} audit records`,
    );
  }, 60_000);
});
