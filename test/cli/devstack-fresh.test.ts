import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePrivateKey } from '../../pkg/authcore/index.js';
import { BrokerIpcClient } from '../../pkg/broker/index.js';
import { ProtectedClient, brokerPassports, selfIssuedPassports } from '../../pkg/client/index.js';
import { DEV, startDevStack } from '../../cmd/trustplane/devstack/stack.js';

// Issue 15: a `trustplane up` stack runs its own bundle server, so it never goes stale. With a
// 6 s freshness limit, left running 15 s (past two limits), it still allows the demo request.

describe('trustplane up: the bundle server keeps the stack fresh', () => {
  it('a 6 s limit, running 15 s: every demo request allowed, the adapter ready throughout, the broker still mints', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-up-fresh-'));
    const stack = await startDevStack({ dir, maxStalenessSeconds: 6, logLevel: 'warn' });
    try {
      const signingKey = await parsePrivateKey(readFileSync(stack.info.callerKeyFile, 'utf8').trim());
      const client = new ProtectedClient({
        baseUrl: stack.info.adapter,
        audience: DEV.audience,
        passports: selfIssuedPassports({
          issuer: DEV.softwareIssuer,
          subject: DEV.softwareSubject,
          trustDomain: DEV.trustDomain,
          signingKey,
          kid: DEV.softwareKid,
        }),
      });
      const statuses: number[] = [];
      const ready: number[] = [];
      const started = Date.now();
      while (Date.now() - started < 15_000) {
        const res = await client.request({ method: 'GET', path: '/v1/orders', routeId: 'orders.list' });
        statuses.push(res.status);
        await res.text();
        ready.push((await fetch(`${stack.info.admin}/readyz`)).status);
        await new Promise((r) => setTimeout(r, 1_000));
      }
      // The broker pulls from the same server: past two limits it still mints (its route-policy
      // check includes the bundle's freshness).
      const attested = new ProtectedClient({
        baseUrl: stack.info.adapter,
        audience: DEV.audience,
        passports: brokerPassports({
          broker: new BrokerIpcClient({ socketPath: stack.info.brokerSocket }),
          keyBinding: { requested: 'attested_workload', acceptable: ['attested_workload'] },
          ctx: { purpose: 'demo' },
        }),
      });
      const payment = await attested.request({
        method: 'POST',
        path: '/v1/payments',
        routeId: 'payments.create',
        headers: { 'content-type': 'application/json' },
        body: '{"amount":"10.00"}',
      });
      expect(payment.status).toBe(200);
      await payment.text();
      const readyz = (await (await fetch(`${stack.info.admin}/readyz`)).json()) as {
        bundles: { policy: { limit_seconds: number; age_seconds: number } };
      };
      expect(statuses.length).toBeGreaterThanOrEqual(10);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(ready.filter((s) => s !== 200)).toEqual([]);
      expect(readyz.bundles.policy.limit_seconds).toBe(6);
      expect(readyz.bundles.policy.age_seconds).toBeLessThanOrEqual(3);
      expect(stack.info.bundleServer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await stack.close();
    }
  }, 60_000);
});
