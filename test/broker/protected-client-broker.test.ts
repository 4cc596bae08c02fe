import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import {
  Broker,
  BrokerIpcClient,
  serveBrokerIpc,
  spiffeWorkloadIdentity,
  type BrokerIpcServer,
} from '../../pkg/broker/index.js';
import { BrokerDeniedError, ProtectedClient, brokerPassports } from '../../pkg/client/index.js';
import { startTestAdapter, startUpstream, type TestAdapter, type Upstream } from '../helpers/adapter.js';
import {
  BROKER_ISSUER,
  NOW,
  TRUST_DOMAIN,
  allowBrokerOn,
  createWorld,
  type World,
} from '../helpers/fixture.js';

// The whole chain with real parts: ProtectedClient → broker-ipc-v1 on a Unix socket → the real
// Broker → HTTP over loopback → the adapter → the upstream.
const WORKER = 'spiffe://example.local/ns/orders/sa/worker';

let world: World;
let upstream: Upstream;
let tp: TestAdapter;
let ipc: BrokerIpcServer;
let dir: string;
const brokerAudit = new MemoryAuditSink();

beforeAll(async () => {
  world = await createWorld({
    policyPatch: (doc) => {
      // Without base_url the adapter binds the transcript to the loopback origin the client calls.
      for (const api of doc.apis as Record<string, unknown>[]) delete api.base_url;
      allowBrokerOn(['orders.create'], { required_key_binding: 'attested_workload' })(doc);
    },
  });
  upstream = await startUpstream();
  tp = await startTestAdapter(world, { upstream: upstream.url });
  dir = mkdtempSync(join(tmpdir(), 'tp-pc-broker-'));
  const identity = spiffeWorkloadIdentity(WORKER, TRUST_DOMAIN, NOW + 3600);
  const broker = new Broker({
    issuer: BROKER_ISSUER,
    issuerKey: world.broker,
    issuerKid: 'broker-1',
    identity: { keyBinding: 'attested_workload', kind: 'test', current: () => identity },
    material: () => ({ trust: world.trust, policy: world.policy }),
    clock: () => NOW,
    audit: brokerAudit,
  });
  ipc = await serveBrokerIpc(broker, { socketPath: join(dir, 'broker.sock') });
});

afterAll(async () => {
  await ipc.close();
  await tp.adapter.close();
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

function client(ctx?: Record<string, string>) {
  return new ProtectedClient({
    baseUrl: `${tp.base}/v1`,
    audience: 'orders-api',
    passports: brokerPassports({
      broker: new BrokerIpcClient({ socketPath: ipc.socketPath }),
      keyBinding: { requested: 'attested_workload', acceptable: ['attested_workload'] },
      ...(ctx ? { ctx } : {}),
    }),
  });
}

describe('ProtectedClient with a real broker, through the adapter', () => {
  it('each request is allowed with the attested identity the upstream sees, with a fresh passport', async () => {
    const before = upstream.requests.length;
    const c = client({ purpose: 'create_order' });
    for (let i = 0; i < 3; i++) {
      const res = await c.request({
        method: 'POST',
        path: '/orders',
        routeId: 'orders.create',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sku: 'A-1', qty: i }),
      });
      expect(res.status).toBe(200);
    }
    const seen = upstream.requests.slice(before);
    expect(seen).toHaveLength(3);
    for (const r of seen) {
      expect(r.headers['x-trustplane-subject']).toBe(WORKER);
      expect(r.headers['x-trustplane-key-binding']).toBe('attested_workload');
      expect(r.headers['x-trustplane-issuer']).toBe(BROKER_ISSUER);
    }
    expect(new Set(seen.map((r) => r.headers['x-trustplane-jti'])).size).toBe(3);
    expect(
      brokerAudit.events.filter((e) => e.event_type === 'passport_issued').length,
    ).toBeGreaterThanOrEqual(3);
  });

  it('a route the broker may not mint for fails client-side with the broker reason, nothing sent', async () => {
    const before = upstream.requests.length;
    const error = await client()
      .request({ method: 'POST', path: '/orders/o-1/approve', routeId: 'orders.secure' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerDeniedError);
    expect((error as BrokerDeniedError).reasonCode).toBe('source_issuer_mismatch');
    expect(upstream.requests.length).toBe(before);
  });

  it('unsafe paths are refused before the broker or the network is asked', async () => {
    const issued = brokerAudit.events.length;
    const before = upstream.requests.length;
    for (const path of [
      '/orders/',
      '//orders',
      '/%6Frders',
      '/./orders',
      '/orders/..',
      '/a\\b',
      '0/orders',
    ]) {
      const error = await client()
        .request({ method: 'GET', path, routeId: 'orders.search' })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ reason: 'unsafe_request_path' });
    }
    expect(brokerAudit.events.length).toBe(issued);
    expect(upstream.requests.length).toBe(before);
  });
});
