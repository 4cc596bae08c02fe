import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePassportUnverified } from '../../pkg/authcore/index.js';
import { loadTrustMaterial, signDocument, type LoadedTrustMaterial } from '../../pkg/bundle/index.js';
import {
  Broker,
  BrokerIpcClient,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
  type IdentitySource,
} from '../../pkg/broker/index.js';
import { openSpiffeFilesIdentity, openWorkloadApiIdentity } from '../../pkg/broker/spiffe-identity.js';
import { serveBrokerTls } from '../../pkg/broker/tls-server.js';
import { sha256HexSync } from '../../pkg/internal/sha256.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { BROKER_ISSUER, NOW, TRUST_DOMAIN, createWorld, type World } from '../helpers/fixture.js';
import { WorkloadApiTestServer, x509SvidResponse } from '../helpers/workload-api-server.js';
import { mintCa, mintSpiffeChain, type MintedCert, type SpiffeChain } from '../helpers/x509.js';

/*
 * Finding: the spiffe-helper file source merged the CAs of `svid_bundle.pem` (a file in the SVID
 * directory) with the roots the signed trust material pins for the same trust domain. Whoever can
 * write that directory could add their own CA and mint any SPIFFE ID of the trust domain. The
 * roots of a trust domain the trust material lists are now the ONLY roots of that trust domain.
 */

const WORKER = 'spiffe://example.local/ns/orders/sa/worker';
/** The identity the attacker wants: any SPIFFE ID of the pinned trust domain. */
const ADMIN = 'spiffe://example.local/ns/orders/sa/admin';
const validity = { notBefore: NOW - 3600, notAfter: NOW + 86_400 };
/** The rogue SVID outlives the real one, so it would be the only candidate once the real one expires. */
const rogueValidity = { notBefore: NOW - 3600, notAfter: NOW + 7 * 86_400 };

interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

let world: World;
let dir: string;
let realRoot: MintedCert;
let rogueRoot: MintedCert;
let clock = NOW;
const now = () => clock;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tp-rogue-ca-'));
  world = await createWorld();
  realRoot = mintCa({ uris: [`spiffe://${TRUST_DOMAIN}`], subject: '/O=Real SPIRE/CN=Root', ...validity });
  // The attacker's CA claims the same trust domain (a real CA of their own, not a broken certificate).
  rogueRoot = mintCa({ uris: [`spiffe://${TRUST_DOMAIN}`], subject: '/O=Real SPIRE/CN=Root', ...validity });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { log: ReturnType<typeof createLogger>; lines: LogLine[]; raw: string[] } {
  const raw: string[] = [];
  const lines: LogLine[] = [];
  const log = createLogger('info', {
    write: (line: string) => {
      raw.push(line);
      lines.push(JSON.parse(line) as LogLine);
    },
  });
  return { log, lines, raw };
}

/** Signed trust material (the fixture's, re-signed) with `spiffe_bundles` for the given trust domains. */
async function trustPinning(
  pins: readonly { trustDomain: string; roots: readonly MintedCert[] }[],
): Promise<LoadedTrustMaterial> {
  const document = {
    ...world.trustDoc,
    spiffe_bundles: pins.map((p) => ({
      trust_domain: p.trustDomain,
      keys: p.roots.map((r) => ({
        use: 'x509-svid',
        kty: 'EC',
        x5c: [Buffer.from(r.der).toString('base64')],
      })),
    })),
  };
  const signed = await signDocument(document, world.bundleSigner, {
    issuer: 'https://bundles.example',
    kid: 'bundle-signer-1',
  });
  return loadTrustMaterial(signed, {
    signers: [{ kid: 'bundle-signer-1', key: world.bundleSigner.publicKey }],
  });
}

function svidDir(files: { chain: SpiffeChain; bundlePem: string }): string {
  const target = mkdtempSync(join(dir, 'svid-'));
  writeSvidFiles(target, files);
  return target;
}

/** Write the three files the way spiffe-helper does (temporary file, then rename). */
function writeSvidFiles(target: string, files: { chain: SpiffeChain; bundlePem: string }): void {
  const put = (name: string, text: string) => {
    writeFileSync(join(target, `.${name}.tmp`), text, { mode: 0o600 });
    renameSync(join(target, `.${name}.tmp`), join(target, name));
  };
  put('svid_bundle.pem', files.bundlePem);
  put('svid_key.pem', files.chain.leafKey.pkcs8Pem);
  put('svid.pem', files.chain.chainPem);
}

function openFiles(target: string, trust: LoadedTrustMaterial, log: ReturnType<typeof createLogger>) {
  return openSpiffeFilesIdentity(
    {
      certFile: join(target, 'svid.pem'),
      keyFile: join(target, 'svid_key.pem'),
      bundleFile: join(target, 'svid_bundle.pem'),
    },
    { log, trustBundles: () => trust.spiffeBundles, clock: now },
  );
}

function broker(identity: IdentitySource, trust: LoadedTrustMaterial): Broker {
  return new Broker({
    issuer: BROKER_ISSUER,
    issuerKey: world.broker,
    issuerKid: 'broker-1',
    identity,
    material: () => ({ trust, policy: world.policy }),
    clock: now,
  });
}

function refundRequest(): BrokerIpcRequest {
  const body = '{"amount":"12.00"}';
  const nonce = `nonce-${crypto.randomUUID()}`;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-trustplane-nonce': nonce };
  const allow = Object.keys(headers).sort();
  return {
    request_id: crypto.randomUUID(),
    protocol: 'local-json-ipc',
    operation: 'issue_request_bound_passport',
    http: {
      method: 'POST',
      scheme: 'https',
      authority: 'orders.example',
      path: '/v1/orders/o-7/refund',
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
      route_id: 'orders.refund',
      body_sha256: sha256HexSync(body),
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

const subjectOf = (r: BrokerIpcResponse) =>
  r.accepted ? (decodePassportUnverified(r.artifacts.passport.value).payload.sub as string) : r.reason_code;

async function until<T>(probe: () => T, ok: (v: T) => boolean, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ignoredLines = (lines: readonly LogLine[]) =>
  lines.filter((l) => l.level === 'warn' && l.msg.includes('bundle') && l['trust_domain'] !== undefined);

describe('attack: rogue CA in the SVID directory', () => {
  it('a rogue CA and an SVID it minted for another SPIFFE ID do not load (trust domain pinned)', async () => {
    const trust = await trustPinning([{ trustDomain: TRUST_DOMAIN, roots: [realRoot] }]);
    const rogue = mintSpiffeChain({
      root: rogueRoot,
      trustDomain: TRUST_DOMAIN,
      spiffeId: ADMIN,
      ...rogueValidity,
    });
    // Only the rogue CA in the directory, and the rogue CA appended to the real one.
    for (const bundlePem of [rogueRoot.pem, realRoot.pem + rogueRoot.pem]) {
      const { log, lines, raw } = capture();
      await expect(openFiles(svidDir({ chain: rogue, bundlePem }), trust, log)).rejects.toMatchObject({
        reason: 'svid_untrusted_chain',
      });
      expect(ignoredLines(lines)).toEqual([expect.objectContaining({ trust_domain: TRUST_DOMAIN })]);
      expect(raw.join('')).not.toContain('BEGIN CERTIFICATE');
      expect(raw.join('')).not.toContain(Buffer.from(rogueRoot.der).toString('base64').slice(0, 40));
    }
  });

  it('a rotation to a rogue SVID is refused: the broker never mints for it, and answers workload_attestation_failed once the real SVID expires', async () => {
    const trust = await trustPinning([{ trustDomain: TRUST_DOMAIN, roots: [realRoot] }]);
    const real = mintSpiffeChain({
      root: realRoot,
      trustDomain: TRUST_DOMAIN,
      spiffeId: WORKER,
      ...validity,
    });
    const target = svidDir({ chain: real, bundlePem: realRoot.pem });
    const { log, lines } = capture();
    const identity = await openFiles(target, trust, log);
    try {
      const b = broker(identity, trust);
      expect(subjectOf(await b.issue(refundRequest()))).toBe(WORKER);
      expect(ignoredLines(lines)).toEqual([]);

      // Whoever can write the directory adds their CA and an SVID it minted for ADMIN.
      const rogue = mintSpiffeChain({
        root: rogueRoot,
        trustDomain: TRUST_DOMAIN,
        spiffeId: ADMIN,
        ...rogueValidity,
      });
      writeSvidFiles(target, { chain: rogue, bundlePem: realRoot.pem + rogueRoot.pem });
      const outcome = await until(
        () =>
          lines.find(
            (l) =>
              l.msg === 'workload SVID rotated' ||
              (l.level === 'warn' && l['reason'] === 'svid_untrusted_chain'),
          ),
        (l) => l !== undefined,
      );
      expect(outcome).toMatchObject({ level: 'warn', reason: 'svid_untrusted_chain' });
      expect(ignoredLines(lines)).toContainEqual(expect.objectContaining({ trust_domain: TRUST_DOMAIN }));
      expect(subjectOf(await b.issue(refundRequest()))).toBe(WORKER);

      // Past the real SVID's notAfter, the broker refuses rather than fall back to the rogue one.
      clock = validity.notAfter + 1;
      const expired = await b.issue(refundRequest());
      expect(expired).toMatchObject({
        accepted: false,
        reason_code: 'workload_attestation_failed',
        error: { code: 'workload_attestation_failed', details: { svid_error: 'svid_expired' } },
      });
    } finally {
      clock = NOW;
      await identity.close?.();
    }
  });

  it('the same directory with the real CA still works (pinned roots equal the directory bundle: no warning)', async () => {
    const trust = await trustPinning([{ trustDomain: TRUST_DOMAIN, roots: [realRoot] }]);
    const real = mintSpiffeChain({
      root: realRoot,
      trustDomain: TRUST_DOMAIN,
      spiffeId: WORKER,
      ...validity,
    });
    const { log, lines } = capture();
    const identity = await openFiles(svidDir({ chain: real, bundlePem: realRoot.pem }), trust, log);
    try {
      const response = await broker(identity, trust).issue(refundRequest());
      expect(response).toMatchObject({ accepted: true, reason_code: 'broker_passport_issued' });
      expect(subjectOf(response)).toBe(WORKER);
      expect(ignoredLines(lines)).toEqual([]);
    } finally {
      await identity.close?.();
    }
  });

  it('a real SVID next to a rogue CA in the bundle loads, with one warning naming the trust domain', async () => {
    const trust = await trustPinning([{ trustDomain: TRUST_DOMAIN, roots: [realRoot] }]);
    const real = mintSpiffeChain({
      root: realRoot,
      trustDomain: TRUST_DOMAIN,
      spiffeId: WORKER,
      ...validity,
    });
    const { log, lines, raw } = capture();
    const identity = await openFiles(
      svidDir({ chain: real, bundlePem: realRoot.pem + rogueRoot.pem }),
      trust,
      log,
    );
    try {
      expect(subjectOf(await broker(identity, trust).issue(refundRequest()))).toBe(WORKER);
      expect(ignoredLines(lines)).toEqual([
        expect.objectContaining({ level: 'warn', trust_domain: TRUST_DOMAIN }),
      ]);
      expect(raw.join('')).not.toContain('BEGIN CERTIFICATE');
    } finally {
      await identity.close?.();
    }
  });

  it('a trust domain the trust material does not list still uses the directory bundle', async () => {
    // The trust material pins another trust domain only; example.local's roots come from the directory.
    const otherRoot = mintCa({ uris: ['spiffe://other.local'], ...validity });
    const trust = await trustPinning([{ trustDomain: 'other.local', roots: [otherRoot] }]);
    const directoryRoot = mintCa({ uris: [`spiffe://${TRUST_DOMAIN}`], ...validity });
    const c = mintSpiffeChain({
      root: directoryRoot,
      trustDomain: TRUST_DOMAIN,
      spiffeId: WORKER,
      ...validity,
    });
    const { log, lines } = capture();
    const identity = await openFiles(svidDir({ chain: c, bundlePem: directoryRoot.pem }), trust, log);
    try {
      expect(subjectOf(await broker(identity, trust).issue(refundRequest()))).toBe(WORKER);
      expect(ignoredLines(lines)).toEqual([]);
    } finally {
      await identity.close?.();
    }
  });

  it('Workload API: a rogue bundle (own or federated) does not override the pinned roots', async () => {
    const trust = await trustPinning([{ trustDomain: TRUST_DOMAIN, roots: [realRoot] }]);
    const rogue = mintSpiffeChain({
      root: rogueRoot,
      trustDomain: TRUST_DOMAIN,
      spiffeId: ADMIN,
      ...rogueValidity,
    });
    const real = mintSpiffeChain({
      root: realRoot,
      trustDomain: TRUST_DOMAIN,
      spiffeId: WORKER,
      ...validity,
    });
    const cases = [
      x509SvidResponse([{ chain: rogue }]),
      // The rogue SVID with the real bundle, and the rogue CA sent as a "federated" bundle of the same trust domain.
      x509SvidResponse([{ chain: { ...rogue, root: realRoot } }], { [TRUST_DOMAIN]: [rogueRoot.der] }),
    ];
    for (const [i, initial] of cases.entries()) {
      const server = await WorkloadApiTestServer.start({ initial, socketPath: join(dir, `agent-${i}.sock`) });
      const { log } = capture();
      try {
        await expect(
          openWorkloadApiIdentity(
            { endpoint: server.endpoint },
            { log, trustBundles: () => trust.spiffeBundles, clock: now },
          ),
        ).rejects.toMatchObject({ reason: 'svid_untrusted_chain' });
      } finally {
        await server.close();
      }
    }
    const server = await WorkloadApiTestServer.start({
      initial: x509SvidResponse([{ chain: real }]),
      socketPath: join(dir, 'agent-real.sock'),
    });
    const { log } = capture();
    const identity = await openWorkloadApiIdentity(
      { endpoint: server.endpoint },
      { log, trustBundles: () => trust.spiffeBundles, clock: now },
    );
    try {
      expect(subjectOf(await broker(identity, trust).issue(refundRequest()))).toBe(WORKER);
    } finally {
      await identity.close?.();
      await server.close();
    }
  });

  it('network mode: a caller with an SVID from the rogue CA in the broker directory gets no passport', async () => {
    // TLS checks validity against the real clock: these certificates are minted for now.
    const realClock = () => Math.floor(Date.now() / 1000);
    const tlsRoot = mintCa({ uris: [`spiffe://${TRUST_DOMAIN}`], subject: '/O=Real SPIRE/CN=TLS Root' });
    const tlsRogue = mintCa({ uris: [`spiffe://${TRUST_DOMAIN}`], subject: '/O=Real SPIRE/CN=TLS Root' });
    const trust = await trustPinning([{ trustDomain: TRUST_DOMAIN, roots: [tlsRoot] }]);
    const own = mintSpiffeChain({
      root: tlsRoot,
      trustDomain: TRUST_DOMAIN,
      spiffeId: 'spiffe://example.local/trustplane/broker',
    });
    const { log } = capture();
    const identity = await openSpiffeFilesIdentity(
      (() => {
        const target = svidDir({ chain: own, bundlePem: tlsRoot.pem + tlsRogue.pem });
        return {
          certFile: join(target, 'svid.pem'),
          keyFile: join(target, 'svid_key.pem'),
          bundleFile: join(target, 'svid_bundle.pem'),
        };
      })(),
      { log, trustBundles: () => trust.spiffeBundles, clock: realClock },
    );
    const tlsErrors: string[] = [];
    const tls = await serveBrokerTls(broker(identity, trust), {
      listen: '127.0.0.1:0',
      credentials: identity,
      clock: realClock,
      onError: (m) => tlsErrors.push(m),
    });
    const client = (c: SpiffeChain) =>
      new BrokerIpcClient({
        socketPath: '-',
        timeoutMs: 5000,
        connect: () =>
          tlsConnect({
            host: '127.0.0.1',
            port: tls.address.port,
            ca: tlsRoot.pem,
            cert: c.chainPem,
            key: c.leafKey.pkcs8Pem,
            checkServerIdentity: () => undefined,
          }),
      });
    try {
      const rogueCaller = mintSpiffeChain({ root: tlsRogue, trustDomain: TRUST_DOMAIN, spiffeId: ADMIN });
      const refused = await client(rogueCaller)
        .issue(refundRequest())
        .catch((e: unknown) => e);
      expect(refused).toMatchObject({ name: 'BrokerIpcError' });
      const realCaller = mintSpiffeChain({ root: tlsRoot, trustDomain: TRUST_DOMAIN, spiffeId: WORKER });
      expect(subjectOf(await client(realCaller).issue(refundRequest()))).toBe(WORKER);
    } finally {
      await tls.close();
      await identity.close?.();
    }
  });
});
