import http from 'node:http';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogger,
  keyBundleSigner,
  startBundleServer,
  type BundleServer,
  type BundleServerOptions,
} from '../../pkg/runtime/index.js';
import { createWorld, NOW, type World } from '../helpers/fixture.js';

// Red team findings on `bundle serve` (startBundleServer), in this process with an injected clock.

type Doc = Record<string, unknown>;

let world: World;
const servers: BundleServer[] = [];
const strip = (d: Doc) => {
  const { signature: _s, signed_by: _b, ...rest } = d;
  return rest;
};

beforeAll(async () => {
  world = await createWorld();
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(
  build: BundleServerOptions['build'],
  extra: Partial<BundleServerOptions> = {},
): Promise<BundleServer> {
  const s = await startBundleServer({
    listen: '127.0.0.1:0',
    signer: keyBundleSigner(world.bundleSigner, {
      issuer: 'https://bundles.example',
      kid: 'bundle-signer-1',
    }),
    build,
    log: createLogger('silent'),
    resignIntervalSeconds: 3_600,
    ...extra,
  });
  servers.push(s);
  return s;
}

/** The documents of one publication: `revoked` adds a revocation to the policy. */
const documents = (issuedAt: number, revoked: boolean) => ({
  trust: { ...strip(world.trustDoc), issued_at: issuedAt },
  policy: {
    ...strip(world.policyDoc),
    issued_at: issuedAt,
    ...(revoked ? { revocations: [{ kind: 'subject', value: 'service:orders-client' }] } : {}),
  },
});

async function metric(s: BundleServer, pattern: RegExp): Promise<number> {
  let sum = 0;
  for (const line of (await s.registry.metrics()).split('\n'))
    if (pattern.test(line)) sum += Number(line.split(' ').pop());
  return sum;
}

describe('attack: two documents with one issued_at (red team 07)', () => {
  it('a change published in the second of the last publication gets a later issued_at; no change keeps the document; a clock back within the skew continues from the last', async () => {
    let clock = NOW;
    let revoked = false;
    const s = await start((now) => documents(now, revoked), { clock: () => clock });
    const a = s.current().policy;
    revoked = true;
    expect(await s.publish('watch')).toBe(true);
    const b = s.current().policy;
    expect([a.issuedAt, b.issuedAt]).toEqual([NOW, NOW + 1]);
    expect(b.etag).not.toBe(a.etag);
    expect(s.current().trust_material.issuedAt).toBe(NOW + 1);
    // Nothing changed in the same second: the same document (verifiers fetch nothing new).
    expect(await s.publish('watch')).toBe(true);
    expect(s.current().policy).toBe(b);
    // NTP steps the clock back 5 s: no change keeps the document; a change is still newer.
    clock = NOW - 5;
    expect(await s.publish('schedule')).toBe(true);
    expect(s.current().policy).toBe(b);
    revoked = false;
    expect(await s.publish('watch')).toBe(true);
    expect(s.current().policy.issuedAt).toBe(NOW + 2);
    expect(await metric(s, /^trustplane_bundle_server_publications_total\{.*result="failure"/)).toBe(0);
  });

  it('a builder that keeps its own issued_at: the same content again is no change; other content is refused bundle_conflict, counted', async () => {
    let revoked = false;
    const s = await start(() => documents(NOW - 100, revoked), { clock: () => NOW });
    const a = s.current().policy;
    expect(await s.publish('schedule')).toBe(true);
    expect(s.current().policy.etag).toBe(a.etag);
    revoked = true;
    expect(await s.publish('watch')).toBe(false);
    expect(s.current().policy.etag).toBe(a.etag);
    expect(await metric(s, /^trustplane_bundle_server_publications_total\{.*result="failure"/)).toBe(1);
  });
});

describe('attack: far-future issued_at (red team 05, server side)', () => {
  it('a document dated beyond the clock skew is not published; the clock going back more than the skew stops publication (kept serving the last good)', async () => {
    let clock = NOW;
    let ahead = 0;
    const s = await start((now) => documents(now + ahead, false), { clock: () => clock });
    const first = s.current().policy;
    ahead = 30 * 86_400;
    expect(await s.publish('watch')).toBe(false);
    expect(s.current().policy.etag).toBe(first.etag);
    ahead = 0;
    clock = NOW - 3_600;
    expect(await s.publish('schedule')).toBe(false);
    expect(s.current().policy).toEqual(first);
    expect(await metric(s, /^trustplane_bundle_server_publications_total\{.*result="failure"/)).toBe(2);
  });
});

describe('attack: unbounded long-poll waiters (red team 09)', () => {
  it('beyond maxWaitingRequests a long-poll is answered at once (304), counted; the waiting gauge stays at the cap', async () => {
    const s = await start((now) => documents(now, false), { maxWaitingRequests: 3 });
    const etag = s.current().policy.etag;
    const agent = new http.Agent({ keepAlive: false, maxSockets: 20 });
    const reqs: http.ClientRequest[] = [];
    const early: number[] = [];
    try {
      for (let i = 0; i < 5; i += 1) {
        const r = http.get(
          `${s.url}/policy-bundle.json?wait=30`,
          { agent, headers: { 'if-none-match': etag } },
          (res) => {
            early.push(res.statusCode ?? 0);
            res.resume();
          },
        );
        r.on('error', () => undefined);
        reqs.push(r);
      }
      const end = Date.now() + 10_000;
      while (early.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      expect(early).toEqual([304, 304]);
      expect(await metric(s, /^trustplane_bundle_server_waiting_requests /)).toBe(3);
      expect(await metric(s, /^trustplane_bundle_server_waits_refused_total /)).toBe(2);
    } finally {
      for (const r of reqs) r.destroy();
      agent.destroy();
    }
  });
});
