import { describe, expect, it } from 'vitest';
import {
  checkFreshness,
  DEFAULT_BOUNDED_MAX_STALENESS_SECONDS,
  REALTIME_MAX_STALENESS_SECONDS,
  type PolicyBundle,
  type PolicyRoute,
} from '../../pkg/bundle/index.js';
import { NOW, route, sampleBundle } from './fixtures.js';

const policy = (overrides: Partial<PolicyBundle> = {}) => ({ document: sampleBundle(overrides) });
const r = (extra: Partial<PolicyRoute> = {}) => route('x', 'GET', '/x', extra);
const stale = { reason: 'stale_bundle_fail_closed', name: 'TrustplaneError', status: 403 };

describe('checkFreshness', () => {
  it('has the documented constants', () => {
    expect(DEFAULT_BOUNDED_MAX_STALENESS_SECONDS).toBe(300);
    expect(REALTIME_MAX_STALENESS_SECONDS).toBe(30);
  });

  describe('bounded (the default class)', () => {
    it('defaults to 300 s', () => {
      expect(checkFreshness(policy(), r(), NOW + 300)).toEqual({
        freshnessClass: 'bounded',
        ageSeconds: 300,
        maxAgeSeconds: 300,
      });
      expect(() => checkFreshness(policy(), r(), NOW + 301)).toThrow(expect.objectContaining(stale));
    });
    it('uses the bundle default max staleness', () => {
      const p = policy({ default_max_staleness_seconds: 60 });
      expect(checkFreshness(p, r(), NOW + 60).maxAgeSeconds).toBe(60);
      expect(() => checkFreshness(p, r(), NOW + 61)).toThrow(expect.objectContaining(stale));
    });
    it('the route max staleness wins over the bundle default', () => {
      const p = policy({ default_max_staleness_seconds: 60 });
      expect(checkFreshness(p, r({ max_staleness_seconds: 900 }), NOW + 900).maxAgeSeconds).toBe(900);
      expect(() => checkFreshness(p, r({ max_staleness_seconds: 900 }), NOW + 901)).toThrow(
        expect.objectContaining(stale),
      );
    });
    it('the bundle default class applies when the route names none', () => {
      const p = policy({ default_freshness_class: 'offline-ok' });
      expect(checkFreshness(p, r(), NOW + 10 ** 8).freshnessClass).toBe('offline-ok');
      expect(() => checkFreshness(p, r({ freshness_class: 'bounded' }), NOW + 301)).toThrow(
        expect.objectContaining(stale),
      );
    });
    it('an unknown age (no issued_at) fails closed', () => {
      const doc = sampleBundle();
      delete doc.issued_at;
      expect(() => checkFreshness({ document: doc }, r(), NOW)).toThrow(expect.objectContaining(stale));
    });
  });

  describe('realtime', () => {
    const rt = (max?: number) =>
      r({ freshness_class: 'realtime', ...(max !== undefined ? { max_staleness_seconds: max } : {}) });
    it('allows 30 s by default', () => {
      expect(checkFreshness(policy(), rt(), NOW + 30)).toEqual({
        freshnessClass: 'realtime',
        ageSeconds: 30,
        maxAgeSeconds: 30,
      });
      expect(() => checkFreshness(policy(), rt(), NOW + 31)).toThrow(expect.objectContaining(stale));
    });
    it('a route may ask for less, never more', () => {
      expect(checkFreshness(policy(), rt(10), NOW + 10).maxAgeSeconds).toBe(10);
      expect(() => checkFreshness(policy(), rt(10), NOW + 11)).toThrow(expect.objectContaining(stale));
      expect(checkFreshness(policy(), rt(3600), NOW + 30).maxAgeSeconds).toBe(30);
      expect(() => checkFreshness(policy(), rt(3600), NOW + 31)).toThrow(expect.objectContaining(stale));
    });
    it('ignores the bundle default max staleness', () => {
      const p = policy({ default_max_staleness_seconds: 3600 });
      expect(() => checkFreshness(p, rt(), NOW + 31)).toThrow(expect.objectContaining(stale));
    });
    it('an unknown age fails closed', () => {
      const doc = sampleBundle();
      delete doc.issued_at;
      expect(() => checkFreshness({ document: doc }, rt(), NOW)).toThrow(expect.objectContaining(stale));
    });
  });

  describe('offline-ok', () => {
    const off = r({ freshness_class: 'offline-ok' });
    it('has no age limit, even without issued_at', () => {
      expect(checkFreshness(policy(), off, NOW + 10 ** 9)).toEqual({
        freshnessClass: 'offline-ok',
        ageSeconds: 10 ** 9,
        maxAgeSeconds: undefined,
      });
      const doc = sampleBundle();
      delete doc.issued_at;
      expect(checkFreshness({ document: doc }, off, NOW).ageSeconds).toBeUndefined();
    });
  });

  describe('expires_at applies to every class', () => {
    for (const freshness_class of ['offline-ok', 'bounded', 'realtime'] as const) {
      it(freshness_class, () => {
        const p = policy({ expires_at: NOW + 20 });
        expect(checkFreshness(p, r({ freshness_class }), NOW + 19).freshnessClass).toBe(freshness_class);
        expect(() => checkFreshness(p, r({ freshness_class }), NOW + 20)).toThrow(
          expect.objectContaining(stale),
        );
      });
    }
  });

  it('an issued_at beyond the skew tolerance in the future fails closed', () => {
    expect(checkFreshness(policy(), r(), NOW - 30).ageSeconds).toBe(-30);
    expect(() => checkFreshness(policy(), r(), NOW - 31)).toThrow(expect.objectContaining(stale));
  });

  it('carries non-secret details for the audit log', () => {
    try {
      checkFreshness(policy(), r(), NOW + 301);
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({
        details: { freshness_class: 'bounded', age_seconds: 301, max_age_seconds: 300 },
      });
    }
  });

  it('rejects a non-finite clock', () => {
    expect(() => checkFreshness(policy(), r(), Number.NaN)).toThrow(TypeError);
  });
});
