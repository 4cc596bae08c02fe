import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  sendSigned,
  startTestAdapter,
  startUpstream,
  type TestAdapter,
  type Upstream,
} from '../helpers/adapter.js';
import { OTHER_ISSUER, createWorld, signed, type World } from '../helpers/fixture.js';

// One authorized caller could fill the memory replay store (1,000,000 entries, each kept about
// 11 minutes) and have it answer 503 to everyone. Each caller (issuer + subject) now holds at most
// replayMaxEntriesPerSubject live jtis: beyond it that caller alone gets 429.

let world: World;
let upstream: Upstream;
let tp: TestAdapter;

beforeAll(async () => {
  world = await createWorld();
  upstream = await startUpstream();
  tp = await startTestAdapter(world, { upstream: upstream.url, replayMaxEntriesPerSubject: 5 });
});
afterAll(async () => {
  await tp?.adapter.close();
  await upstream?.close();
});

describe('attack: one caller fills the replay store', () => {
  it('the caller beyond its share gets 429 replay_quota_exceeded; another caller is still served', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await sendSigned(tp.base, await signed(world))).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    const last = await sendSigned(tp.base, await signed(world));
    expect([last.status, last.headers['x-trustplane-reason']]).toEqual([429, 'replay_quota_exceeded']);
    // Another caller (issuer and subject) is unaffected.
    const other = await signed(world, {
      issuerKey: world.other,
      kid: 'other-1',
      claims: { iss: OTHER_ISSUER, sub: 'service:reports', trust_domain: 'other.local' },
    });
    expect((await sendSigned(tp.base, other)).status).toBe(200);
    expect(upstream.requests).toHaveLength(6);
  });
});
