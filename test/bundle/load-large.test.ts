import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../pkg/authcore/signing-key.js';
import { loadPolicyBundle, signDocument, type DocumentSigner } from '../../pkg/bundle/index.js';
import { route, sampleBundle } from './fixtures.js';

// A large bundle (more than 200 routes) is loaded in steps with the event loop let run between
// them, so an adapter reloading it keeps answering requests.

const SIGNER = { issuer: 'ops@example.local', kid: 'docs-1' };

async function signedBundle(routes: number) {
  const key = await generateSigningKey();
  const signers: DocumentSigner[] = [{ kid: SIGNER.kid, key: key.publicKey }];
  const groups = [];
  for (let g = 0; g * 50 < routes; g++) {
    const list = [];
    for (let i = g * 50; i < Math.min(routes, (g + 1) * 50); i++) {
      list.push(route(`r.${i}`, 'GET', `/v1/svc${g}/items${i}/{item_id}`));
    }
    groups.push({ route_group_id: `group-${g}`, api_id: 'orders-api', routes: list });
  }
  const doc = await signDocument(sampleBundle({ route_groups: groups }), key, SIGNER);
  return { text: JSON.stringify(doc), signers };
}

/** How many 0 ms timers fired while `load` ran (each one is a turn the event loop had). */
async function turnsDuring(load: () => Promise<unknown>): Promise<number> {
  let turns = 0;
  let running = true;
  const tick = () => {
    if (!running) return;
    turns++;
    setTimeout(tick, 0);
  };
  setTimeout(tick, 0);
  await load();
  running = false;
  return turns;
}

describe('loadPolicyBundle of a large bundle', () => {
  it('1,000 routes: loads the same routes, and lets the event loop run several times meanwhile', async () => {
    const { text, signers } = await signedBundle(1000);
    let loaded: Awaited<ReturnType<typeof loadPolicyBundle>> | undefined;
    const turns = await turnsDuring(
      async () => (loaded = await loadPolicyBundle(JSON.parse(text), { signers })),
    );
    expect(loaded!.routesById.size).toBe(1000);
    expect(loaded!.routeTable.resolve('GET', '/v1/svc3/items170/x-1')?.route.route_id).toBe('r.170');
    expect(turns).toBeGreaterThanOrEqual(4);
  });

  it('a tampered large bundle is still refused (the steps change nothing about the checks)', async () => {
    const { text, signers } = await signedBundle(300);
    const tampered = JSON.parse(text) as { route_groups: { routes: { path_template: string }[] }[] };
    tampered.route_groups[2]!.routes[7]!.path_template = '/v1/admin/{item_id}';
    await expect(loadPolicyBundle(tampered, { signers })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
    });
  });
});
