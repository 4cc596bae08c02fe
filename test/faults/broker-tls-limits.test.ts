import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker, BrokerIpcResponse } from '../../pkg/broker/index.js';
import { openSpiffeFilesIdentity, type SpiffeIdentitySource } from '../../pkg/broker/spiffe-identity.js';
import { serveBrokerTls, type BrokerTlsOptions, type BrokerTlsServer } from '../../pkg/broker/tls-server.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { worldBroker } from '../helpers/broker-requests.js';
import { createWorld, type World } from '../helpers/fixture.js';
import { mintCa, mintSpiffeChain, type MintedCert, type SpiffeChain } from '../helpers/x509.js';
import {
  BROKER_ID,
  HOME,
  openPeer,
  outcome,
  realClock,
  refundRequest,
  tlsClient,
  until,
  writeSvidFiles,
  type OpenPeer,
} from '../broker/tls-peers.js';

/*
 * Fault (issue 18, point 10, the broker half): the broker's TLS listener had no connection and no
 * in-flight limit, so a flood of callers each held a socket and queued work without bound. Past the
 * connection cap a caller gets one broker-ipc-v1 deny `overloaded` (retryable) and is disconnected;
 * past the in-flight cap a request is answered `overloaded` without being decided. Both are counted
 * (stats and a rate-limited report). Bounded: tens of loopback connections.
 */

const WORKER = `spiffe://${HOME}/ns/orders/sa/worker`;

let world: World;
let dir: string;
let root: MintedCert;
let identity: SpiffeIdentitySource;
let peer: SpiffeChain;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tp-broker-limits-'));
  world = await createWorld({ issuedAt: realClock() - 60 });
  root = mintCa({ uris: [`spiffe://${HOME}`], subject: '/O=Home SPIRE/CN=Root' });
  const own = mintSpiffeChain({ root, trustDomain: HOME, spiffeId: BROKER_ID });
  identity = await openSpiffeFilesIdentity(writeSvidFiles(mkdtempSync(join(dir, 'svid-')), own), {
    log: createLogger('silent'),
    trustBundles: () => world.trust.spiffeBundles,
    clock: realClock,
  });
  peer = mintSpiffeChain({ root, trustDomain: HOME, spiffeId: WORKER });
});

afterAll(async () => {
  await identity?.close?.();
  rmSync(dir, { recursive: true, force: true });
});

function realBroker(): Broker {
  return worldBroker(world, { identity, clock: realClock });
}

interface Report {
  readonly limit: string;
  readonly refused: number;
}

async function serve(
  broker: Pick<Broker, 'issue' | 'refuse'>,
  limits: Pick<BrokerTlsOptions, 'maxConnections' | 'maxInFlight'>,
): Promise<{ tls: BrokerTlsServer; reports: Report[] }> {
  const reports: Report[] = [];
  const tls = await serveBrokerTls(broker, {
    listen: '127.0.0.1:0',
    credentials: identity,
    clock: realClock,
    timeoutMs: 20_000,
    ...limits,
    onOverload: (report) => reports.push(report),
  });
  return { tls, reports };
}

const reasonOf = (r: BrokerIpcResponse | { transport: string }) =>
  'transport' in r ? `transport:${r.transport}` : r.reason_code;
const count = (items: readonly string[]) =>
  items.reduce<Record<string, number>>((acc, k) => ({ ...acc, [k]: (acc[k] ?? 0) + 1 }), {});

describe('fault: more TLS callers than the broker listener allows', () => {
  it('connections past maxConnections get `overloaded` and are counted; the held ones keep working', async () => {
    const CAP = 4;
    const EXCESS = 12;
    const { tls, reports } = await serve(realBroker(), { maxConnections: CAP, maxInFlight: 64 });
    const holders: OpenPeer[] = [];
    try {
      // CAP connections that stay open (each served one request, so the broker counts it).
      for (let i = 0; i < CAP; i++) {
        const p = await openPeer(tls.address.port, peer, root.pem);
        p.send(refundRequest());
        holders.push(p);
      }
      await until(
        () => holders.every((h) => h.answers.length === 1),
        (ok) => ok,
      );
      expect(holders.map((h) => h.answers[0]!.reason_code)).toEqual(
        Array(CAP).fill('broker_passport_issued'),
      );

      const excess = await Promise.all(
        Array.from({ length: EXCESS }, () =>
          outcome(tlsClient(tls.address.port, peer, root.pem), refundRequest()),
        ),
      );
      expect(count(excess.map(reasonOf))).toEqual({ overloaded: EXCESS });
      expect(excess[0]).toMatchObject({
        accepted: false,
        status: 'deny',
        request_id: 'unknown',
        error: { code: 'overloaded', retryable: true },
      });
      expect(tls.stats()).toMatchObject({ connections: CAP, refusedConnections: EXCESS, refusedRequests: 0 });

      // A held connection is still served.
      holders[0]!.send(refundRequest());
      await until(
        () => holders[0]!.answers.length,
        (n) => n === 2,
      );
      expect(holders[0]!.answers[1]!.reason_code).toBe('broker_passport_issued');

      // Once they go, new callers are served again.
      for (const h of holders) h.close();
      await until(
        () => tls.stats().connections,
        (n) => n === 0,
      );
      expect(reasonOf(await outcome(tlsClient(tls.address.port, peer, root.pem), refundRequest()))).toBe(
        'broker_passport_issued',
      );
    } finally {
      for (const h of holders) h.close();
      await tls.close();
    }
    // Every refusal is in the (rate-limited) reports; close() flushes the last one.
    const reported = reports.filter((r) => r.limit === 'connections').reduce((n, r) => n + r.refused, 0);
    expect(reported).toBe(EXCESS);
  });

  it('requests past maxInFlight are answered `overloaded` without being decided; the admitted ones complete', async () => {
    const CAP = 2;
    const CALLERS = 6;
    const real = realBroker();
    let entered = 0;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    // A broker that holds every request until the gate opens (a slow audit sink, a busy CPU).
    const slow: Pick<Broker, 'issue' | 'refuse'> = {
      issue: async (raw, context) => {
        entered += 1;
        await gate;
        return real.issue(raw, context);
      },
      refuse: (message) => real.refuse(message),
    };
    const { tls, reports } = await serve(slow, { maxConnections: 64, maxInFlight: CAP });
    try {
      const pending = Array.from({ length: CALLERS }, () =>
        outcome(tlsClient(tls.address.port, peer, root.pem), refundRequest()),
      );
      const settled: (BrokerIpcResponse | { transport: string })[] = [];
      for (const p of pending) void p.then((r) => settled.push(r));
      // The excess is answered while the admitted requests are still held.
      await until(
        () => settled.length,
        (n) => n === CALLERS - CAP,
      );
      expect(count(settled.map(reasonOf))).toEqual({ overloaded: CALLERS - CAP });
      // A shed request is answered with its own request_id (the client checks it).
      expect(settled.filter((r) => 'request_id' in r && r.request_id !== 'unknown')).toHaveLength(
        CALLERS - CAP,
      );
      expect(entered).toBe(CAP);
      expect(tls.stats()).toMatchObject({
        inFlight: CAP,
        refusedRequests: CALLERS - CAP,
        refusedConnections: 0,
      });

      open();
      expect(count((await Promise.all(pending)).map(reasonOf))).toEqual({
        broker_passport_issued: CAP,
        overloaded: CALLERS - CAP,
      });
      expect(entered).toBe(CAP);
      expect(tls.stats().inFlight).toBe(0);
    } finally {
      open();
      await tls.close();
    }
    const reported = reports.filter((r) => r.limit === 'in_flight').reduce((n, r) => n + r.refused, 0);
    expect(reported).toBe(CALLERS - CAP);
  });
});
