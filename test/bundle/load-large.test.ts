import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../pkg/authcore/signing-key.js';
import { loadPolicyBundle, signDocument, type DocumentSigner } from '../../pkg/bundle/index.js';
import type { TrustplaneError } from '../../pkg/authcore/errors.js';
import { parsePolicyBundle, parsePolicyBundleSliced } from '../../pkg/bundle/parse-policy-bundle.js';
import { canonicalMembers, canonicalMembersSliced, canonicalizeJson } from '../../pkg/internal/jcs.js';
import { yieldToEventLoop } from '../../pkg/internal/yield.js';
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

describe('the sliced checks agree with the whole-document ones', () => {
  const alwaysYield = () => yieldToEventLoop();

  it('parsePolicyBundleSliced returns what parsePolicyBundle returns', async () => {
    const { text } = await signedBundle(260);
    const whole = parsePolicyBundle(JSON.parse(text));
    const sliced = await parsePolicyBundleSliced(JSON.parse(text), alwaysYield);
    expect(canonicalizeJson(sliced)).toBe(canonicalizeJson(whole));
    expect(sliced).toEqual(whole);
  });

  // One defect per document, anywhere in it: both checks refuse it, naming the same path.
  const defects: [string, (doc: Mutable) => void, string][] = [
    [
      'a bad method',
      (d) => (d.route_groups[3]!.routes![9]!.method = 'get'),
      'route_groups[3].routes[9].method',
    ],
    [
      'an unknown route member',
      (d) => (d.route_groups[1]!.routes![0]!.extra = 1),
      'route_groups[1].routes[0]',
    ],
    ['an unknown group member', (d) => (d.route_groups[4]!.extra = 1), 'route_groups[4]'],
    ['a group without routes', (d) => delete d.route_groups[2]!.routes, 'route_groups[2].routes'],
    [
      'a duplicate route id',
      (d) => (d.route_groups[5]!.routes![3]!.route_id = 'r.7'),
      'route_groups[5].routes[3].route_id',
    ],
    ['an unknown api', (d) => (d.route_groups[0]!.api_id = 'nope'), 'route_groups[0].api_id'],
    ['a bad top-level member', (d) => (d.trust_domain = 'Not A Domain'), 'trust_domain'],
    ['route_groups not an array', (d) => (d.route_groups = {} as never), 'route_groups'],
  ];
  type Mutable = {
    trust_domain: unknown;
    route_groups: (Record<string, unknown> & { routes?: Record<string, unknown>[] })[];
  };

  it.each(defects)('%s: both refuse it at %s', async (_name, mutate, path) => {
    const { text } = await signedBundle(300);
    const doc = JSON.parse(text) as Mutable;
    mutate(doc);
    const whole = (() => {
      try {
        parsePolicyBundle(structuredClone(doc));
        return undefined;
      } catch (error) {
        return error as TrustplaneError;
      }
    })();
    expect(whole).toMatchObject({ reason: 'invalid_bundle' });
    expect(whole!.message).toContain(` at ${path}`);
    await expect(parsePolicyBundleSliced(structuredClone(doc), alwaysYield)).rejects.toMatchObject({
      reason: 'invalid_bundle',
      message: whole!.message,
    });
  });

  it('canonicalMembersSliced returns what canonicalMembers returns, and refuses what it refuses', async () => {
    const { text } = await signedBundle(120);
    const doc = JSON.parse(text) as Record<string, unknown>;
    expect(await canonicalMembersSliced(doc, alwaysYield)).toEqual(canonicalMembers(doc));
    const odd = { a: [{ b: [1, 'x', { c: null }] }], d: { e: [[true]] }, u: undefined };
    expect(await canonicalMembersSliced(odd, alwaysYield)).toEqual(canonicalMembers(odd));
    const cyclic: Record<string, unknown> = { list: [] };
    (cyclic.list as unknown[]).push({ back: cyclic });
    await expect(canonicalMembersSliced(cyclic, alwaysYield)).rejects.toThrow(/cyclic/);
    await expect(canonicalMembersSliced({ s: ['\uD800'] }, alwaysYield)).rejects.toThrow(/lone surrogate/);
    await expect(canonicalMembersSliced({ n: [Number.NaN] }, alwaysYield)).rejects.toThrow(/NaN/);
  });

  it('a large bundle that is not plain JSON data (a lone surrogate) is refused invalid_bundle', async () => {
    const { text, signers } = await signedBundle(300);
    const doc = JSON.parse(text) as Record<string, unknown>;
    doc.contract_metadata = { note: 'x\uD800' };
    await expect(loadPolicyBundle(doc, { signers })).rejects.toMatchObject({
      reason: 'invalid_bundle',
      message: 'policy bundle is not in the form its schema keeps',
    });
  });
});
