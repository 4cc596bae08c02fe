import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../pkg/runtime/logger.js';
import { decodePassportUnverified, MemoryReplayStore } from '../../pkg/authcore/index.js';
import {
  Broker,
  BrokerIpcClient,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
  type IdentitySource,
} from '../../pkg/broker/index.js';
import { openSpiffeFilesIdentity, openWorkloadApiIdentity } from '../../pkg/broker/spiffe-identity.js';
import { serveBrokerTls, type BrokerTlsServer } from '../../pkg/broker/tls-server.js';
import { brokerTlsConnector } from '../../pkg/broker/tls-client.js';
import { bundlesFromPem } from '../../pkg/broker/spiffe/index.js';
import { sha256HexSync } from '../../pkg/internal/sha256.js';
import { verifyRequest } from '../../pkg/verifier/index.js';
import { BROKER_ISSUER, NOW, ORIGIN, TRUST_DOMAIN, createWorld, type World } from '../helpers/fixture.js';
import { WorkloadApiTestServer, x509SvidResponse } from '../helpers/workload-api-server.js';
import { mintCa, mintSpiffeChain, type MintedCert, type SpiffeChain } from '../helpers/x509.js';

const WORKER = 'spiffe://example.local/ns/orders/sa/worker';
const WORKER2 = 'spiffe://example.local/ns/orders/sa/worker-2';
const log = createLogger('silent');
const validity = { notBefore: NOW - 3600, notAfter: NOW + 86_400 };

let world: World;
let dir: string;
let root: MintedCert;
let clock = NOW;
const now = () => clock;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tp-spiffe-broker-'));
  world = await createWorld();
  root = mintCa({ uris: [`spiffe://${TRUST_DOMAIN}`], subject: '/O=TrustPlane Test/CN=Root', ...validity });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function chain(
  spiffeId: string,
  overrides: Parameters<typeof mintSpiffeChain>[0] = { trustDomain: TRUST_DOMAIN },
) {
  return mintSpiffeChain({ root, spiffeId, ...validity, ...overrides, trustDomain: TRUST_DOMAIN });
}

/** Write spiffe-helper files atomically (write to temp, rename), as spiffe-helper does. */
function writeSvidFiles(target: string, c: SpiffeChain): void {
  const put = (name: string, text: string) => {
    writeFileSync(join(target, `.${name}.tmp`), text, { mode: 0o600 });
    renameSync(join(target, `.${name}.tmp`), join(target, name));
  };
  put('svid_bundle.pem', c.bundlePem);
  put('svid_key.pem', c.leafKey.pkcs8Pem);
  put('svid.pem', c.chainPem);
}

function broker(identity: IdentitySource): Broker {
  return new Broker({
    issuer: BROKER_ISSUER,
    issuerKey: world.broker,
    issuerKid: 'broker-1',
    identity,
    material: () => ({ trust: world.trust, policy: world.policy }),
    clock: now,
  });
}

const REFUND = {
  method: 'POST',
  path: '/v1/orders/o-7/refund',
  routeId: 'orders.refund',
  body: '{"amount":"12.00"}',
};

function refundRequest(): BrokerIpcRequest {
  const nonce = `nonce-${crypto.randomUUID()}`;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-trustplane-nonce': nonce };
  const allow = Object.keys(headers).sort();
  return {
    request_id: crypto.randomUUID(),
    protocol: 'local-json-ipc',
    operation: 'issue_request_bound_passport',
    http: {
      method: REFUND.method,
      scheme: 'https',
      authority: 'orders.example',
      path: REFUND.path,
      content_encoding: 'identity',
      query: {
        raw: '',
        normalization: 'rfc3986-sort-keys-values',
        normalized: '',
        sha256: sha256HexSync(''),
      },
      headers: {
        allow_list: allow,
        selected: allow.map((n) => ({ name: n, value_sha256: sha256HexSync(headers[n]!) })),
      },
      audience: 'orders-api',
      route_id: REFUND.routeId,
      body_sha256: sha256HexSync(REFUND.body),
      nonce,
    },
    key_binding: {
      intent: 'route_policy_minimum',
      requested_key_binding: 'attested_workload',
      acceptable_key_bindings: ['attested_workload'],
      allow_software_fallback: false,
    },
    ctx: {
      selected_fields: ['purpose', 'max_txn_value'],
      values: { purpose: 'refund', max_txn_value: '100.00' },
    },
  };
}

async function verifierAccepts(request: BrokerIpcRequest, response: BrokerIpcResponse) {
  if (!response.accepted) throw new Error(`denied: ${response.reason_code} ${response.error.message}`);
  const a = response.artifacts;
  const http = request.http;
  return verifyRequest(
    new Request(`${ORIGIN}${http.path}`, {
      method: http.method,
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${a.passport.value}`,
        'x-trustplane-proof': a.stamp.value,
        'x-trustplane-transcript-sha256': a.stamp.transcript_sha256,
        'x-trustplane-nonce': http.nonce,
        'x-trustplane-body-sha256': http.body_sha256,
        'x-trustplane-covered-headers': http.headers.allow_list.join(','),
      },
      body: REFUND.body,
    }),
    { trust: world.trust, policy: world.policy, replayStore: new MemoryReplayStore(), clock: now },
  );
}

async function until<T>(probe: () => Promise<T> | T, ok: (v: T) => boolean, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const subjectOf = (r: BrokerIpcResponse) =>
  r.accepted ? (decodePassportUnverified(r.artifacts.passport.value).payload.sub as string) : r.reason_code;

describe('broker with a spiffe-helper SVID', () => {
  it('mints attested_workload passports the verifier accepts, follows rotation, refuses an expired SVID', async () => {
    const svidDir = mkdtempSync(join(dir, 'files-'));
    writeSvidFiles(svidDir, chain(WORKER));
    const identity = await openSpiffeFilesIdentity(
      {
        certFile: join(svidDir, 'svid.pem'),
        keyFile: join(svidDir, 'svid_key.pem'),
        bundleFile: join(svidDir, 'svid_bundle.pem'),
      },
      { log, trustBundles: () => world.trust.spiffeBundles, clock: now },
    );
    try {
      const b = broker(identity);
      const request = refundRequest();
      const response = await b.issue(request);
      expect(subjectOf(response)).toBe(WORKER);
      const claims = decodePassportUnverified(
        (response as { artifacts: { passport: { value: string } } }).artifacts.passport.value,
      ).payload;
      expect(claims).toMatchObject({
        trust_domain: TRUST_DOMAIN,
        cnf: { key_binding: 'attested_workload' },
        provenance: {
          profile: 'trustplane-spiffe-spire-k8s-v1',
          posture: 'spiffe_svid_verified',
          spiffe_id: WORKER,
        },
        ctx: { purpose: 'refund', max_txn_value: '100.00' },
      });
      expect(await verifierAccepts(request, response)).toMatchObject({
        allowed: true,
        subject: WORKER,
        keyBinding: 'attested_workload',
      });

      // Rotation: new files for another SPIFFE ID switch the identity without a restart.
      writeSvidFiles(svidDir, chain(WORKER2));
      const rotated = await until(
        () => b.issue(refundRequest()),
        (r) => subjectOf(r) === WORKER2,
      );
      expect(subjectOf(rotated)).toBe(WORKER2);

      // A broken rotation (a leaf from an unknown root) keeps the last good SVID.
      const foreign = mintSpiffeChain({ trustDomain: TRUST_DOMAIN, spiffeId: WORKER, ...validity });
      writeFileSync(join(svidDir, 'svid.pem'), foreign.chainPem);
      writeFileSync(join(svidDir, 'svid_key.pem'), foreign.leafKey.pkcs8Pem);
      await new Promise((r) => setTimeout(r, 300));
      expect(subjectOf(await b.issue(refundRequest()))).toBe(WORKER2);

      // Past the SVID's notAfter the broker refuses instead of minting.
      clock = NOW + 86_400 + 1;
      const expired = await b.issue(refundRequest());
      expect(expired).toMatchObject({
        accepted: false,
        reason_code: 'workload_attestation_failed',
        error: { details: { svid_error: 'svid_expired' } },
      });
    } finally {
      clock = NOW;
      await identity.close?.();
    }
  });

  it('refuses to start with an SVID that does not verify', async () => {
    const svidDir = mkdtempSync(join(dir, 'bad-'));
    writeSvidFiles(
      svidDir,
      chain(WORKER, { trustDomain: TRUST_DOMAIN, leafOverrides: { uris: [WORKER, WORKER2] } }),
    );
    await expect(
      openSpiffeFilesIdentity(
        {
          certFile: join(svidDir, 'svid.pem'),
          keyFile: join(svidDir, 'svid_key.pem'),
          bundleFile: join(svidDir, 'svid_bundle.pem'),
        },
        { log, trustBundles: () => world.trust.spiffeBundles, clock: now },
      ),
    ).rejects.toMatchObject({ reason: 'svid_multiple_uri_sans' });
  });
});

describe('broker with the SPIFFE Workload API', () => {
  it('verifies the streamed SVID, follows a pushed rotation, ignores an unverifiable update', async () => {
    const server = await WorkloadApiTestServer.start({
      initial: x509SvidResponse([{ chain: chain(WORKER) }]),
      socketPath: join(dir, 'agent.sock'),
    });
    const identity = await openWorkloadApiIdentity(
      { endpoint: server.endpoint },
      { log, trustBundles: () => world.trust.spiffeBundles, clock: now },
    );
    try {
      const b = broker(identity);
      const request = refundRequest();
      const response = await b.issue(request);
      expect(subjectOf(response)).toBe(WORKER);
      expect((await verifierAccepts(request, response)).allowed).toBe(true);

      server.push(x509SvidResponse([{ chain: chain(WORKER2) }]));
      await until(
        () => b.issue(refundRequest()),
        (r) => subjectOf(r) === WORKER2,
      );

      // An update whose leaf is a CA is refused; the last good SVID stays.
      server.push(
        x509SvidResponse([
          {
            chain: chain(WORKER, {
              trustDomain: TRUST_DOMAIN,
              leafOverrides: { basicConstraints: { ca: true } },
            }),
          },
        ]),
      );
      await new Promise((r) => setTimeout(r, 200));
      expect(subjectOf(await b.issue(refundRequest()))).toBe(WORKER2);
      expect(server.rejected).toBe(0);
    } finally {
      await identity.close?.();
      await server.close();
    }
  });
});

describe('network mode: TLS with SPIFFE client certificates', () => {
  let tls: BrokerTlsServer;
  let brokerIdentity: Awaited<ReturnType<typeof openSpiffeFilesIdentity>>;
  // TLS checks certificate validity against the real clock: these certificates are minted for
  // now, and the TLS side verifies SVIDs with the real clock (passports still use the test clock).
  const realClock = () => Math.floor(Date.now() / 1000);
  const tlsErrors: string[] = [];
  let tlsRoot: MintedCert;
  const tlsChain = (
    spiffeId: string,
    leafOverrides: Parameters<typeof mintSpiffeChain>[0]['leafOverrides'] = {},
  ) => mintSpiffeChain({ root: tlsRoot, trustDomain: TRUST_DOMAIN, spiffeId, leafOverrides });

  beforeAll(async () => {
    tlsRoot = mintCa({ uris: [`spiffe://${TRUST_DOMAIN}`], subject: '/O=TrustPlane Test/CN=TLS Root' });
    const svidDir = mkdtempSync(join(dir, 'tls-'));
    writeSvidFiles(svidDir, tlsChain('spiffe://example.local/trustplane/broker'));
    brokerIdentity = await openSpiffeFilesIdentity(
      {
        certFile: join(svidDir, 'svid.pem'),
        keyFile: join(svidDir, 'svid_key.pem'),
        bundleFile: join(svidDir, 'svid_bundle.pem'),
      },
      { log, trustBundles: () => world.trust.spiffeBundles, clock: realClock },
    );
    tls = await serveBrokerTls(broker(brokerIdentity), {
      listen: '127.0.0.1:0',
      credentials: brokerIdentity,
      clock: realClock,
      onError: (message) => tlsErrors.push(message),
    });
  });

  afterAll(async () => {
    await tls.close();
    await brokerIdentity.close?.();
  });

  function client(c: SpiffeChain | undefined) {
    return new BrokerIpcClient({
      socketPath: '-',
      timeoutMs: 5000,
      connect: () =>
        tlsConnect({
          host: '127.0.0.1',
          port: tls.address.port,
          ca: tlsRoot.pem,
          ...(c ? { cert: c.chainPem, key: c.leafKey.pkcs8Pem } : {}),
          // SPIFFE authenticates the broker by its SPIFFE ID, not a DNS name.
          checkServerIdentity: (_host, cert) =>
            cert.subjectaltname === 'URI:spiffe://example.local/trustplane/broker'
              ? undefined
              : new Error('unexpected broker SPIFFE ID'),
        }),
    });
  }

  it('mints for the peer SPIFFE ID, with provenance.peer', async () => {
    const request = refundRequest();
    const response = await client(tlsChain(WORKER)).issue(request);
    expect(subjectOf(response)).toBe(WORKER);
    const claims = decodePassportUnverified(
      (response as { artifacts: { passport: { value: string } } }).artifacts.passport.value,
    ).payload;
    expect(claims).toMatchObject({
      provenance: { spiffe_id: WORKER, peer: WORKER, posture: 'spiffe_svid_verified' },
    });
    expect((await verifierAccepts(request, response)).allowed).toBe(true);
  });

  it('brokerTlsConnector authenticates the broker by SPIFFE ID', async () => {
    const caller = tlsChain(WORKER);
    const credentials = {
      tlsCredentials: () => ({
        certChainPem: caller.chainPem,
        keyPem: caller.leafKey.pkcs8Pem,
        bundles: bundlesFromPem(TRUST_DOMAIN, tlsRoot.pem),
      }),
    };
    const via = (brokerSpiffeId: string) =>
      new BrokerIpcClient({
        socketPath: '',
        timeoutMs: 5000,
        connect: brokerTlsConnector({
          host: '127.0.0.1',
          port: tls.address.port,
          credentials,
          brokerSpiffeId,
        }),
      });
    const request = refundRequest();
    const response = await via('spiffe://example.local/trustplane/broker').issue(request);
    expect(subjectOf(response)).toBe(WORKER);
    expect((await verifierAccepts(request, response)).allowed).toBe(true);
    const impostor = await via('spiffe://example.local/trustplane/other-broker')
      .issue(refundRequest())
      .catch((e: unknown) => e);
    expect(impostor).toMatchObject({ reason: 'broker_unreachable' });
    expect(String((impostor as Error).message)).toContain('another SPIFFE ID');
  });

  it('refuses a peer without a certificate, from an unknown root, or with an invalid SVID', async () => {
    const foreign = mintSpiffeChain({ trustDomain: TRUST_DOMAIN, spiffeId: WORKER });
    const twoSans = tlsChain(WORKER, { uris: [WORKER, WORKER2] });
    const signer = tlsChain(WORKER, { keyUsage: ['digitalSignature', 'keyCertSign'] });
    for (const c of [undefined, foreign, twoSans, signer]) {
      const error = await client(c)
        .issue(refundRequest())
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'BrokerIpcError' });
      expect(['broker_unreachable', 'broker_protocol_error']).toContain((error as { reason: string }).reason);
    }
    // The last two pass the TLS handshake (OpenSSL accepts them) and are refused by the SPIFFE rules.
    await until(
      () => tlsErrors.filter((m) => m.startsWith('TLS peer refused')),
      (l) => l.length === 2,
    );
    expect(tlsErrors.filter((m) => m.startsWith('TLS peer refused'))).toEqual([
      'TLS peer refused: svid_multiple_uri_sans',
      'TLS peer refused: svid_bad_key_usage',
    ]);
  });
});
