// Broker issuance benchmark, side by side in one process and one run, for the two identity
// sources a broker mints for:
//   - software: `softwareIdentity`, passports with `cnf.key_binding` `software`;
//   - SPIFFE: an X.509-SVID read from spiffe-helper files (`openSpiffeFilesIdentity`, as
//     `trustplane broker serve --identity spiffe-files` does), minted by a dev SPIFFE CA;
//     `attested_workload` passports with SPIFFE provenance, under a second issuer (the broker's).
// Measured:
//   1. the crypto floor of one issuance: an Ed25519 key generation (the per-request cnf key) and
//      two signatures (passport, stamp), through the same WebCrypto the broker uses;
//   2. Broker.issue in process (validation, policy, mint, audit event to memory), per source;
//   3. the same over broker-ipc-v1 on a real Unix socket, one request in flight, per source;
//   4. the same with 16 requests in flight, per source.
// Before any timing, one passport of each source (in process and over the socket) is sent the way
// ProtectedClient sends it and must be allowed by verifyRequest.
// Ratios to the floor are what to read; absolute figures move with the machine's load. CPU per
// issue is the whole process's (user + system, every thread: WebCrypto signs on the libuv pool;
// over IPC it includes the client's side), so 1e6 / cpu_us_per_issue is issues per CPU-second.
//
// Run: npm run build && node bench/broker.mjs   (BENCH_QUICK=1 for a short run, BENCH_SMOKE=1 for a
//      tiny one; `--json <file>` or BENCH_JSON_OUT=<file> also writes the results as data)

import console from 'node:console';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';

import { MemoryReplayStore, generateSigningKey } from '../dist/pkg/authcore/index.js';
import { MemoryAuditSink } from '../dist/pkg/audit/index.js';
import { loadPolicyBundle, loadTrustMaterial, signDocument } from '../dist/pkg/bundle/index.js';
import {
  Broker,
  BrokerIpcClient,
  createDevSpiffeCa,
  mintDevSvid,
  openSpiffeFilesIdentity,
  serveBrokerIpc,
  softwareIdentity,
  writeSpiffeHelperFiles,
} from '../dist/pkg/broker/index.js';
import {
  ProtectedClient,
  brokerPassports,
  describeRequestForBroker,
  prepareRequest,
} from '../dist/pkg/client/index.js';
import { createLogger } from '../dist/pkg/runtime/logger.js';
import { verifyRequest } from '../dist/pkg/verifier/index.js';
import { benchMode, createResults } from './results.mjs';
import { BUNDLE_SIGNER, ISSUER, ORIGIN, SOFTWARE_SOURCE, TRUST_DOMAIN, buildBenchWorld } from './world.mjs';

// The Fetch API classes Node provides as globals (ProtectedClient hands its fetch a Request's parts).
const { Request, Response } = globalThis;

const MODE = benchMode();
const BUDGET_MS = MODE === 'smoke' ? 150 : MODE === 'quick' ? 400 : 2500;
const WARMUP = MODE === 'smoke' ? 10 : 50;
const MAX_OPS = 200_000;

/** The SPIFFE broker's issuer (listed as `spiffe_spire`, max `attested_workload`) and workload. */
const SPIFFE_ISSUER = 'https://issuer.example/spire';
const SPIFFE_KID = 'broker-1';
const SPIFFE_ID = `spiffe://${TRUST_DOMAIN}/ns/orders/sa/orders-client`;
const SPIFFE_SOURCE = {
  source_type: 'spiffe_spire',
  issuer: SPIFFE_ISSUER,
  trust_domain: TRUST_DOMAIN,
  subject_prefix: `spiffe://${TRUST_DOMAIN}/ns/orders/sa/`,
  required_key_binding: 'attested_workload',
  provenance_policy: {
    profile: 'trustplane-spiffe-spire-k8s-v1',
    required_spiffe_trust_domain: TRUST_DOMAIN,
    required_posture: 'spiffe_svid_verified',
  },
};

/** Operations for at most BUDGET_MS (and MAX_OPS); each operation's latency, for percentiles. */
async function measure(fn, concurrency = 1) {
  for (let i = 0; i < WARMUP; i++) await fn();
  let ops = 0;
  const lat = [];
  const cpu = process.cpuUsage();
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
  const used = process.cpuUsage(cpu);
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] * 1000;
  return {
    ops,
    ms,
    usPerOp: (ms * 1000) / ops,
    perSecond: (ops * 1000) / ms,
    cpuUsPerOp: (used.user + used.system) / ops,
    p50Us: pct(50),
    p99Us: pct(99),
  };
}

const now = Math.floor(Date.now() / 1000);
const world = await buildBenchWorld(now - 60);
const signers = [{ kid: BUNDLE_SIGNER.kid, key: world.bundleSigner.publicKey }];
const trust = await loadTrustMaterial(world.trustDoc, { signers });
const policy = await loadPolicyBundle(world.policyDoc, { signers });
const audit = new MemoryAuditSink();
const softwareBroker = new Broker({
  issuer: ISSUER,
  issuerKey: world.caller,
  issuerKid: 'caller-1',
  identity: softwareIdentity({ subject: 'service:orders-client', trustDomain: TRUST_DOMAIN }),
  material: () => ({ trust, policy }),
  audit,
});

// The SPIFFE broker's material, as `trustplane up` writes it: the trust material lists the broker's
// key under a `spiffe_spire` issuer of the trust domain, and the route allows that source beside
// the software one. Its own documents, so the software path runs on exactly the shared world's.
const brokerKey = await generateSigningKey();
const spiffeTrust = await loadTrustMaterial(
  await signDocument(
    {
      version: 'trustplane-trust-material-v1',
      kind: 'trust_material',
      trust_domain: TRUST_DOMAIN,
      issued_at: now - 60,
      issuers: [
        {
          issuer: ISSUER,
          trust_domain: TRUST_DOMAIN,
          source_type: 'software_jwks',
          keys: [{ kty: 'OKP', crv: 'Ed25519', x: world.caller.publicKey.x, kid: 'caller-1' }],
        },
        {
          issuer: SPIFFE_ISSUER,
          trust_domain: TRUST_DOMAIN,
          source_type: 'spiffe_spire',
          max_key_binding: 'attested_workload',
          keys: [{ kty: 'OKP', crv: 'Ed25519', x: brokerKey.publicKey.x, kid: SPIFFE_KID }],
        },
      ],
    },
    world.bundleSigner,
    BUNDLE_SIGNER,
  ),
  { signers },
);
const spiffePolicy = await loadPolicyBundle(
  await signDocument(
    {
      version: 'trustplane-bundle-v1',
      kind: 'policy_runtime_bundle',
      trust_domain: TRUST_DOMAIN,
      issued_at: now - 60,
      apis: [{ api_id: 'orders-api', audience: 'orders-api', base_url: ORIGIN }],
      route_groups: [
        {
          route_group_id: 'orders',
          api_id: 'orders-api',
          routes: [
            {
              route_id: 'orders.search',
              method: 'GET',
              path_template: '/v1/orders/search',
              allowed_sources: [SOFTWARE_SOURCE, SPIFFE_SOURCE],
            },
          ],
        },
      ],
      default_required_key_binding: 'software',
      default_freshness_class: 'bounded',
      default_max_staleness_seconds: 300,
      revocations: [],
    },
    world.bundleSigner,
    BUNDLE_SIGNER,
  ),
  { signers },
);

const dir = mkdtempSync(path.join(os.tmpdir(), 'tp-bench-broker-'));
const ca = createDevSpiffeCa({ trustDomain: TRUST_DOMAIN, nowSeconds: now });
const svidFiles = await writeSpiffeHelperFiles(
  path.join(dir, 'svid'),
  mintDevSvid(ca, { spiffeId: SPIFFE_ID, nowSeconds: now }),
);
const spiffeIdentity = await openSpiffeFilesIdentity(svidFiles, {
  log: createLogger('silent'),
  trustBundles: () => spiffeTrust.spiffeBundles,
});
const spiffeBroker = new Broker({
  issuer: SPIFFE_ISSUER,
  issuerKey: brokerKey,
  issuerKid: SPIFFE_KID,
  identity: spiffeIdentity,
  material: () => ({ trust: spiffeTrust, policy: spiffePolicy }),
  audit,
});

const outgoing = await prepareRequest({
  method: 'GET',
  url: `${ORIGIN}/v1/orders/search?status=open&limit=10`,
  audience: 'orders-api',
  routeId: 'orders.search',
});
const http = describeRequestForBroker(outgoing);
const keyBinding = (binding) => ({
  intent: 'route_policy_minimum',
  requested_key_binding: binding,
  acceptable_key_bindings: [binding],
  allow_software_fallback: false,
});
let n = 0;
const requestFor = (binding) => {
  const kb = keyBinding(binding);
  return () => ({
    request_id: `bench-${n++}`,
    protocol: 'local-json-ipc',
    operation: 'issue_request_bound_passport',
    http,
    key_binding: kb,
  });
};

const sources = [
  {
    key: 'software',
    prefix: 'broker',
    label: 'software',
    broker: softwareBroker,
    binding: 'software',
    subject: 'service:orders-client',
    trust,
    policy,
  },
  {
    key: 'spiffe',
    prefix: 'broker.spiffe',
    label: 'SPIFFE X.509-SVID',
    broker: spiffeBroker,
    binding: 'attested_workload',
    subject: SPIFFE_ID,
    trust: spiffeTrust,
    policy: spiffePolicy,
  },
];

const servers = [];
for (const s of sources) {
  s.request = requestFor(s.binding);
  const server = await serveBrokerIpc(s.broker, { socketPath: path.join(dir, `${s.key}.sock`) });
  servers.push(server);
  s.client = new BrokerIpcClient({ socketPath: server.socketPath });
}

/**
 * One request sent as ProtectedClient sends it, with a passport from `transport`, verified by
 * verifyRequest: the bench times only issuance that an enforcement point accepts.
 */
async function checkVerifies(s, transport, via) {
  const decisions = [];
  const client = new ProtectedClient({
    baseUrl: ORIGIN,
    audience: 'orders-api',
    passports: brokerPassports({
      broker: transport,
      keyBinding: { requested: s.binding, acceptable: [s.binding] },
    }),
    fetch: async (url, init) => {
      const decision = await verifyRequest(new Request(url, init), {
        trust: s.trust,
        policy: s.policy,
        replayStore: new MemoryReplayStore(),
      });
      decisions.push(decision);
      return new Response(null, { status: decision.status });
    },
  });
  await client.request({
    method: 'GET',
    path: '/v1/orders/search',
    query: 'status=open&limit=10',
    routeId: 'orders.search',
  });
  const d = decisions[0];
  if (!d?.allowed) throw new Error(`bench setup: ${s.key} passport (${via}) denied: ${d?.reason}`);
  if (d.keyBinding !== s.binding || d.subject !== s.subject) {
    throw new Error(`bench setup: ${s.key} passport (${via}) allowed as ${d.subject} ${d.keyBinding}`);
  }
}
for (const s of sources) {
  await checkVerifies(s, s.broker, 'in process');
  await checkVerifies(s, s.client, 'broker-ipc-v1');
}

const trim = () => {
  if (audit.events.length > 10_000) audit.events.length = 0;
};
const issueVia = (s, transport) => async () => {
  const r = await transport.issue(s.request());
  if (!r.accepted) throw new Error(r.reason_code);
  trim();
};

const payload = new Uint8Array(512);
const digest = new Uint8Array(32);
const floor = await measure(async () => {
  const key = await generateSigningKey();
  await world.caller.sign(payload);
  await key.sign(digest);
});
// Sources interleaved per phase, so load drift during the run hits both alike.
for (const s of sources) s.inProcess = await measure(issueVia(s, s.broker));
for (const s of sources) s.ipc1 = await measure(issueVia(s, s.client), 1);
for (const s of sources) s.ipc16 = await measure(issueVia(s, s.client), 16);
for (const server of servers) await server.close();
await spiffeIdentity.close?.();
rmSync(dir, { recursive: true, force: true });

const row = (name, r) =>
  `| ${name} | ${r.usPerOp.toFixed(1)} | ${Math.round(r.perSecond).toLocaleString('en-US')} | ${r.cpuUsPerOp.toFixed(1)} | ${(r.usPerOp / floor.usPerOp).toFixed(2)}× |`;
console.log(
  `broker issuance — node ${process.version}, ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}`,
);
console.log('| measurement | µs/issue | issues/s | CPU µs/issue | vs crypto floor |');
console.log('|---|---:|---:|---:|---:|');
console.log(row('crypto floor (keygen + 2 Ed25519 signs)', floor));
for (const s of sources) {
  console.log(row(`${s.label}: Broker.issue in process`, s.inProcess));
  console.log(row(`${s.label}: broker-ipc-v1 over Unix socket, 1 in flight`, s.ipc1));
  console.log(row(`${s.label}: broker-ipc-v1 over Unix socket, 16 in flight`, s.ipc16));
}
for (const s of sources) {
  console.log(
    `${s.label}: broker-ipc-v1, 1 in flight: round trip p50 ${s.ipc1.p50Us.toFixed(0)} µs, p99 ${s.ipc1.p99Us.toFixed(0)} µs`,
  );
}

const out = createResults('broker');
out.add('broker.floor.us_per_issue', floor.usPerOp, {
  unit: 'µs',
  better: 'lower',
  description: 'crypto floor (keygen + 2 Ed25519 signs): wall time per issuance (1 / throughput)',
});
for (const s of sources) {
  const who = s.key === 'software' ? 'software source' : 'SPIFFE source (X.509-SVID, attested_workload)';
  for (const [key, name, r] of [
    ['in_process', 'Broker.issue in process', s.inProcess],
    ['ipc_1', 'broker-ipc-v1 over a Unix socket, 1 in flight', s.ipc1],
    ['ipc_16', 'broker-ipc-v1 over a Unix socket, 16 in flight', s.ipc16],
  ]) {
    out.add(`${s.prefix}.${key}.us_per_issue`, r.usPerOp, {
      unit: 'µs',
      better: 'lower',
      description: `${who}, ${name}: wall time per issuance (1 / throughput)`,
    });
    out.add(`${s.prefix}.${key}.vs_floor`, r.usPerOp / floor.usPerOp, {
      unit: '×',
      better: 'lower',
      kind: 'ratio',
      description: `${who}, ${name}: time per issuance / the crypto floor's`,
    });
  }
  for (const [key, name, r] of [
    ['in_process', 'Broker.issue in process', s.inProcess],
    ['ipc_16', 'broker-ipc-v1, 16 in flight', s.ipc16],
  ]) {
    out.add(`${s.prefix}.${key}.issues_per_s`, r.perSecond, {
      unit: '1/s',
      better: 'higher',
      description: `${who}, ${name}: passports minted per second`,
    });
  }
  out.add(`${s.prefix}.in_process.cpu_us_per_issue`, s.inProcess.cpuUsPerOp, {
    unit: 'µs',
    better: 'lower',
    description: `${who}, Broker.issue in process: process CPU (user + system, all threads) per issuance`,
  });
  out.add(`${s.prefix}.ipc_1.p50_us`, s.ipc1.p50Us, {
    unit: 'µs',
    better: 'lower',
    description: `${who}, broker-ipc-v1, 1 in flight: p50 of one round trip (connect, request, response)`,
  });
  out.add(`${s.prefix}.ipc_1.p99_us`, s.ipc1.p99Us, {
    unit: 'µs',
    better: 'lower',
    description: `${who}, broker-ipc-v1, 1 in flight: p99 of one round trip (connect, request, response)`,
  });
}
const [software, spiffe] = sources;
out.add('broker.spiffe.in_process.vs_software', spiffe.inProcess.usPerOp / software.inProcess.usPerOp, {
  unit: '×',
  better: 'lower',
  kind: 'ratio',
  description: 'Broker.issue in process: time per issuance, SPIFFE source / software source',
});
out.write();
