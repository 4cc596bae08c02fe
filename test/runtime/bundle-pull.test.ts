import { createHash } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signDocument } from '../../pkg/bundle/index.js';
import {
  BundleManager,
  createAdapterMetrics,
  createLogger,
  parseConfiguredKeys,
  type AdapterMetrics,
  type ConfiguredKey,
  type Logger,
} from '../../pkg/runtime/index.js';
import { fetchDocument } from '../../pkg/runtime/bundle-fetch.js';
import { createWorld, NOW, type World } from '../helpers/fixture.js';

// Red team findings on the bundle pull client (BundleManager with bundle URLs), against a hostile
// source in this process: one loopback HTTP server whose answers each test sets. The manager's
// clock is frozen at NOW (the documents' time); fetches and polls run on the real clock.

type Doc = Record<string, unknown>;

let world: World;
let keys: ConfiguredKey[];
let server: Server;
let base: string;
let dir: string;
const served: {
  trust: Buffer;
  policy: Buffer;
  /** Answer every request with this status, no body. */
  status?: number | undefined;
  /** Claim long-poll (`Preference-Applied: wait=30`) but answer at once. */
  fakeLongPoll: boolean;
  requests: number;
} = { trust: Buffer.alloc(0), policy: Buffer.alloc(0), fakeLongPoll: false, requests: 0 };
const managers: BundleManager[] = [];

const bytes = (d: unknown) => Buffer.from(JSON.stringify(d));
const sign = (doc: Doc) =>
  signDocument(doc, world.bundleSigner, {
    issuer: 'https://bundles.example',
    kid: 'bundle-signer-1',
  }) as Promise<Doc>;
const policyAt = (issuedAt: number, revoked = false) =>
  sign({
    ...world.policyDoc,
    issued_at: issuedAt,
    ...(revoked
      ? { revocations: [{ kind: 'subject', value: 'service:orders-client', reason: 'compromised' }] }
      : {}),
  });
const revocations = (m: BundleManager) =>
  JSON.stringify((m.current.policy.document as { revocations?: unknown }).revocations ?? []);

function stateDir(persisted: { trust?: unknown; policy?: unknown } = {}): string {
  const d = mkdtempSync(path.join(dir, 'state-'));
  if (persisted.trust !== undefined)
    writeFileSync(path.join(d, 'trust-material.json'), bytes(persisted.trust));
  if (persisted.policy !== undefined)
    writeFileSync(path.join(d, 'policy-bundle.json'), bytes(persisted.policy));
  return d;
}

async function open(
  options: {
    state?: string;
    metrics?: AdapterMetrics;
    log?: Logger;
    waitSeconds?: number;
    pollIntervalMs?: number;
    token?: string;
    url?: string;
  } = {},
): Promise<BundleManager> {
  const url = options.url ?? base;
  const m = await BundleManager.open(
    {
      trustMaterialPath: `${url}/trust-material.json`,
      policyBundlePath: `${url}/policy-bundle.json`,
      trustMaterialKeys: keys,
      policyBundleKeys: keys,
      devAllowUnsigned: false,
      remote: {
        stateDir: options.state ?? stateDir(),
        waitSeconds: options.waitSeconds ?? 0,
        pollIntervalMs: options.pollIntervalMs ?? 50,
        timeoutMs: 2_000,
        ...(options.token !== undefined ? { token: options.token } : {}),
      },
    },
    {
      log: options.log ?? createLogger('silent'),
      clock: () => NOW,
      ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
    },
  );
  managers.push(m);
  return m;
}

async function fetches(metrics: AdapterMetrics, result: string, reason: string): Promise<number> {
  const { values } = await metrics.bundleFetches.get();
  return values
    .filter((v) => v.labels.bundle === 'policy' && v.labels.result === result && v.labels.reason === reason)
    .reduce((n, v) => n + v.value, 0);
}

/** Wait (bounded) until `cond` holds; returns whether it did. */
async function until(cond: () => boolean | Promise<boolean>, ms = 5_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

/** Let the pull loop see the current answer: a few more requests reach the source. */
async function polled(n = 4): Promise<void> {
  const target = served.requests + n;
  await until(() => served.requests >= target);
}

beforeAll(async () => {
  world = await createWorld();
  keys = await parseConfiguredKeys([world.bundleSigner.publicKey.x]);
  dir = mkdtempSync(path.join(tmpdir(), 'tp-bundle-pull-'));
  server = createServer((req, res) => {
    served.requests += 1;
    if (served.status !== undefined) {
      res.writeHead(served.status).end();
      return;
    }
    const b = req.url === '/trust-material.json' ? served.trust : served.policy;
    const etag = `"${createHash('sha256').update(b).digest('hex')}"`;
    const extra: Record<string, string> = served.fakeLongPoll ? { 'preference-applied': 'wait=30' } : {};
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag, ...extra }).end();
      return;
    }
    res.writeHead(200, { etag, 'content-type': 'application/json', ...extra }).end(b);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
  served.status = undefined;
  served.fakeLongPoll = false;
});

afterAll(async () => {
  await new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
});

describe('attack: same issued_at, different content (red team 05: a revocation undone)', () => {
  it('a pulled document with the issued_at in force and other content is refused bundle_conflict, counted; the revocation stays', async () => {
    const revoking = await policyAt(NOW - 10, true);
    served.trust = bytes(world.trustDoc);
    served.policy = bytes(revoking);
    const metrics = createAdapterMetrics({ processMetrics: false });
    const m = await open({ metrics });
    m.watch(0);
    expect(revocations(m)).toContain('compromised');

    // The same issued_at and the same content in other bytes: no change, nothing refused.
    served.policy = Buffer.from(JSON.stringify(revoking, null, 2));
    await polled();
    expect(await fetches(metrics, 'failure', 'bundle_conflict')).toBe(0);
    expect(revocations(m)).toContain('compromised');

    // The pre-revocation document, signed with the same issued_at, replayed.
    served.policy = bytes(await policyAt(NOW - 10));
    await until(async () => (await fetches(metrics, 'failure', 'bundle_conflict')) >= 1);
    await polled();
    expect(await fetches(metrics, 'failure', 'bundle_conflict')).toBe(1);
    expect([m.current.policy.issuedAt, revocations(m)]).toEqual([
      NOW - 10,
      expect.stringContaining('compromised'),
    ]);
  });

  it('at start: the source serves another document with the persisted issued_at: start from the persisted one, counted', async () => {
    const revoking = await policyAt(NOW - 10, true);
    served.trust = bytes(world.trustDoc);
    served.policy = bytes(await policyAt(NOW - 10));
    const metrics = createAdapterMetrics({ processMetrics: false });
    const m = await open({ metrics, state: stateDir({ trust: world.trustDoc, policy: revoking }) });
    expect(revocations(m)).toContain('compromised');
    expect(await fetches(metrics, 'failure', 'bundle_conflict')).toBe(1);
  });
});

describe('attack: far-future issued_at (red team 05: later documents locked out as rollbacks)', () => {
  it('a pulled document dated beyond the clock skew is refused bundle_not_yet_valid, counted; a correct later one is accepted', async () => {
    served.trust = bytes(world.trustDoc);
    served.policy = bytes(await policyAt(NOW - 10));
    const metrics = createAdapterMetrics({ processMetrics: false });
    const m = await open({ metrics });
    m.watch(0);
    const before = m.current.policyDigest;

    served.policy = bytes(await policyAt(NOW + 30 * 86_400, true));
    await until(async () => (await fetches(metrics, 'failure', 'bundle_not_yet_valid')) >= 1);
    expect(await fetches(metrics, 'failure', 'bundle_not_yet_valid')).toBe(1);
    expect(m.current.policyDigest).toBe(before);

    // A document issued now, with the revocation, is not a rollback of the refused one.
    served.policy = bytes(await policyAt(NOW, true));
    await until(() => m.current.policyDigest !== before);
    expect([m.current.policy.issuedAt, revocations(m).includes('compromised')]).toEqual([NOW, true]);
    // Within the skew (20 s ahead of this clock) is accepted.
    served.policy = bytes(await policyAt(NOW + 20));
    await until(() => m.current.policy.issuedAt === NOW + 20);
    expect(m.current.policy.issuedAt).toBe(NOW + 20);
  });

  it('a bundle file dated beyond the clock skew is refused at start (bundle_not_yet_valid)', async () => {
    const files = mkdtempSync(path.join(dir, 'files-'));
    writeFileSync(path.join(files, 'trust.json'), bytes(world.trustDoc));
    writeFileSync(path.join(files, 'policy.json'), bytes(await policyAt(NOW + 3_600)));
    await expect(
      BundleManager.open(
        {
          trustMaterialPath: path.join(files, 'trust.json'),
          policyBundlePath: path.join(files, 'policy.json'),
          trustMaterialKeys: keys,
          policyBundleKeys: keys,
          devAllowUnsigned: false,
        },
        { log: createLogger('silent'), clock: () => NOW },
      ),
    ).rejects.toMatchObject({ reason: 'bundle_not_yet_valid' });
  });
});

describe('red team 06: listeners and polling pace', () => {
  it('300 fetches on one AbortSignal leave no abort listener behind', async () => {
    served.policy = bytes(world.policyDoc);
    const etag = `"${createHash('sha256').update(served.policy).digest('hex')}"`;
    const signal = new AbortController().signal;
    const options = { stateDir: dir, waitSeconds: 0, pollIntervalMs: 1_000, timeoutMs: 2_000 };
    let notModified = 0;
    for (let i = 0; i < 300; i += 1) {
      const r = await fetchDocument(`${base}/policy-bundle.json`, options, { etag, waitSeconds: 0, signal });
      if (r.status === 304) notModified += 1;
    }
    expect([notModified, getEventListeners(signal, 'abort').length]).toEqual([300, 0]);
  });

  it('a pulling manager adds no listener per poll: no MaxListenersExceededWarning over 100 polls', async () => {
    served.trust = bytes(world.trustDoc);
    served.policy = bytes(world.policyDoc);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const m = await open({ pollIntervalMs: 5 });
      const start = served.requests;
      m.watch(0);
      await until(() => served.requests >= start + 100, 20_000);
      expect(served.requests - start).toBeGreaterThanOrEqual(100);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  });

  it('a source claiming long-poll but answering at once is not polled in a tight loop', async () => {
    served.trust = bytes(world.trustDoc);
    served.policy = bytes(world.policyDoc);
    served.fakeLongPoll = true;
    const m = await open({ waitSeconds: 30, pollIntervalMs: 1_000 });
    const start = served.requests;
    m.watch(0);
    await new Promise((r) => setTimeout(r, 2_500));
    // Two documents, at most one request a second each (plus the first): never thousands.
    expect(served.requests - start).toBeLessThanOrEqual(8);
  });
});

describe('contact and credentials', () => {
  it('a 304 to a request without If-None-Match is not contact (the document was never fetched)', async () => {
    served.trust = bytes(world.trustDoc);
    served.policy = bytes(world.policyDoc);
    served.status = 304;
    const m = await open({ state: stateDir({ trust: world.trustDoc, policy: world.policyDoc }) });
    expect(m.current.policy.issuedAt).toBe(world.policy.issuedAt);
    expect(m.contactAges()).toEqual({});
    served.status = undefined;
  });

  it('a bearer token bound for a cleartext, non-loopback URL is warned about once; never for loopback', async () => {
    const lines: { msg: string; fields: unknown }[] = [];
    const log: Logger = {
      ...createLogger('silent'),
      warn: (msg, fields) => lines.push({ msg, fields }),
    };
    const token = 'bundle-fetch-token-0123456789';
    served.trust = bytes(world.trustDoc);
    served.policy = bytes(world.policyDoc);
    await open({ token, log });
    expect(lines.filter((l) => /cleartext/.test(l.msg))).toEqual([]);

    // 0.0.0.0 reaches this machine (connection refused on port 1) but is not a loopback name.
    const persisted = stateDir({ trust: world.trustDoc, policy: world.policyDoc });
    mkdirSync(persisted, { recursive: true });
    await open({ token, log, url: 'http://0.0.0.0:1', state: persisted });
    const warned = lines.filter((l) => /cleartext/.test(l.msg));
    expect(warned).toHaveLength(1);
    expect(JSON.stringify(warned)).toContain('0.0.0.0:1');
    expect(JSON.stringify(lines)).not.toContain(token);
  });
});
