// Broker issuance benchmark, side by side in one process and one run:
//   1. the crypto floor of one issuance: an Ed25519 key generation (the per-request cnf key) and
//      two signatures (passport, stamp), through the same WebCrypto the broker uses;
//   2. Broker.issue in process (validation, policy, mint, audit event to memory);
//   3. the same over broker-ipc-v1 on a real Unix socket, one request in flight;
//   4. the same with 16 requests in flight.
// Ratios to the floor are what to read; absolute figures move with the machine's load.
//
// Run: npm run build && node bench/broker.mjs   (BENCH_QUICK=1 for a short run, BENCH_SMOKE=1 for a
//      tiny one; `--json <file>` or BENCH_JSON_OUT=<file> also writes the results as data)

import console from 'node:console';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';

import { generateSigningKey } from '../dist/pkg/authcore/index.js';
import { MemoryAuditSink } from '../dist/pkg/audit/index.js';
import { loadPolicyBundle, loadTrustMaterial } from '../dist/pkg/bundle/index.js';
import { Broker, BrokerIpcClient, serveBrokerIpc, softwareIdentity } from '../dist/pkg/broker/index.js';
import { describeRequestForBroker, prepareRequest } from '../dist/pkg/client/index.js';
import { benchMode, createResults } from './results.mjs';
import { ISSUER, ORIGIN, TRUST_DOMAIN, buildBenchWorld } from './world.mjs';

const MODE = benchMode();
const BUDGET_MS = MODE === 'smoke' ? 150 : MODE === 'quick' ? 400 : 2500;
const WARMUP = MODE === 'smoke' ? 10 : 50;
const MAX_OPS = 200_000;

/** Operations for at most BUDGET_MS (and MAX_OPS); each operation's latency, for percentiles. */
async function measure(fn, concurrency = 1) {
  for (let i = 0; i < WARMUP; i++) await fn();
  let ops = 0;
  const lat = [];
  const start = performance.now();
  const worker = async () => {
    while (ops < MAX_OPS && performance.now() - start < BUDGET_MS) {
      ops++;
      const t = performance.now();
      await fn();
      lat.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = performance.now() - start;
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] * 1000;
  return {
    ops,
    ms,
    usPerOp: (ms * 1000) / ops,
    perSecond: (ops * 1000) / ms,
    p50Us: pct(50),
    p99Us: pct(99),
  };
}

const now = Math.floor(Date.now() / 1000);
const world = await buildBenchWorld(now - 60);
const signers = [{ kid: 'bundle-signer-1', key: world.bundleSigner.publicKey }];
const trust = await loadTrustMaterial(world.trustDoc, { signers });
const policy = await loadPolicyBundle(world.policyDoc, { signers });
const audit = new MemoryAuditSink();
const broker = new Broker({
  issuer: ISSUER,
  issuerKey: world.caller,
  issuerKid: 'caller-1',
  identity: softwareIdentity({ subject: 'service:orders-client', trustDomain: TRUST_DOMAIN }),
  material: () => ({ trust, policy }),
  audit,
});

const outgoing = await prepareRequest({
  method: 'GET',
  url: `${ORIGIN}/v1/orders/search?status=open&limit=10`,
  audience: 'orders-api',
  routeId: 'orders.search',
});
const http = describeRequestForBroker(outgoing);
let n = 0;
const request = () => ({
  request_id: `bench-${n++}`,
  protocol: 'local-json-ipc',
  operation: 'issue_request_bound_passport',
  http,
  key_binding: {
    intent: 'route_policy_minimum',
    requested_key_binding: 'software',
    acceptable_key_bindings: ['software'],
    allow_software_fallback: false,
  },
});

const first = await broker.issue(request());
if (!first.accepted) throw new Error(`bench setup: broker refused ${first.reason_code}`);

const payload = new Uint8Array(512);
const digest = new Uint8Array(32);
const floor = await measure(async () => {
  const key = await generateSigningKey();
  await world.caller.sign(payload);
  await key.sign(digest);
});
const inProcess = await measure(async () => {
  const r = await broker.issue(request());
  if (!r.accepted) throw new Error(r.reason_code);
  if (audit.events.length > 10_000) audit.events.length = 0;
});

const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-bench-broker-'));
const server = await serveBrokerIpc(broker, { socketPath: path.join(dir, 'broker.sock') });
const client = new BrokerIpcClient({ socketPath: server.socketPath });
const ipc = async () => {
  const r = await client.issue(request());
  if (!r.accepted) throw new Error(r.reason_code);
  if (audit.events.length > 10_000) audit.events.length = 0;
};
const ipc1 = await measure(ipc, 1);
const ipc16 = await measure(ipc, 16);
await server.close();
rmSync(dir, { recursive: true, force: true });

const row = (name, r) =>
  `| ${name} | ${r.usPerOp.toFixed(1)} | ${Math.round(r.perSecond).toLocaleString('en-US')} | ${(r.usPerOp / floor.usPerOp).toFixed(2)}× |`;
console.log(
  `broker issuance — node ${process.version}, ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}`,
);
console.log('| measurement | µs/issue | issues/s | vs crypto floor |');
console.log('|---|---:|---:|---:|');
console.log(row('crypto floor (keygen + 2 Ed25519 signs)', floor));
console.log(row('Broker.issue in process', inProcess));
console.log(row('broker-ipc-v1 over Unix socket, 1 in flight', ipc1));
console.log(row('broker-ipc-v1 over Unix socket, 16 in flight', ipc16));
console.log(
  `broker-ipc-v1, 1 in flight: round trip p50 ${ipc1.p50Us.toFixed(0)} µs, p99 ${ipc1.p99Us.toFixed(0)} µs`,
);

const out = createResults('broker');
for (const [key, name, r] of [
  ['floor', 'crypto floor (keygen + 2 Ed25519 signs)', floor],
  ['in_process', 'Broker.issue in process', inProcess],
  ['ipc_1', 'broker-ipc-v1 over a Unix socket, 1 in flight', ipc1],
  ['ipc_16', 'broker-ipc-v1 over a Unix socket, 16 in flight', ipc16],
]) {
  out.add(`broker.${key}.us_per_issue`, r.usPerOp, {
    unit: 'µs',
    better: 'lower',
    description: `${name}: wall time per issuance (1 / throughput)`,
  });
  if (r !== floor) {
    out.add(`broker.${key}.vs_floor`, r.usPerOp / floor.usPerOp, {
      unit: '×',
      better: 'lower',
      kind: 'ratio',
      description: `${name}: time per issuance / the crypto floor's`,
    });
  }
}
out.add('broker.ipc_1.p99_us', ipc1.p99Us, {
  unit: 'µs',
  better: 'lower',
  description: 'broker-ipc-v1, 1 in flight: p99 of one round trip (connect, request, response)',
});
out.write();
