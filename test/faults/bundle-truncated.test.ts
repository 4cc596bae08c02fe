import { appendFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDocument } from '../../pkg/bundle/index.js';
import { startTestAdapter, startUpstream, type TestAdapter, type Upstream } from '../helpers/adapter.js';
import { readyStatus, scrape, send, signedSpec, waitFor } from '../helpers/faults.js';
import { createWorld, NOW, signed, type World } from '../helpers/fixture.js';
import { metricValue } from '../helpers/prometheus.js';

// A bundle file cut in half while the adapter reloads it (a writer that crashed, a copy that is
// not atomic). The adapter must keep the last good bundle in force and stay ready, count the
// failure, and pick up the good file once it is complete.

let world: World;
let upstream: Upstream;

beforeAll(async () => {
  world = await createWorld();
  upstream = await startUpstream();
});
afterAll(async () => {
  await upstream.close();
});

/** The world's document re-signed with a later `issued_at` (and, for the policy, a version). */
async function resigned(doc: Record<string, unknown>, issuedAt: number, version?: string): Promise<string> {
  const next = structuredClone(doc);
  delete next.signature;
  delete next.signed_by;
  next.issued_at = issuedAt;
  if (version !== undefined) next.policy_version = version;
  return JSON.stringify(
    await signDocument(next, world.bundleSigner, {
      issuer: 'https://bundles.example',
      kid: 'bundle-signer-1',
    }),
  );
}

async function reloads(tp: TestAdapter, bundle: string, result: 'success' | 'failure'): Promise<number> {
  return metricValue(await scrape(tp.admin), 'trustplane_bundle_reloads_total', { bundle, result });
}

let sent = 0;
/** Send one fresh signed search and return [status, reason or 'allow', policy_version recorded]. */
async function probe(tp: TestAdapter): Promise<[number, string, string | undefined]> {
  const id = `truncated-${++sent}`;
  const o = await send(tp.base, signedSpec(await signed(world), id));
  if (o.kind !== 'response') return [0, o.code, undefined];
  const event = tp.audit.events.find((e) => e.request_id === id);
  return [o.status, o.reason ?? 'allow', event?.policy_version];
}

describe('fault: a bundle file truncated during reload', () => {
  it('reload() of a half-written policy and trust material keeps the last good bundles; the good files are picked up', async () => {
    const tp = await startTestAdapter(world, { upstream: upstream.url });
    try {
      // Stop the watcher: only the explicit reloads act, so every count below is exact.
      await tp.adapter.bundles.close();
      expect(await probe(tp)).toEqual([200, 'allow', undefined]);

      const policy = await resigned(world.policyDoc, NOW - 30, 'v-good-2');
      const trust = await resigned(world.trustDoc, NOW - 30);
      writeFileSync(tp.files.policyBundle, policy.slice(0, Math.floor(policy.length / 2)));
      writeFileSync(tp.files.trustMaterial, trust.slice(0, Math.floor(trust.length / 2)));
      expect(await tp.adapter.reload()).toEqual({ trust_material: 'failed', policy: 'failed' });
      expect(await tp.adapter.reload()).toEqual({ trust_material: 'failed', policy: 'failed' });

      // The last good bundles stay in force: allowed, ready, two failures each, no success.
      expect(await probe(tp)).toEqual([200, 'allow', undefined]);
      expect(await readyStatus(tp.admin)).toBe(200);
      expect(await reloads(tp, 'policy', 'failure')).toBe(2);
      expect(await reloads(tp, 'trust_material', 'failure')).toBe(2);
      expect(await reloads(tp, 'policy', 'success')).toBe(0);

      // The rest of each file arrives: the next reload picks both up.
      writeFileSync(tp.files.policyBundle, policy);
      writeFileSync(tp.files.trustMaterial, trust);
      expect(await tp.adapter.reload()).toEqual({ trust_material: 'reloaded', policy: 'reloaded' });
      expect(await probe(tp)).toEqual([200, 'allow', 'v-good-2']);
      expect(await reloads(tp, 'policy', 'success')).toBe(1);
      expect(await reloads(tp, 'trust_material', 'success')).toBe(1);
      expect(await reloads(tp, 'policy', 'failure')).toBe(2);
      expect(await readyStatus(tp.admin)).toBe(200);
    } finally {
      await tp.adapter.close();
    }
  });

  it('the file watcher sees a half-written policy (kept out), then the completed file (taken)', async () => {
    const tp = await startTestAdapter(world, { upstream: upstream.url });
    try {
      expect(await probe(tp)).toEqual([200, 'allow', undefined]);
      // The newer policy requires a hardware-bound key on the search route: once it is in force
      // the probe is refused, so the probe tells which policy is in force.
      const doc = structuredClone(world.policyDoc);
      const routes = (
        doc.route_groups as { routes: { route_id: string; required_key_binding?: string }[] }[]
      )[0]!.routes;
      routes.find((r) => r.route_id === 'orders.search')!.required_key_binding = 'hardware_local';
      const policy = await resigned(doc, NOW - 20, 'v-strict');
      const half = Math.floor(policy.length / 2);

      // A slow writer: the first half lands, the watcher reloads it and fails.
      writeFileSync(tp.files.policyBundle, policy.slice(0, half));
      await waitFor(async () => (await reloads(tp, 'policy', 'failure')) >= 1, 'the failed reload');
      expect(await probe(tp)).toEqual([200, 'allow', undefined]);
      expect(await readyStatus(tp.admin)).toBe(200);
      expect(await reloads(tp, 'policy', 'success')).toBe(0);
      expect(tp.adapter.bundles.current.policy.policyVersion).toBeUndefined();

      // The second half lands: the watcher picks the complete file up.
      appendFileSync(tp.files.policyBundle, policy.slice(half));
      await waitFor(async () => (await reloads(tp, 'policy', 'success')) === 1, 'the good reload');
      expect(await probe(tp)).toEqual([403, 'insufficient_key_binding', 'v-strict']);
      expect(tp.adapter.bundles.current.policy.policyVersion).toBe('v-strict');
      expect(await readyStatus(tp.admin)).toBe(200);
      console.info(
        `[faults] truncated bundle via watcher: ${await reloads(tp, 'policy', 'failure')} failed reload(s), then 1 success`,
      );
    } finally {
      await tp.adapter.close();
    }
  });
});
