import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDocument } from '../../pkg/bundle/index.js';
import { createWorld, NOW, signed, type World } from '../helpers/fixture.js';
import {
  sendSigned,
  startTestAdapter,
  startUpstream,
  writeWorld,
  type Upstream,
} from '../helpers/adapter.js';
import { metricValue, parsePrometheus } from '../helpers/prometheus.js';

let world: World;
let upstream: Upstream;

beforeAll(async () => {
  world = await createWorld();
  upstream = await startUpstream();
});
afterAll(async () => {
  await upstream.close();
});

/** The world's policy with orders.search requiring hardware_local, re-signed, issued `issuedAt`. */
async function stricterPolicy(issuedAt: number) {
  const doc = structuredClone(world.policyDoc) as Record<string, unknown>;
  delete doc.signature;
  delete doc.signed_by;
  doc.issued_at = issuedAt;
  doc.policy_version = `v-${issuedAt}`;
  const groups = doc.route_groups as { routes: { route_id: string; required_key_binding?: string }[] }[];
  for (const r of groups[0]!.routes)
    if (r.route_id === 'orders.search') r.required_key_binding = 'hardware_local';
  return signDocument(doc, world.bundleSigner, { issuer: 'https://bundles.example', kid: 'bundle-signer-1' });
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('adapter: hot reload', () => {
  it('a replaced policy file takes effect on the next request; a corrupt one leaves the old in force', async () => {
    const tp = await startTestAdapter(world, { upstream: upstream.url, reloadIntervalMs: 0 });
    const scrape = async () => parsePrometheus(await (await fetch(`${tp.admin}/metrics`)).text());
    const reloads = async (result: string) =>
      metricValue(await scrape(), 'trustplane_bundle_reloads_total', { bundle: 'policy', result });
    try {
      expect((await sendSigned(tp.base, await signed(world))).status).toBe(200);

      // Atomic replace (write + rename), as a deploy tool or a ConfigMap update does.
      const tmp = path.join(tp.files.dir, 'policy.json.tmp');
      writeFileSync(tmp, JSON.stringify(await stricterPolicy(NOW - 30)));
      renameSync(tmp, tp.files.policyBundle);
      await waitFor(async () => (await reloads('success')) === 1, 'the policy reload');
      const denied = await sendSigned(tp.base, await signed(world));
      expect(denied.status).toBe(403);
      expect(JSON.parse(denied.body)).toEqual({ allowed: false, reason: 'insufficient_key_binding' });
      expect(tp.adapter.bundles.current.policy.policyVersion).toBe(`v-${NOW - 30}`);

      // A corrupt replacement: the stricter policy stays in force and the failure is counted.
      writeFileSync(tp.files.policyBundle, '{"version": "trustplane-bundle-v1", ');
      await waitFor(async () => (await reloads('failure')) >= 1, 'the failed reload');
      const failures = await reloads('failure');
      expect((await sendSigned(tp.base, await signed(world))).status).toBe(403);
      expect(tp.adapter.bundles.current.policy.policyVersion).toBe(`v-${NOW - 30}`);

      // A validly signed but tampered file is refused too.
      const tampered = (await stricterPolicy(NOW - 20)) as unknown as Record<string, unknown>;
      tampered.policy_version = 'tampered';
      writeFileSync(tp.files.policyBundle, JSON.stringify(tampered));
      await waitFor(async () => (await reloads('failure')) > failures, 'the refused tampered bundle');
      expect(tp.adapter.bundles.current.policy.policyVersion).toBe(`v-${NOW - 30}`);

      // Rollback to an older signed bundle is refused (issued_at earlier than the one in force).
      const older = await reloads('failure');
      writeFileSync(tp.files.policyBundle, JSON.stringify(world.policyDoc));
      await waitFor(async () => (await reloads('failure')) > older, 'the refused rollback');
      expect((await sendSigned(tp.base, await signed(world))).status).toBe(403);
      expect(await reloads('success')).toBe(1);
    } finally {
      await tp.adapter.close();
    }
  });

  it('reload() (what SIGHUP does) picks up a change without a watcher', async () => {
    const tp = await startTestAdapter(world, { upstream: upstream.url });
    try {
      await tp.adapter.bundles.close(); // stop the watcher: only the explicit reload may act
      writeFileSync(tp.files.policyBundle, JSON.stringify(await stricterPolicy(NOW - 10)));
      expect(await tp.adapter.reload()).toEqual({ trust_material: 'unchanged', policy: 'reloaded' });
      expect((await sendSigned(tp.base, await signed(world))).status).toBe(403);
    } finally {
      await tp.adapter.close();
    }
  });
});

describe('adapter: restart', () => {
  it('a jti consumed before a restart is still denied after it', async () => {
    const files = writeWorld(world);
    const s = await signed(world);
    const first = await startTestAdapter(world, { upstream: upstream.url }, files);
    expect((await sendSigned(first.base, s)).status).toBe(200);
    await first.adapter.close();
    const second = await startTestAdapter(world, { upstream: upstream.url }, files);
    try {
      const res = await sendSigned(second.base, s);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body)).toEqual({ allowed: false, reason: 'jti_replay' });
      expect((await sendSigned(second.base, await signed(world))).status).toBe(200);
    } finally {
      await second.adapter.close();
    }
  });
  it('a second adapter on the same journal refuses to start', async () => {
    const files = writeWorld(world);
    const first = await startTestAdapter(world, { upstream: upstream.url }, files);
    try {
      await expect(startTestAdapter(world, { upstream: upstream.url }, files)).rejects.toThrow(
        /journal|lock|another/i,
      );
    } finally {
      await first.adapter.close();
    }
  });
});

describe('adapter: graceful shutdown', () => {
  it('drains in-flight requests, then refuses new connections', async () => {
    const slow = await startUpstream((_seen, res) => {
      setTimeout(() => res.end('done'), 300).unref();
    });
    const tp = await startTestAdapter(world, { upstream: slow.url });
    try {
      const inFlight = sendSigned(tp.base, await signed(world));
      await waitFor(async () => slow.requests.length === 1, 'the request to reach the upstream');
      const closing = tp.adapter.close();
      const ready = await fetch(`${tp.admin}/readyz`).catch(() => undefined);
      if (ready) expect(ready.status).toBe(503);
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(res.body).toBe('done');
      await closing;
      await expect(sendSigned(tp.base, await signed(world))).rejects.toThrow();
    } finally {
      await slow.close();
    }
  });
});
