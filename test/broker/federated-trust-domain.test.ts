import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePassportUnverified, MemoryReplayStore } from '../../pkg/authcore/index.js';
import type { LoadedTrustMaterial } from '../../pkg/bundle/index.js';
import {
  spiffeWorkloadIdentity,
  type Broker,
  type BrokerIpcResponse,
  type IdentitySource,
} from '../../pkg/broker/index.js';
import { openSpiffeFilesIdentity, type SpiffeIdentitySource } from '../../pkg/broker/spiffe-identity.js';
import { serveBrokerTls, type BrokerTlsServer } from '../../pkg/broker/tls-server.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { evaluateRoutePolicy, verifyRequest } from '../../pkg/verifier/index.js';
import { worldBroker } from '../helpers/broker-requests.js';
import { BROKER_ISSUER, createWorld, signed, toRequest, type World } from '../helpers/fixture.js';
import { mintCa, mintSpiffeChain, type MintedCert } from '../helpers/x509.js';
import {
  BROKER_ID,
  HOME,
  ORDERS_REFUND,
  PARTNER,
  loadTrust,
  realClock,
  refundRequest,
  spiffeSource,
  tlsClient,
  trustDocument,
  verifyMinted,
  writeSvidFiles,
  type RefundRoute,
} from './tls-peers.js';

/*
 * Finding (issue 18, point 6): a peer of a federated trust domain got a passport carrying its own
 * `trust_domain`, and the verifier refuses any passport whose `trust_domain` is not its issuer's
 * (`trust_domain_mismatch`). A route whose sources name the federated trust domain for the broker's
 * issuer made the broker's route-policy check pass, so it minted a passport no verifier accepts.
 * The route policy (one evaluation for the verifier and the broker) now checks the issuer's trust
 * domain first, so the broker refuses before signing, with the verifier's code.
 */

const PARTNER_WORKER = `spiffe://${PARTNER}/ns/orders/sa/worker`;
const HOME_WORKER = `spiffe://${HOME}/ns/orders/sa/worker`;
/** A route that admits the broker's issuer for partner workloads: the verifier never can. */
const PARTNER_REFUND: RefundRoute = { routeId: 'partner.refund', path: '/v1/partners/p-1/refund' };

let world: World;
let dir: string;
let homeRoot: MintedCert;
let partnerRoot: MintedCert;
let trust: LoadedTrustMaterial;
let identity: SpiffeIdentitySource;
let tls: BrokerTlsServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tp-broker-federated-'));
  world = await createWorld({
    issuedAt: realClock() - 60,
    policyPatch: (doc) => {
      const groups = doc.route_groups as { routes: unknown[] }[];
      groups[0]!.routes.push({
        route_id: PARTNER_REFUND.routeId,
        method: 'POST',
        path_template: '/v1/partners/{partner}/refund',
        allowed_sources: [spiffeSource(PARTNER)],
      });
    },
  });
  homeRoot = mintCa({ uris: [`spiffe://${HOME}`], subject: '/O=Home SPIRE/CN=Root' });
  partnerRoot = mintCa({ uris: [`spiffe://${PARTNER}`], subject: '/O=Partner SPIRE/CN=Root' });
  // The fixture's broker issuer is in the home trust domain; the partner trust domain is federated.
  trust = await loadTrust(
    world,
    await trustDocument(world, {
      pins: [
        { trustDomain: HOME, roots: [homeRoot] },
        { trustDomain: PARTNER, roots: [partnerRoot] },
      ],
      issuedAt: realClock() - 120,
    }),
  );
  const own = mintSpiffeChain({ root: homeRoot, trustDomain: HOME, spiffeId: BROKER_ID });
  identity = await openSpiffeFilesIdentity(writeSvidFiles(mkdtempSync(join(dir, 'svid-')), own), {
    log: createLogger('silent'),
    trustBundles: () => trust.spiffeBundles,
    clock: realClock,
  });
  tls = await serveBrokerTls(broker(identity), {
    listen: '127.0.0.1:0',
    credentials: identity,
    clock: realClock,
  });
});

afterAll(async () => {
  await tls?.close();
  await identity?.close?.();
  rmSync(dir, { recursive: true, force: true });
});

function broker(source: IdentitySource): Broker {
  return worldBroker(world, { identity: source, trust, clock: realClock });
}

/** What the verifier says about a passport the broker's issuer key signs for a partner workload. */
async function verifierOnPartnerPassport(): Promise<string> {
  const body = '{"amount":"12.00"}';
  const s = await signed(world, {
    method: 'POST',
    target: PARTNER_REFUND.path,
    routeId: PARTNER_REFUND.routeId,
    body,
    headers: { 'content-type': 'application/json' },
    issuerKey: world.broker,
    kid: 'broker-1',
    keyBinding: 'attested_workload',
    claims: {
      iss: BROKER_ISSUER,
      sub: PARTNER_WORKER,
      trust_domain: PARTNER,
      iat: realClock(),
      provenance: {
        profile: 'trustplane-spiffe-spire-k8s-v1',
        posture: 'spiffe_svid_verified',
        spiffe_id: PARTNER_WORKER,
        signer: 'x509-svid',
      },
    },
  });
  const decision = await verifyRequest(toRequest(s, {}, body), {
    trust,
    policy: world.policy,
    replayStore: new MemoryReplayStore(),
    clock: realClock,
  });
  return decision.allowed ? 'allowed' : decision.reason;
}

const claimsOf = (r: BrokerIpcResponse) =>
  r.accepted ? decodePassportUnverified(r.artifacts.passport.value).payload : undefined;

describe('the broker never mints what the verifier refuses: federated trust domains', () => {
  it('a partner peer asking for a route the verifier would refuse it on is refused with the verifier’s reason, before signing', async () => {
    const verifierSays = await verifierOnPartnerPassport();
    expect(verifierSays).toBe('trust_domain_mismatch');

    const request = refundRequest(PARTNER_REFUND);
    const partner = mintSpiffeChain({ root: partnerRoot, trustDomain: PARTNER, spiffeId: PARTNER_WORKER });
    const response = await tlsClient(tls.address.port, partner, homeRoot.pem).issue(request);
    // When the broker mints anyway, what the verifier makes of that passport.
    const verdict = response.accepted
      ? await verifyMinted(request, response, { trust, policy: world.policy })
      : undefined;
    expect({
      broker: response.reason_code,
      verifierOnMinted:
        verdict === undefined ? 'nothing minted' : verdict.allowed ? 'allowed' : verdict.reason,
    }).toEqual({ broker: verifierSays, verifierOnMinted: 'nothing minted' });
    expect(response).toMatchObject({
      accepted: false,
      status: 'deny',
      error: { code: 'trust_domain_mismatch', retryable: false },
    });
  });

  it('the same refusal without TLS (a peer identity handed to Broker.issue), for every route', async () => {
    const b = broker(identity);
    const peer = spiffeWorkloadIdentity(PARTNER_WORKER, PARTNER, realClock() + 600, PARTNER_WORKER);
    for (const route of [PARTNER_REFUND, ORDERS_REFUND]) {
      const response = await b.issue(refundRequest(route), { peer });
      expect(response).toMatchObject({ accepted: false, reason_code: 'trust_domain_mismatch' });
    }
  });

  it('end to end: what the broker mints for a home peer over TLS, verifyRequest accepts on that route', async () => {
    const request = refundRequest(ORDERS_REFUND);
    const home = mintSpiffeChain({ root: homeRoot, trustDomain: HOME, spiffeId: HOME_WORKER });
    const response = await tlsClient(tls.address.port, home, homeRoot.pem).issue(request);
    expect(claimsOf(response)).toMatchObject({ sub: HOME_WORKER, trust_domain: HOME });
    expect(await verifyMinted(request, response, { trust, policy: world.policy })).toMatchObject({
      allowed: true,
      routeId: ORDERS_REFUND.routeId,
      subject: HOME_WORKER,
      trustDomain: HOME,
    });
  });

  it('evaluateRoutePolicy refuses a passport whose trust_domain is not its issuer’s (trust_domain_mismatch, before sources)', () => {
    const entry = world.policy.routeTable.resolveById(PARTNER_REFUND.routeId)!;
    const issuer = trust.getIssuer(BROKER_ISSUER)!;
    const now = realClock();
    const claims = {
      iss: BROKER_ISSUER,
      sub: PARTNER_WORKER,
      aud: 'orders-api',
      iat: now,
      exp: now + 60,
      jti: 'j-1',
      trust_domain: PARTNER,
      cnf: {
        kid: 'k',
        key_binding: 'attested_workload' as const,
        public_key_b64url: world.caller.publicKey.x,
      },
    };
    expect(() =>
      evaluateRoutePolicy(
        entry.route,
        world.policy,
        { claims, issuer, effectiveKeyBinding: 'attested_workload', kid: 'broker-1' },
        { now, trust },
      ),
    ).toThrow(expect.objectContaining({ reason: 'trust_domain_mismatch' }));
  });
});
