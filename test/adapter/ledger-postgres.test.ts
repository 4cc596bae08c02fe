import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAdapterConfig } from '../../pkg/adapter/resolve-adapter-config.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { startAdapter, type Adapter } from '../../pkg/adapter/server.js';
import { migrateLedger } from '../../pkg/audit/ledger-migrations.js';
import { verifyPostgresLedger } from '../../pkg/audit/index.js';
import { NOW, createWorld, signed, signedJson, type World } from '../helpers/fixture.js';
import { sendSigned, startUpstream, writeWorld, type Upstream } from '../helpers/adapter.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

// The adapter with the PostgreSQL ledger, a real PostgreSQL, real HTTP on loopback: a load of
// mixed allow/deny decisions leaves exactly one ledger record per decision, also when PostgreSQL
// is stopped in the middle and started again; `audit: required` routes answer 503 while it is down.

const TOTAL = 5_000;
const CONCURRENCY = 16;

let world: World;
let upstream: Upstream;
let server: PostgresServer;
let pool: pg.Pool;

beforeAll(async () => {
  world = await createWorld({
    policyPatch: (doc) => {
      const routes = (doc.route_groups as { routes: Record<string, unknown>[] }[])[0]!.routes;
      routes.find((r) => r.route_id === 'orders.search')!.audit = 'required';
    },
  });
  upstream = await startUpstream();
  server = await startPostgres();
  pool = new pg.Pool({ connectionString: server.url, max: 2 });
  pool.on('error', () => undefined);
  await migrateLedger(pool);
}, 60_000);

afterAll(async () => {
  await pool?.end();
  await upstream?.close();
  await server?.close();
});

async function adapterFor(chainId: string): Promise<{ adapter: Adapter; base: string }> {
  const files = writeWorld(world);
  const adapter = await startAdapter(
    resolveAdapterConfig({
      flags: {
        listen: '127.0.0.1:0',
        adminListen: '127.0.0.1:0',
        upstream: upstream.url,
        trustMaterial: files.trustMaterial,
        policyBundle: files.policyBundle,
        trustMaterialPublicKeys: [files.signerKey],
        policyBundlePublicKeys: [files.signerKey],
        replayJournal: path.join(files.dir, 'replay.journal'),
        reloadIntervalMs: 0,
        audit: server.url,
        auditChainId: chainId,
        auditSpill: path.join(mkdtempSync(path.join(tmpdir(), 'tp-spill-')), 'spill.jsonl'),
        auditDurableTimeoutMs: 1000,
        instance: chainId,
      },
    }),
    { clock: () => NOW, log: createLogger('silent') },
  );
  return { adapter, base: `http://127.0.0.1:${adapter.address.port}` };
}

type Kind = 'required' | 'best_effort' | 'deny';
const kindOf = (i: number): Kind => (['required', 'best_effort', 'deny'] as const)[i % 3]!;

/** Send request i of the load: an allowed search (audit required), an allowed create, or a deny. */
async function send(base: string, i: number): Promise<{ kind: Kind; status: number; at: number }> {
  const kind = kindOf(i);
  const body = `{"i":${i}}`;
  const res =
    kind === 'required'
      ? await sendSigned(base, await signed(world))
      : kind === 'best_effort'
        ? await sendSigned(base, await signedJson(world, body), {}, body)
        : await sendSigned(base, await signed(world), { headers: { authorization: null } });
  return { kind, status: res.status, at: Date.now() };
}

async function load(base: string, total: number, onProgress?: (done: number) => Promise<void> | void) {
  const results: { kind: Kind; status: number; at: number }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      results.push(await send(base, i));
      await onProgress?.(results.length);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return results;
}

async function decisionRows(chainId: string): Promise<number> {
  const r = await pool.query(
    `SELECT count(*)::int AS n, count(DISTINCT record->>'request_id')::int AS ids
       FROM trustplane_ledger WHERE chain_id = $1 AND event_type = 'authorization_decision'`,
    [chainId],
  );
  const row = r.rows[0] as { n: number; ids: number };
  expect(row.ids).toBe(row.n);
  return row.n;
}

async function drain(chainId: string, expected: number) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const n = await decisionRows(chainId);
    if (n >= expected || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('adapter with the PostgreSQL ledger', () => {
  it(`${TOTAL} mixed requests: exactly one ledger record per decision, and the chain verifies`, async () => {
    const { adapter, base } = await adapterFor('edge-load');
    try {
      const results = await load(base, TOTAL);
      expect(results.filter((r) => r.kind !== 'deny').every((r) => r.status === 200)).toBe(true);
      expect(results.filter((r) => r.kind === 'deny').every((r) => r.status === 401)).toBe(true);
      expect(await drain('edge-load', TOTAL)).toBe(TOTAL);
    } finally {
      await adapter.close();
    }
    const verified = await verifyPostgresLedger(server.url, 'edge-load');
    expect(verified.ok, JSON.stringify(verified.firstBreak)).toBe(true);
    expect(verified.count).toBe(TOTAL);
  }, 180_000);

  it('PostgreSQL stopped mid-load and started again: every decision once, in order; required routes 503, never 2xx, while down', async () => {
    const { adapter, base } = await adapterFor('edge-outage');
    let downFrom = Infinity;
    let downUntil = Infinity;
    let phase: 'up' | 'stopping' | 'down' | 'starting' | 'back' = 'up';
    try {
      const results = await load(base, TOTAL, async (done) => {
        if (phase === 'up' && done >= TOTAL * 0.3) {
          phase = 'stopping';
          await server.stop();
          downFrom = Date.now();
          phase = 'down';
        } else if (phase === 'down' && done >= TOTAL * 0.6) {
          phase = 'starting';
          downUntil = Date.now();
          await server.start();
          phase = 'back';
        }
      });
      expect(phase).toBe('back');
      const whileDown = results.filter(
        (r) => r.kind === 'required' && r.at > downFrom + 200 && r.at < downUntil,
      );
      expect(whileDown.length).toBeGreaterThan(50);
      expect(whileDown.every((r) => r.status === 503)).toBe(true);
      // Routes that do not require the ledger kept working through the outage.
      const others = results.filter((r) => r.kind === 'best_effort' && r.at > downFrom && r.at < downUntil);
      expect(others.length).toBeGreaterThan(50);
      expect(others.every((r) => r.status === 200)).toBe(true);
      // No required-route 2xx without its record: every 200 on a required route is in the ledger.
      expect(await drain('edge-outage', TOTAL)).toBe(TOTAL);
      // Every required-route request is in the ledger once: an allow (its durable write was
      // attempted) or an audit_unavailable deny (refused at once while PostgreSQL was known down).
      const required = results.filter((r) => r.kind === 'required');
      const rows = await pool.query(
        `SELECT decision, reason, count(*)::int AS n FROM trustplane_ledger
          WHERE chain_id = 'edge-outage' AND route_id = 'orders.search' GROUP BY decision, reason`,
      );
      const byOutcome = Object.fromEntries(
        (rows.rows as { decision: string; reason: string | null; n: number }[]).map((r) => [
          `${r.decision}:${r.reason ?? ''}`,
          r.n,
        ]),
      );
      const allows = byOutcome['allow:'] ?? 0;
      const refused = byOutcome['deny:audit_unavailable'] ?? 0;
      expect(allows + refused).toBe(required.length);
      // Every 2xx on a required route was durably recorded as an allow before it went upstream.
      const ok = required.filter((r) => r.status === 200).length;
      expect(ok).toBeLessThanOrEqual(allows);
      expect(required.filter((r) => r.status === 503).length).toBe(required.length - ok);
    } finally {
      if ((phase as string) !== 'back') await server.start().catch(() => undefined);
      await adapter.close();
    }
    const verified = await verifyPostgresLedger(server.url, 'edge-outage');
    expect(verified.ok, JSON.stringify(verified.firstBreak)).toBe(true);
    expect(verified.count).toBe(TOTAL);
  }, 240_000);
});
