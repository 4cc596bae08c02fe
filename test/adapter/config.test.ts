import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../pkg/adapter/config-error.js';
import { resolveAdapterConfig } from '../../pkg/adapter/resolve-adapter-config.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { createWorld, signed } from '../helpers/fixture.js';
import { sendSigned, startTestAdapter, startUpstream, writeWorld } from '../helpers/adapter.js';

const base = {
  trustMaterial: 't.json',
  policyBundle: 'p.json',
  devAllowUnsigned: true,
  upstream: 'http://127.0.0.1:1',
};

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('adapter config', () => {
  it('defaults', () => {
    const c = resolveAdapterConfig({ flags: base });
    expect(c).toMatchObject({
      mode: 'proxy',
      listen: '127.0.0.1:8080',
      adminListen: '127.0.0.1:9090',
      maxBodyBytes: 1_048_576,
      replayStore: 'memory',
      workers: 1,
      skewSeconds: 30,
      maxLifetimeSeconds: 600,
      audit: 'stdout',
      logLevel: 'info',
      preserveHost: true,
      forwardAuthorization: false,
    });
  });

  it('precedence: flags over environment over config file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-config-'));
    const file = path.join(dir, 'adapter.json');
    writeFileSync(
      file,
      JSON.stringify({ ...base, listen: '127.0.0.1:1001', maxBodyBytes: 10, logLevel: 'debug' }),
    );
    const c = resolveAdapterConfig({
      configFile: file,
      env: {
        TRUSTPLANE_LISTEN: '127.0.0.1:1002',
        TRUSTPLANE_MAX_BODY_BYTES: '20',
        TRUSTPLANE_PRESERVE_HOST: 'false',
      },
      flags: { listen: '127.0.0.1:1003' },
    });
    expect([c.listen, c.maxBodyBytes, c.logLevel, c.preserveHost]).toEqual([
      '127.0.0.1:1003',
      20,
      'debug',
      false,
    ]);
  });

  it('environment lists are comma separated; @file key values are read', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-config-'));
    writeFileSync(path.join(dir, 'k.pub'), 'KEYFROMFILE');
    const c = resolveAdapterConfig({
      flags: { trustMaterial: 't', policyBundle: 'p', upstream: 'http://127.0.0.1:1' },
      env: {
        TRUSTPLANE_TRUST_MATERIAL_PUBLIC_KEY: 'a,b',
        TRUSTPLANE_POLICY_BUNDLE_PUBLIC_KEY: `@${path.join(dir, 'k.pub')}`,
      },
    });
    expect(c.trustMaterialPublicKeys).toEqual(['a', 'b']);
    expect(c.policyBundlePublicKeys).toEqual(['KEYFROMFILE']);
  });

  it('one line per bad value, naming the key, never the value', () => {
    const lines = problems(() =>
      resolveAdapterConfig({
        flags: { upstream: 'http://user:s3cret@host', listen: 'x', workers: '0', logLevel: 'loud' },
        env: { TRUSTPLANE_DEV_ALLOW_UNSIGNED: 'yes', TRUSTPLANE_REDIS_URL: 'http://:s3cret@redis' },
      }),
    );
    expect(lines).toEqual(['TRUSTPLANE_DEV_ALLOW_UNSIGNED: must be true or false']);
    const more = problems(() =>
      resolveAdapterConfig({
        flags: {
          upstream: 'http://user:s3cret@host',
          listen: 'x',
          workers: '0',
          logLevel: 'loud',
          redisUrl: 'http://:s3cret@redis',
        },
      }),
    );
    for (const key of [
      'upstream',
      'listen',
      'workers',
      'logLevel',
      'redisUrl',
      'trustMaterial',
      'policyBundle',
    ]) {
      expect(more.filter((l) => l.startsWith(`${key}: `))).toHaveLength(1);
    }
    expect(more.join('\n')).not.toContain('s3cret');
  });

  it('unknown keys in the config file are errors', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-config-'));
    const file = path.join(dir, 'adapter.json');
    writeFileSync(file, JSON.stringify({ ...base, upstreem: 'http://x' }));
    expect(problems(() => resolveAdapterConfig({ configFile: file }))).toEqual([
      '(config): unknown key(s) upstreem',
    ]);
    writeFileSync(file, '{not json');
    expect(problems(() => resolveAdapterConfig({ configFile: file }))).toEqual([
      `config file ${file}: invalid JSON at line 1, column 2`,
    ]);
  });

  it('cross-field rules: upstream in proxy mode, redisUrl with redis, workers need redis, signer keys', () => {
    const { upstream: _u, devAllowUnsigned: _d, ...rest } = base;
    const lines = problems(() =>
      resolveAdapterConfig({ flags: { ...rest, replayStore: 'redis', workers: 4 } }),
    );
    expect(lines.map((l) => l.split(':')[0])).toEqual(
      expect.arrayContaining(['upstream', 'redisUrl', 'trustMaterialPublicKeys', 'policyBundlePublicKeys']),
    );
    expect(problems(() => resolveAdapterConfig({ flags: { ...base, workers: 2 } }))[0]).toMatch(
      /^workers: more than one worker needs a shared replay store/,
    );
    expect(
      resolveAdapterConfig({
        flags: { ...rest, devAllowUnsigned: true, mode: 'forward-auth', forwardAuthGateway: 'nginx' },
      }).mode,
    ).toBe('forward-auth');
    expect(
      problems(() =>
        resolveAdapterConfig({ flags: { ...rest, devAllowUnsigned: true, mode: 'forward-auth' } }),
      ),
    ).toEqual(['forwardAuthGateway: is required in forward-auth mode: nginx, traefik, caddy or envoy']);
  });

  it('receipt key and kid go together; an unreadable key file is named, the key never echoed', () => {
    const secret = 'c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LW11c3Qtbm90LWxlYWs';
    const lone = problems(() => resolveAdapterConfig({ flags: { ...base, receiptPrivateKey: secret } }));
    expect(lone).toEqual(['receiptKid: receiptPrivateKey and receiptKid go together']);
    expect(problems(() => resolveAdapterConfig({ flags: { ...base, receiptKid: 'r-1' } }))).toEqual([
      'receiptKid: receiptPrivateKey and receiptKid go together',
    ]);
    const unreadable = problems(() =>
      resolveAdapterConfig({
        flags: { ...base, receiptPrivateKey: '@/nonexistent/receipt.key', receiptKid: 'r-1' },
      }),
    );
    expect(unreadable).toEqual(['receiptPrivateKey: cannot read /nonexistent/receipt.key']);
    expect(problems(() => resolveAdapterConfig({ flags: { ...base, auditDurableTimeoutMs: 0 } }))[0]).toMatch(
      /^auditDurableTimeoutMs: /,
    );
    expect(JSON.stringify([lone, unreadable])).not.toContain(secret);
  });
});

describe('adapter logs', () => {
  it('one JSON decision line per request at info, without passport, proof or query', async () => {
    const world = await createWorld();
    const upstream = await startUpstream();
    const lines: string[] = [];
    const log = createLogger('info', { write: (l: string) => lines.push(l) });
    const tp = await startTestAdapter(world, { upstream: upstream.url }, writeWorld(world), log);
    try {
      const s = await signed(world, { target: '/v1/orders/search?secret_query=1' });
      expect((await sendSigned(tp.base, s)).status).toBe(200);
      expect((await sendSigned(tp.base, s)).status).toBe(401);
      const decisions = lines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.msg === 'decision');
      expect(decisions).toHaveLength(2);
      expect(decisions[0]).toMatchObject({
        level: 'info',
        decision: 'allow',
        status: 200,
        route_id: 'orders.search',
      });
      expect(decisions[1]).toMatchObject({ decision: 'deny', reason: 'jti_replay', stage: 'replay' });
      const text = lines.join('');
      expect(text).not.toContain(s.passport);
      expect(text).not.toContain(s.headers['x-trustplane-proof']!);
      expect(text).not.toContain('secret_query');
      expect(
        lines.some((l) => l.includes('"msg":"adapter listening"') && l.includes('"ed25519":"sodium-native"')),
      ).toBe(true);
    } finally {
      await tp.adapter.close();
      await upstream.close();
    }
  });
});
