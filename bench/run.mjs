// Verifier hot-path benchmark: the crypto ceiling (two Ed25519 verifies per request) against
// verifyRequest end to end and its parts, in one process and one run.
//
// Run: npm run bench   (builds, then `node bench/run.mjs`; imports the compiled dist/)
// Every loop is bounded by an iteration count and a time budget; the whole run stays under ~60 s.

import console from 'node:console';
import { verify as nodeVerify, createHash, createPublicKey, webcrypto } from 'node:crypto';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { TextEncoder } from 'node:util';

import {
  MemoryReplayStore,
  importRawPublicKey,
  issuePassport,
  useEd25519Primitive,
  useSha256Primitive,
  verifyPassport,
} from '../dist/pkg/authcore/index.js';
import { loadNativeEd25519, nodeSha256 } from '../dist/pkg/adapter/index.js';
import { buildRouteTable, loadPolicyBundle, loadTrustMaterial } from '../dist/pkg/bundle/index.js';
import { bodySha256, buildTranscript, normalizeQuery, signRequest } from '../dist/pkg/proof/index.js';
import { verifyRequest } from '../dist/pkg/verifier/index.js';
import { benchMode, createResults } from './results.mjs';
import { BUNDLE_SIGNER, ISSUER, ORIGIN, SOFTWARE_SOURCE, TRUST_DOMAIN, buildBenchWorld } from './world.mjs';

const subtle = webcrypto.subtle;
/** full, quick (BENCH_QUICK=1, ~10 s) or smoke (BENCH_SMOKE=1: tiny counts, proves the code runs). */
const MODE = benchMode();
const pick = (full, quick, smoke) => (MODE === 'smoke' ? smoke : MODE === 'quick' ? quick : full);
/** Time budget per measurement, ms. */
const BUDGET_MS = pick(2000, 300, 40);
/** Pre-signed requests per verifyRequest measurement (each jti is used once). */
const SIGNED_N = pick(3000, 600, 200);
/** Untimed pre-signed requests per kind before the verifyRequest rounds. */
const WARM_N = pick(500, 500, 50);
/** Untimed calls before a synchronous measurement. */
const SYNC_WARMUP = pick(100_000, 100_000, 1_000);
const CONCURRENCY = 32;
const out = createResults('run');

// ---------------------------------------------------------------------------------------------
// Harness

/**
 * Run `fn` sequentially (one operation in flight) until `budgetMs` or `maxOps` is reached, after
 * `warmup` untimed calls. `fn(i)` gets the iteration number; it may be sync or async.
 */
async function measure(
  fn,
  { budgetMs = BUDGET_MS, maxOps = 5_000_000, warmup = pick(200, 200, 20), batch = 1 } = {},
) {
  for (let i = 0; i < warmup; i++) await fn(i);
  let ops = 0;
  const start = performance.now();
  let elapsed = 0;
  while (ops < maxOps) {
    for (let j = 0; j < batch; j++) await fn(warmup + ops + j);
    ops += batch;
    if ((ops & 63) === 0 || batch > 1) {
      elapsed = performance.now() - start;
      if (elapsed >= budgetMs) break;
    }
  }
  elapsed = performance.now() - start;
  return { ops, ms: elapsed };
}

/** Synchronous variant for sub-microsecond operations (no await per call). */
function measureSync(fn, { budgetMs = BUDGET_MS, maxOps = 50_000_000, warmup = SYNC_WARMUP } = {}) {
  let sink = 0;
  for (let i = 0; i < warmup; i++) sink ^= fn(i) ? 1 : 0;
  let ops = 0;
  const start = performance.now();
  let elapsed = 0;
  while (ops < maxOps) {
    for (let j = 0; j < 4096; j++) sink ^= fn(ops + j) ? 1 : 0;
    ops += 4096;
    elapsed = performance.now() - start;
    if (elapsed >= budgetMs) break;
  }
  if (sink === 2) console.log('');
  return { ops, ms: elapsed };
}

/** `count` operations with `CONCURRENCY` in flight (the event loop overlaps the thread-pool work). */
async function measureConcurrent(fn, count) {
  let next = 0;
  const start = performance.now();
  const worker = async () => {
    while (next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { ops: count, ms: performance.now() - start };
}

const rows = [];
function record(key, name, { ops, ms }, extra = {}) {
  const opsPerSec = (ops / ms) * 1000;
  const usPerOp = (ms * 1000) / ops;
  const row = { key, name, ops, opsPerSec, usPerOp, ...extra };
  rows.push(row);
  process.stderr.write(`  ${name}: ${fmt(opsPerSec)} ops/s, ${usPerOp.toFixed(usPerOp < 1 ? 3 : 1)} µs/op\n`);
  return row;
}
const fmt = (n) => Math.round(n).toLocaleString('en-US');

// ---------------------------------------------------------------------------------------------
// World (the minimum of test/helpers/fixture.ts)

const NOW = 1_767_225_600;
async function createWorld() {
  const { caller, bundleSigner, trustDoc, policyDoc } = await buildBenchWorld(NOW - 60);
  const signers = [{ kid: BUNDLE_SIGNER.kid, key: bundleSigner.publicKey }];
  const trust = await loadTrustMaterial(trustDoc, { signers });
  const policy = await loadPolicyBundle(policyDoc, { signers });
  return { caller, trust, policy };
}

async function issue(world, jti) {
  return issuePassport(
    {
      iss: ISSUER,
      sub: 'service:orders-client',
      aud: 'orders-api',
      iat: NOW,
      exp: NOW + 300,
      jti,
      trust_domain: TRUST_DOMAIN,
      cnf: { kid: 'request-key', key_binding: 'software', public_key_b64url: world.caller.publicKey.x },
    },
    world.caller,
    { kid: 'caller-1' },
  );
}

/** An order as JSON, exactly 1024 bytes. */
const JSON_BODY_BYTES = (() => {
  const order = {
    order_id: 'ord_123',
    currency: 'USD',
    items: Array.from({ length: 8 }, (_, i) => ({ sku: `sku-${i}`, qty: i + 1, price: '19.99' })),
    note: '',
  };
  order.note = 'x'.repeat(1024 - JSON.stringify(order).length);
  const bytes = new TextEncoder().encode(JSON.stringify(order));
  if (bytes.length !== 1024) throw new Error('body is not 1 KiB');
  return bytes;
})();

/**
 * Pre-sign `count` requests, each with a fresh passport (fresh jti), as the raw-target
 * NormalizedRequest parts an adapter sees: method, raw path and query, Node-style header record.
 */
async function presign(world, kind, count) {
  const out = [];
  const one = async (i) => {
    const passport = await issue(world, `jti-${kind}-${i}-${webcrypto.randomUUID()}`);
    const isPost = kind.endsWith('post');
    const target = isPost ? '/v1/orders' : '/v1/orders/search';
    const query = isPost ? '' : 'status=open&limit=50&cursor=abc%2Fdef';
    const signed = await signRequest({
      method: isPost ? 'POST' : 'GET',
      url: `${ORIGIN}${target}${query ? `?${query}` : ''}`,
      routeId: isPost ? 'orders.create' : 'orders.search',
      passport,
      requestKey: world.caller,
      ...(isPost ? { body: JSON_BODY_BYTES, headers: { 'content-type': 'application/json' } } : {}),
    });
    return { method: isPost ? 'POST' : 'GET', path: target, query, headers: signed.headers };
  };
  for (let i = 0; i < count; i += 64) {
    const chunk = [];
    for (let j = i; j < Math.min(count, i + 64); j++) chunk.push(one(j));
    out.push(...(await Promise.all(chunk)));
  }
  return out;
}

/** What the adapter does per request: digest the body (read in one pass), then verify. */
async function verifyOne(ctx, signed, body) {
  const decision = await verifyRequest(
    {
      method: signed.method,
      scheme: 'https',
      authority: 'orders.example',
      path: signed.path,
      query: signed.query,
      headers: signed.headers,
      bodySha256: await bodySha256(body),
      bodyLength: body.length,
    },
    ctx,
  );
  if (!decision.allowed) throw new Error(`bench request denied: ${decision.reason}`);
  return decision;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const nproc = os.availableParallelism?.() ?? os.cpus().length;
  process.stderr.write(`node ${process.version}, ${nproc} CPUs (${cpu})\n`);
  const t0 = performance.now();

  const world = await createWorld();
  const ctx = () => ({
    trust: world.trust,
    policy: world.policy,
    replayStore: new MemoryReplayStore(),
    clock: () => NOW,
  });

  // (1) crypto ceiling: one WebCrypto Ed25519 verify of a 64-byte signature over a 32-byte digest.
  process.stderr.write('crypto ceiling\n');
  const digest = webcrypto.getRandomValues(new Uint8Array(32));
  const signature = await world.caller.sign(digest);
  const pub = world.caller.publicKey.cryptoKey;
  const verifyOnce = async () => {
    if (!(await subtle.verify({ name: 'Ed25519' }, pub, signature, digest))) throw new Error('bad sig');
  };
  const ceiling = record(
    'ed25519_verify_webcrypto',
    'Ed25519 verify, WebCrypto (crypto.subtle.verify)',
    await measure(verifyOnce),
  );
  const nodeKey = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: world.caller.publicKey.x },
    format: 'jwk',
  });
  record(
    'ed25519_verify_node_crypto',
    'Ed25519 verify, node:crypto sync (reference)',
    measureSync(() => nodeVerify(null, digest, nodeKey, signature), {
      warmup: pick(2000, 2000, 200),
      maxOps: 2_000_000,
    }),
  );
  const ceilingConc = record(
    'ed25519_verify_webcrypto_concurrent',
    `Ed25519 verify, WebCrypto, ${CONCURRENCY} in flight`,
    await measureConcurrent(verifyOnce, pick(20_000, 2000, 200)),
  );

  // (2) verifyRequest end to end, fresh jti per request.
  process.stderr.write('pre-signing requests\n');
  const [warmGet, warmPost, gets, posts, getsConc] = await Promise.all([
    presign(world, 'warm-get', WARM_N),
    presign(world, 'warm-post', WARM_N),
    presign(world, 'get', SIGNED_N),
    presign(world, 'post', SIGNED_N),
    presign(world, 'get-conc', SIGNED_N),
  ]);
  process.stderr.write(
    `  signed ${3 * SIGNED_N + 2 * WARM_N} requests in ${fmt(performance.now() - t0)} ms\n`,
  );
  process.stderr.write('verifyRequest\n');
  const empty = new Uint8Array(0);
  {
    const c = ctx();
    for (const s of warmGet) await verifyOne(c, s, empty);
    for (const s of warmPost) await verifyOne(c, s, JSON_BODY_BYTES);
  }
  // GET and POST alternate in rounds, so drift (GC of the pre-signed set, other load) hits both.
  const getCtx = ctx();
  const postCtx = ctx();
  const ROUNDS = 4;
  const getTotal = { ops: 0, ms: 0 };
  const postTotal = { ops: 0, ms: 0 };
  const perRound = Math.floor(SIGNED_N / ROUNDS);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [list, c, body, total] of [
      [gets, getCtx, empty, getTotal],
      [posts, postCtx, JSON_BODY_BYTES, postTotal],
    ]) {
      const offset = r * perRound;
      const m = await measure((i) => verifyOne(c, list[offset + i], body), {
        warmup: 0,
        maxOps: perRound,
        budgetMs: BUDGET_MS / ROUNDS,
      });
      total.ops += m.ops;
      total.ms += m.ms;
    }
  }
  const get = record('verify_request_get', 'verifyRequest GET, no body', getTotal);
  const post = record('verify_request_post', 'verifyRequest POST, 1 KiB JSON body', postTotal);
  const concCtx = ctx();
  const getConc = record(
    'verify_request_get_concurrent',
    `verifyRequest GET, ${CONCURRENCY} in flight`,
    await measureConcurrent((i) => verifyOne(concCtx, getsConc[i], empty), getsConc.length),
  );

  // Parts of the pipeline, to see where the time goes.
  process.stderr.write('parts\n');
  const token = gets[0].headers.authorization.slice('Bearer '.length);
  record(
    'verify_passport',
    'verifyPassport alone (1 Ed25519 verify + cnf key import)',
    await measure(() => verifyPassport(token, { issuers: world.trust, audience: 'orders-api', now: NOW })),
  );
  const cnfRaw = world.caller.publicKey.raw;
  record(
    'import_raw_public_key',
    'importRawPublicKey (cnf key, per request)',
    await measure(() => importRawPublicKey(cnfRaw)),
  );
  const small = new Uint8Array(32);
  record(
    'sha256_webcrypto_32b',
    'one crypto.subtle.digest SHA-256 call (32 B)',
    await measure(() => subtle.digest('SHA-256', small)),
  );
  record(
    'sha256_node_crypto_32b',
    'node:crypto createHash SHA-256 (32 B, sync, reference)',
    measureSync(() => createHash('sha256').update(small).digest().length === 32, { maxOps: 5_000_000 }),
  );
  record(
    'body_sha256_1kib',
    'bodySha256 of the 1 KiB body',
    await measure(() => bodySha256(JSON_BODY_BYTES)),
  );

  // (4) normalizeQuery and buildTranscript alone.
  const rawQuery = 'z=last&a=2&a=10&space=a%20b&encoded=%7E&empty=&cursor=abc%2Fdef';
  record(
    'normalize_query_7_pairs',
    'normalizeQuery (7 pairs)',
    measureSync(() => normalizeQuery(rawQuery).length > 0, { maxOps: 5_000_000 }),
  );
  const transcriptInput = {
    method: 'POST',
    scheme: 'https',
    authority: 'orders.example',
    path: '/v1/orders',
    query: rawQuery,
    audience: 'orders-api',
    routeId: 'orders.create',
    contentEncoding: 'identity',
    coveredHeaders: ['content-type', 'x-trustplane-nonce'],
    headers: { 'content-type': 'application/json', 'x-trustplane-nonce': 'nonce-1' },
    bodySha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    passportJti: 'jti-1',
    nonce: 'nonce-1',
    issuedAt: NOW,
    keyBinding: 'software',
  };
  record(
    'build_transcript',
    'buildTranscript (2 covered headers)',
    await measure(() => buildTranscript(transcriptInput)),
  );

  // (3) route resolution, 10 vs 10,000 routes.
  process.stderr.write('route resolution\n');
  const api = { api_id: 'orders-api', audience: 'orders-api' };
  const tableOf = (n) => {
    const entries = [];
    for (let i = 0; i < n; i++) {
      entries.push({
        route: {
          route_id: `r${i}.get`,
          method: 'GET',
          path_template: `/v${i % 7}/svc${i}/items/{id}`,
          allowed_sources: [SOFTWARE_SOURCE],
        },
        api,
        routeGroupId: 'g',
      });
    }
    return buildRouteTable(entries);
  };
  // 1,024 distinct request paths spread over the table (cache-cold-ish), and one hot path.
  const PATHS = 1024;
  const ROUTE_BUDGET_MS = BUDGET_MS / 2;
  const routeRows = new Map();
  for (const n of [10, 10_000, 100_000]) {
    const table = tableOf(n);
    const paths = Array.from({ length: PATHS }, (_, i) => {
      const svc = (i * 7919) % n;
      return `/v${svc % 7}/svc${svc}/items/x${i}`;
    });
    routeRows.set(
      `${n}`,
      record(
        `route_resolve_${n}_routes_distinct`,
        `route resolve, ${fmt(n)} routes, ${fmt(PATHS)} distinct paths`,
        measureSync((i) => table.resolve('GET', paths[i & (PATHS - 1)]) !== undefined, {
          budgetMs: ROUTE_BUDGET_MS,
        }),
      ),
    );
    if (n !== 100_000) {
      const hot = paths[PATHS - 1];
      routeRows.set(
        `${n}-hot`,
        record(
          `route_resolve_${n}_routes_hot`,
          `route resolve, ${fmt(n)} routes, one hot path`,
          measureSync(() => table.resolve('GET', hot) !== undefined, { budgetMs: ROUTE_BUDGET_MS }),
        ),
      );
    }
  }

  // (6) The adapter's configuration: native Ed25519 (libsodium, else node:crypto) and native SHA-256
  // injected through the one crypto interface, against two native verifies in the same run.
  process.stderr.write('verifyRequest with native crypto injected\n');
  const native = loadNativeEd25519();
  useEd25519Primitive(native.verify);
  useSha256Primitive(nodeSha256());
  const nativeCeiling = record(
    'ed25519_verify_native',
    `Ed25519 verify, ${native.name} (the adapter's primitive)`,
    measureSync(() => native.verify(world.caller.publicKey.raw, signature, digest), {
      warmup: pick(2000, 2000, 200),
      maxOps: 2_000_000,
    }),
  );
  const [nGets, nPosts] = await Promise.all([
    presign(world, 'native-get', SIGNED_N),
    presign(world, 'native-post', SIGNED_N),
  ]);
  {
    const c = ctx();
    for (const s of warmGet.slice(0, Math.min(warmGet.length, 500))) await verifyOne(c, s, empty);
  }
  const nGetCtx = ctx();
  const nPostCtx = ctx();
  const nGet = record(
    'verify_request_get_native',
    'verifyRequest GET, native crypto injected',
    await measure((i) => verifyOne(nGetCtx, nGets[i], empty), { warmup: 0, maxOps: nGets.length }),
  );
  const nPost = record(
    'verify_request_post_native',
    'verifyRequest POST 1 KiB, native crypto injected',
    await measure((i) => verifyOne(nPostCtx, nPosts[i], JSON_BODY_BYTES), {
      warmup: 0,
      maxOps: nPosts.length,
    }),
  );
  useEd25519Primitive(undefined);
  useSha256Primitive(undefined);

  const totalS = (performance.now() - t0) / 1000;
  process.stderr.write(`done in ${totalS.toFixed(1)} s\n\n`);

  // ---- report
  const ceilingRps = ceiling.opsPerSec / 2;
  const ceilingConcRps = ceilingConc.opsPerSec / 2;
  const lines = [];
  lines.push(`node ${process.version}, ${nproc} CPUs (${cpu}), ${os.platform()} ${os.arch()}`);
  lines.push('');
  lines.push('| Measurement | ops/s | µs/op | vs crypto ceiling |');
  lines.push('| --- | ---: | ---: | ---: |');
  const ratioOf = (row) => {
    if (row === get || row === post)
      return `${(row.opsPerSec / ceilingRps).toFixed(2)}× of ${fmt(ceilingRps)} req/s`;
    if (row === getConc)
      return `${(row.opsPerSec / ceilingConcRps).toFixed(2)}× of ${fmt(ceilingConcRps)} req/s`;
    if (row === ceiling) return `ceiling: ${fmt(ceilingRps)} req/s (2 verifies)`;
    if (row === nativeCeiling) return `ceiling: ${fmt(nativeCeiling.opsPerSec / 2)} req/s (2 verifies)`;
    if (row === nGet || row === nPost)
      return `${(row.opsPerSec / (nativeCeiling.opsPerSec / 2)).toFixed(2)}× of ${fmt(nativeCeiling.opsPerSec / 2)} req/s`;
    if (row === ceilingConc) return `ceiling: ${fmt(ceilingConcRps)} req/s (2 verifies)`;
    return '';
  };
  for (const row of rows) {
    const us = row.usPerOp < 1 ? `${(row.usPerOp * 1000).toFixed(0)} ns` : row.usPerOp.toFixed(1);
    lines.push(`| ${row.name} | ${fmt(row.opsPerSec)} | ${us} | ${ratioOf(row)} |`);
  }
  lines.push('');
  const overhead = (row) => row.usPerOp - 2 * ceiling.usPerOp;
  lines.push(
    `verifyRequest GET: ${get.usPerOp.toFixed(1)} µs/request = 2 × ${ceiling.usPerOp.toFixed(1)} µs Ed25519 ` +
      `+ ${overhead(get).toFixed(1)} µs other (${((overhead(get) / get.usPerOp) * 100).toFixed(0)}%)`,
  );
  lines.push(
    `verifyRequest POST 1 KiB: ${post.usPerOp.toFixed(1)} µs/request = 2 × ${ceiling.usPerOp.toFixed(1)} µs Ed25519 ` +
      `+ ${overhead(post).toFixed(1)} µs other (${((overhead(post) / post.usPerOp) * 100).toFixed(0)}%)`,
  );
  lines.push(
    `verifyRequest GET, native crypto: ${nGet.usPerOp.toFixed(1)} µs/request = 2 × ${nativeCeiling.usPerOp.toFixed(1)} µs ` +
      `${native.name} + ${(nGet.usPerOp - 2 * nativeCeiling.usPerOp).toFixed(1)} µs other; ` +
      `${((nativeCeiling.usPerOp * 2) / nGet.usPerOp).toFixed(2)}× of its ceiling (target ≥ 0.85×)`,
  );
  const routeRatio = (a, b) => (routeRows.get(a).usPerOp / routeRows.get(b).usPerOp).toFixed(2);
  lines.push(
    `route resolve time, 10,000 vs 10 routes: ${routeRatio('10000', '10')}× (distinct paths), ` +
      `${routeRatio('10000-hot', '10-hot')}× (hot path); 100,000 vs 10,000: ${routeRatio('100000', '10000')}×`,
  );
  lines.push(`total run time ${totalS.toFixed(1)} s`);
  console.log(lines.join('\n'));

  // ---- results as data (bench/results.mjs)
  for (const row of rows) {
    out.add(`run.${row.key}.us_per_op`, row.usPerOp, {
      unit: 'µs',
      better: 'lower',
      description: `${row.name}: wall time per operation`,
    });
  }
  const nodeCeilingRps = 1e6 / (2 * rows.find((r) => r.key === 'ed25519_verify_node_crypto').usPerOp);
  const vsCeiling = (id, row, ceilingOf, what) =>
    out.add(id, row.opsPerSec / ceilingOf, {
      unit: '×',
      better: 'higher',
      kind: 'ratio',
      description: `${row.name} throughput / ${what}`,
    });
  vsCeiling(
    'run.verify_request_get_native.vs_native_ceiling',
    nGet,
    nativeCeiling.opsPerSec / 2,
    'two native verifies',
  );
  vsCeiling(
    'run.verify_request_post_native.vs_native_ceiling',
    nPost,
    nativeCeiling.opsPerSec / 2,
    'two native verifies',
  );
  vsCeiling(
    'run.verify_request_get.vs_webcrypto_ceiling',
    get,
    ceilingRps,
    'two sequential WebCrypto verifies',
  );
  vsCeiling(
    'run.verify_request_post.vs_webcrypto_ceiling',
    post,
    ceilingRps,
    'two sequential WebCrypto verifies',
  );
  vsCeiling(
    'run.verify_request_get_concurrent.vs_webcrypto_ceiling',
    getConc,
    ceilingConcRps,
    `two WebCrypto verifies with ${CONCURRENCY} in flight`,
  );
  vsCeiling(
    'run.verify_request_get.vs_node_crypto_ceiling',
    get,
    nodeCeilingRps,
    'two sync node:crypto verifies',
  );
  const routeRatioOf = (a, b) => routeRows.get(a).usPerOp / routeRows.get(b).usPerOp;
  for (const [id, a, b, what] of [
    ['run.route_resolve.10000_vs_10_routes_distinct', '10000', '10', '10,000 vs 10 routes, distinct paths'],
    ['run.route_resolve.10000_vs_10_routes_hot', '10000-hot', '10-hot', '10,000 vs 10 routes, one hot path'],
    ['run.route_resolve.100000_vs_10000_routes_distinct', '100000', '10000', '100,000 vs 10,000 routes'],
  ]) {
    out.add(id, routeRatioOf(a, b), {
      unit: '×',
      better: 'lower',
      kind: 'ratio',
      description: `route resolve time, ${what}`,
    });
  }
  out.add('run.total_s', totalS, { unit: 's', better: 'lower', description: 'wall time of the whole run' });
  out.write();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
