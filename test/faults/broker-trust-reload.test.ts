import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePassportUnverified } from '../../pkg/authcore/index.js';
import type { BrokerIpcResponse, RunningBroker } from '../../pkg/broker/index.js';
import { openWorkloadApiIdentity } from '../../pkg/broker/spiffe-identity.js';
import { serveBrokerTls } from '../../pkg/broker/tls-server.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { WorkloadApiTestServer, x509SvidResponse } from '../helpers/workload-api-server.js';
import { worldBroker } from '../helpers/broker-requests.js';
import { createWorld, type World } from '../helpers/fixture.js';
import { mintCa, mintSpiffeChain, type MintedCert, type SpiffeChain } from '../helpers/x509.js';
import {
  BROKER_ID,
  HOME,
  PARTNER,
  loadTrust,
  openPeer,
  outcome,
  realClock,
  refundRequest,
  spiffeSource,
  startTlsBroker,
  tlsClient,
  trustDocument,
  until,
  verifyMinted,
  writeSvidFiles,
  type LogLine,
} from '../broker/tls-peers.js';

/*
 * Fault: a federated trust domain is removed from the trust material (it was compromised) by a hot
 * reload, the way the key-rotation runbook says. Before, the broker's TLS listener kept the roots
 * it started with: the removed domain's workloads still completed the handshake and got passports
 * until a restart. The listener must use the roots in force for every new handshake, and close the
 * connections of peers the new roots no longer vouch for.
 *
 * The broker runs as `trustplane broker serve` does (startBroker: bundle files watched, SVID files,
 * TLS on loopback). Its issuer is the partner trust domain's, so that a partner workload's passport
 * is one the verifier accepts (the verifier requires the issuer's trust domain).
 */

const PARTNER_WORKER = `spiffe://${PARTNER}/ns/orders/sa/worker`;
const HOME_WORKER = `spiffe://${HOME}/ns/orders/sa/worker`;

let world: World;
let dir: string;
let homeRoot: MintedCert;
let partnerRoot: MintedCert;
let running: RunningBroker;
let lines: LogLine[];
let trustFile: string;
let issuedAt: number;
let partnerPeer: SpiffeChain;
let homePeer: SpiffeChain;

async function publishTrust(pins: readonly { trustDomain: string; roots: readonly MintedCert[] }[]) {
  issuedAt += 1;
  const doc = await trustDocument(world, { pins, brokerTrustDomain: PARTNER, issuedAt });
  writeFileSync(trustFile, JSON.stringify(doc));
  await running.reload();
  return loadTrust(world, doc);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tp-broker-reload-'));
  const now = realClock();
  issuedAt = now - 120;
  world = await createWorld({
    issuedAt: now - 60,
    policyPatch: (doc) => {
      const routes = (
        doc.route_groups as { routes: { route_id: string; allowed_sources: unknown[] }[] }[]
      )[0]!.routes;
      routes.find((r) => r.route_id === 'orders.refund')!.allowed_sources = [spiffeSource(PARTNER)];
    },
  });
  homeRoot = mintCa({ uris: [`spiffe://${HOME}`], subject: '/O=Home SPIRE/CN=Root' });
  partnerRoot = mintCa({ uris: [`spiffe://${PARTNER}`], subject: '/O=Partner SPIRE/CN=Root' });
  partnerPeer = mintSpiffeChain({ root: partnerRoot, trustDomain: PARTNER, spiffeId: PARTNER_WORKER });
  homePeer = mintSpiffeChain({ root: homeRoot, trustDomain: HOME, spiffeId: HOME_WORKER });

  trustFile = join(dir, 'trust.json');
  const policyFile = join(dir, 'policy.json');
  writeFileSync(
    trustFile,
    JSON.stringify(
      await trustDocument(world, {
        pins: [
          { trustDomain: HOME, roots: [homeRoot] },
          { trustDomain: PARTNER, roots: [partnerRoot] },
        ],
        brokerTrustDomain: PARTNER,
        issuedAt,
      }),
    ),
  );
  writeFileSync(policyFile, JSON.stringify(world.policyDoc));
  const svidDir = mkdtempSync(join(dir, 'svid-'));
  const own = mintSpiffeChain({ root: homeRoot, trustDomain: HOME, spiffeId: BROKER_ID });
  const files = writeSvidFiles(svidDir, own);
  ({ running, lines } = await startTlsBroker(world, dir, {
    files,
    trustMaterial: trustFile,
    policyBundle: policyFile,
  }));
});

afterAll(async () => {
  await running?.close();
  rmSync(dir, { recursive: true, force: true });
});

const port = () => running.tls!.address.port;
const subjectOf = (r: BrokerIpcResponse) =>
  r.accepted ? (decodePassportUnverified(r.artifacts.passport.value).payload.sub as string) : r.reason_code;
const handshakeFailures = () => lines.filter((l) => l.msg.startsWith('TLS handshake failed')).length;

describe('fault: a federated trust domain removed from the trust material by hot reload', () => {
  it('new handshakes from its peers fail at once, open connections are closed, other peers are served', async () => {
    // 1. Federated: a partner workload gets a passport the verifier accepts for the route.
    const request = refundRequest();
    const minted = await tlsClient(port(), partnerPeer, homeRoot.pem).issue(request);
    expect(subjectOf(minted)).toBe(PARTNER_WORKER);
    expect((await verifyMinted(request, minted, running.bundles.current)).allowed).toBe(true);

    // A partner connection that stays open across the reload.
    const open = await openPeer(port(), partnerPeer, homeRoot.pem);
    open.send(refundRequest());
    await until(
      () => open.answers.length,
      (n) => n === 1,
    );
    expect(subjectOf(open.answers[0]!)).toBe(PARTNER_WORKER);

    // 2. The partner trust domain is removed (signed trust material, hot reload).
    const failuresBefore = handshakeFailures();
    await publishTrust([{ trustDomain: HOME, roots: [homeRoot] }]);
    expect(lines.some((l) => l.msg === 'bundle reloaded' && l['bundle'] === 'trust_material')).toBe(true);

    // 3. A new handshake from the partner workload fails: no answer, no passport.
    const after = await outcome(tlsClient(port(), partnerPeer, homeRoot.pem), refundRequest());
    expect(after).toEqual({ transport: expect.stringMatching(/^broker_(unreachable|protocol_error)$/) });
    // Refused by the TLS handshake itself (the listener's CA set), not only by the SVID check after it.
    await until(handshakeFailures, (n) => n > failuresBefore);

    // 4. The connection opened before the reload is closed by the broker, and answers nothing more.
    await until(
      () => open.closed,
      (c) => c,
      5000,
    );
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: 'TLS peer disconnected: no longer trusted',
        reason: 'svid_unknown_trust_domain',
      }),
    );
    expect(open.answers.filter((a) => a.accepted)).toHaveLength(1);

    // 5. The listener still serves the trust domains that remain: a home workload completes the
    // handshake and gets an answer (a refusal: this broker's issuer is the partner trust domain's).
    const home = await outcome(tlsClient(port(), homePeer, homeRoot.pem), refundRequest());
    expect(home).toMatchObject({ accepted: false, reason_code: 'trust_domain_mismatch' });

    // 6. Re-federating the partner (another reload) lets its workloads in again, without a restart.
    const restored = await publishTrust([
      { trustDomain: HOME, roots: [homeRoot] },
      { trustDomain: PARTNER, roots: [partnerRoot] },
    ]);
    const again = refundRequest();
    const reminted = await tlsClient(port(), partnerPeer, homeRoot.pem).issue(again);
    expect(subjectOf(reminted)).toBe(PARTNER_WORKER);
    expect((await verifyMinted(again, reminted, { trust: restored, policy: world.policy })).allowed).toBe(
      true,
    );
  });
});

describe('Workload API: SVID rotation and federated bundles pushed by the agent', () => {
  it('the listener presents each rotated SVID and follows the federated bundles of the latest update', async () => {
    // The trust material pins the home trust domain only: the partner's roots come from the agent.
    const trust = await loadTrust(
      world,
      await trustDocument(world, {
        pins: [{ trustDomain: HOME, roots: [homeRoot] }],
        brokerTrustDomain: PARTNER,
        issuedAt: realClock() - 120,
      }),
    );
    const first = mintSpiffeChain({ root: homeRoot, trustDomain: HOME, spiffeId: BROKER_ID });
    const second = mintSpiffeChain({ root: homeRoot, trustDomain: HOME, spiffeId: BROKER_ID });
    const agent = await WorkloadApiTestServer.start({
      initial: x509SvidResponse([{ chain: first }], { [PARTNER]: [partnerRoot.der] }),
      socketPath: join(dir, 'agent.sock'),
    });
    const identity = await openWorkloadApiIdentity(
      { endpoint: agent.endpoint },
      { log: createLogger('silent'), trustBundles: () => trust.spiffeBundles, clock: realClock },
    );
    const errors: string[] = [];
    const broker = worldBroker(world, { identity, trust, clock: realClock });
    const tls = await serveBrokerTls(broker, {
      listen: '127.0.0.1:0',
      credentials: identity,
      clock: realClock,
      onError: (m) => errors.push(m),
    });
    const presented = async () => {
      const p = await openPeer(tls.address.port, homePeer, homeRoot.pem);
      const fingerprint = p.socket.getPeerCertificate().fingerprint256;
      p.close();
      return fingerprint;
    };
    try {
      expect(await presented()).toBe(first.leaf.x509.fingerprint256);
      const open = await openPeer(tls.address.port, partnerPeer, homeRoot.pem);
      open.send(refundRequest());
      await until(
        () => open.answers.length,
        (n) => n === 1,
      );
      expect(subjectOf(open.answers[0]!)).toBe(PARTNER_WORKER);

      // The agent rotates the broker's SVID and stops federating the partner trust domain.
      agent.push(x509SvidResponse([{ chain: second }]));
      await until(presented, (f) => f === second.leaf.x509.fingerprint256);
      const after = await outcome(tlsClient(tls.address.port, partnerPeer, homeRoot.pem), refundRequest());
      expect(after).toEqual({ transport: expect.stringMatching(/^broker_(unreachable|protocol_error)$/) });
      await until(
        () => open.closed,
        (c) => c,
        5000,
      );
      expect(errors).toContain('TLS peer disconnected: no longer trusted');
      expect(tls.stats().disconnectedPeers).toBe(1);
    } finally {
      await tls.close();
      await identity.close?.();
      await agent.close();
    }
  });
});
