import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, writeWorld, type Upstream } from '../helpers/adapter.js';
import { startAdapterWithClock, send, signedSpec } from '../helpers/faults.js';
import { createWorld, NOW, signed, type World } from '../helpers/fixture.js';

// The adapter's clock is injected and stepped: forward past a passport's exp + skew, back before
// its iat - skew, and home again. A consumed jti must stay refused across every step: the replay
// store must not drop it because a stepped clock said it had expired.

const SKEW = 30; // the adapter's default skewSeconds
const TTL = 300; // the fixture's passport lifetime
const FORWARD = NOW + TTL + SKEW + 70; // past exp + skew of passports issued at NOW
const BACK = NOW - SKEW - 1; // before iat - skew of passports issued at NOW

let world: World;
let upstream: Upstream;

beforeAll(async () => {
  // Bundles fresh for an hour, so that the steps exercise the passport and the replay store only
  // (the default 300 s staleness would refuse every request at FORWARD with stale_bundle_fail_closed).
  world = await createWorld({
    policyPatch: (doc) => {
      doc.default_max_staleness_seconds = 3600;
    },
  });
  upstream = await startUpstream();
});
afterAll(async () => {
  await upstream.close();
});

describe('fault: the clock stepped forward and back', () => {
  it('expired forward, not yet valid back, and a consumed jti is refused at every step', async () => {
    let now = NOW;
    const tp = await startAdapterWithClock(world, () => now, { upstream: upstream.url });
    let n = 0;
    const go = async (s: Awaited<ReturnType<typeof signed>>) => {
      const o = await send(tp.base, signedSpec(s, `clock-${++n}`));
      return o.kind === 'response' ? [o.status, o.reason ?? 'allow'] : [0, o.code];
    };
    try {
      const a = await signed(world); // iat NOW, exp NOW + 300
      expect(await go(a)).toEqual([200, 'allow']);
      expect(await go(a)).toEqual([401, 'jti_replay']);

      // Forward past exp + skew: A is expired; a passport issued at the new time is allowed (its
      // consume is what lets a memory store sweep the entries it thinks are expired).
      now = FORWARD;
      expect(await go(a)).toEqual([401, 'passport_expired']);
      expect(await go(await signed(world))).toEqual([401, 'passport_expired']);
      const b = await signed(world, { claims: { iat: FORWARD } });
      expect(await go(b)).toEqual([200, 'allow']);
      expect(await go(b)).toEqual([401, 'jti_replay']);

      // Back before iat - skew: A is not yet valid.
      now = BACK;
      expect(await go(a)).toEqual([401, 'passport_not_yet_valid']);
      expect(await go(await signed(world))).toEqual([401, 'passport_not_yet_valid']);

      // Home again: A is valid by its times, but its jti was consumed: still a replay.
      now = NOW;
      expect(await go(a)).toEqual([401, 'jti_replay']);
      const c = await signed(world);
      expect(await go(c)).toEqual([200, 'allow']);
      expect(await go(c)).toEqual([401, 'jti_replay']);

      // Exactly the three first uses reached the upstream.
      expect(
        upstream.requests.filter((r) => String(r.headers['x-request-id']).startsWith('clock-')),
      ).toHaveLength(3);
      expect(tp.audit.events).toHaveLength(n);
    } finally {
      await tp.adapter.close();
    }
  });

  it('control: with no allow while the clock is forward, the jti is refused once it is back', async () => {
    let now = NOW;
    const tp = await startAdapterWithClock(world, () => now, { upstream: upstream.url });
    const status = async (s: Awaited<ReturnType<typeof signed>>, id: string) => {
      const o = await send(tp.base, signedSpec(s, id));
      return o.kind === 'response' ? [o.status, o.reason ?? 'allow'] : [0, o.code];
    };
    try {
      const a = await signed(world);
      expect(await status(a, 'control-1')).toEqual([200, 'allow']);
      now = FORWARD;
      expect(await status(a, 'control-2')).toEqual([401, 'passport_expired']);
      now = BACK;
      expect(await status(a, 'control-3')).toEqual([401, 'passport_not_yet_valid']);
      now = NOW;
      expect(await status(a, 'control-4')).toEqual([401, 'jti_replay']);
    } finally {
      await tp.adapter.close();
    }
  });

  it('a jti consumed before a restart made while the clock was forward is still refused once it is back', async () => {
    const files = writeWorld(world);
    let now = NOW;
    const first = await startAdapterWithClock(world, () => now, { upstream: upstream.url }, files);
    const a = await signed(world);
    try {
      const o = await send(first.base, signedSpec(a, 'restart-1'));
      expect(o.kind === 'response' && o.status).toBe(200);
    } finally {
      await first.adapter.close();
    }
    // The adapter restarts while the clock is forward (the journal is loaded and compacted at FORWARD).
    now = FORWARD;
    const second = await startAdapterWithClock(world, () => now, { upstream: upstream.url }, files);
    try {
      const b = await signed(world, { claims: { iat: FORWARD } });
      const ob = await send(second.base, signedSpec(b, 'restart-2'));
      expect(ob.kind === 'response' && ob.status).toBe(200);
      now = NOW;
      const replay = await send(second.base, signedSpec(a, 'restart-3'));
      expect(replay.kind === 'response' && [replay.status, replay.reason]).toEqual([401, 'jti_replay']);
    } finally {
      await second.adapter.close();
    }
  });
});
