import { beforeAll, describe, expect, it } from 'vitest';
import { decodePassportUnverified } from '../../pkg/authcore/index.js';
import {
  Broker,
  issuancePolicySchema,
  spiffeWorkloadIdentity,
  type BrokerIpcRequest,
  type IdentitySource,
  type IssuancePolicy,
} from '../../pkg/broker/index.js';
import { contextAllowed, findGrant } from '../../pkg/broker/issuance-policy.js';
import { sha256HexSync } from '../../pkg/internal/sha256.js';
import { BROKER_ISSUER, NOW, TRUST_DOMAIN, createWorld, type World } from '../helpers/fixture.js';

/*
 * `ctx` is the workload's own claim: the broker copies it into the passport. A grant's `ctx`
 * restriction is what makes it a boundary against the workload (which values a subject may ask for).
 */

const WORKER = 'spiffe://example.local/ns/orders/sa/worker';
const ROBOT = 'spiffe://example.local/ns/orders/sa/robot';

let world: World;
beforeAll(async () => {
  world = await createWorld();
});

function identity(subject: string): IdentitySource {
  return {
    keyBinding: 'attested_workload',
    kind: 'test',
    current: () => spiffeWorkloadIdentity(subject, TRUST_DOMAIN, NOW + 3600),
  };
}

function broker(subject: string, issuance: IssuancePolicy): Broker {
  return new Broker({
    issuer: BROKER_ISSUER,
    issuerKey: world.broker,
    issuerKid: 'broker-1',
    identity: identity(subject),
    material: () => ({ trust: world.trust, policy: world.policy }),
    issuance,
    clock: () => NOW,
  });
}

function refund(values: Record<string, string>): BrokerIpcRequest {
  const nonce = `nonce-${crypto.randomUUID()}`;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-trustplane-nonce': nonce };
  const allow = Object.keys(headers).sort();
  return {
    request_id: crypto.randomUUID(),
    protocol: 'local-json-ipc',
    operation: 'issue_request_bound_passport',
    http: {
      method: 'POST',
      scheme: 'https',
      authority: 'orders.example',
      path: '/v1/orders/o-7/refund',
      content_encoding: 'identity',
      query: {
        raw: '',
        normalization: 'rfc3986-sort-keys-values',
        normalized: '',
        sha256: sha256HexSync(''),
      },
      headers: {
        allow_list: allow,
        selected: allow.map((n) => ({ name: n, value_sha256: sha256HexSync(headers[n]!) })),
      },
      audience: 'orders-api',
      route_id: 'orders.refund',
      body_sha256: sha256HexSync('{}'),
      nonce,
    },
    key_binding: {
      intent: 'route_policy_minimum',
      requested_key_binding: 'attested_workload',
      acceptable_key_bindings: ['attested_workload'],
      allow_software_fallback: false,
    },
    ctx: {
      selected_fields: Object.keys(values) as NonNullable<BrokerIpcRequest['ctx']>['selected_fields'],
      values,
    },
  };
}

// The route's own context_policy (fixture): purpose must be "refund", max_txn_value <= 500.00.
// The grants below narrow what each subject may claim within that.
const issuance = issuancePolicySchema.parse({
  version: 'trustplane-broker-issuance-v1',
  grants: [
    {
      subject_exact: WORKER,
      audiences: ['orders-api'],
      routes: ['orders.refund'],
      ctx: { purpose: ['refund'], max_txn_value: '100.00' },
    },
    { subject_exact: ROBOT, audiences: ['*'], routes: ['*'] },
  ],
});

describe('issuance grants restrict the ctx a subject may ask for', () => {
  it('mints when the ctx is within the grant, and copies it into the passport', async () => {
    const response = await broker(WORKER, issuance).issue(
      refund({ purpose: 'refund', max_txn_value: '99.99' }),
    );
    expect(response).toMatchObject({ accepted: true });
    if (!response.accepted) return;
    expect(decodePassportUnverified(response.artifacts.passport.value).payload.ctx).toEqual({
      purpose: 'refund',
      max_txn_value: '99.99',
    });
  });

  it.each([
    ['just above the grant', { purpose: 'refund', max_txn_value: '100.01' }],
    [
      'at the route limit (the route policy alone would allow it)',
      { purpose: 'refund', max_txn_value: '500.00' },
    ],
  ])('refuses %s with issuance_policy_denied', async (_label, values) => {
    const response = await broker(WORKER, issuance).issue(refund(values));
    expect(response).toMatchObject({
      accepted: false,
      reason_code: 'issuance_policy_denied',
      error: { code: 'issuance_policy_denied', retryable: false },
    });
  });

  it('a grant without ctx leaves ctx to the route policy (the workload claims it)', async () => {
    const response = await broker(ROBOT, issuance).issue(
      refund({ purpose: 'refund', max_txn_value: '499.00' }),
    );
    expect(response).toMatchObject({ accepted: true });
  });

  it('contextAllowed and findGrant: listed fields must be present with an allowed value', () => {
    expect(contextAllowed(undefined, undefined)).toBe(true);
    expect(contextAllowed({ tool_name: ['a', 'b'] }, { tool_name: 'b' })).toBe(true);
    expect(contextAllowed({ tool_name: ['a', 'b'] }, { tool_name: 'c' })).toBe(false);
    // A listed field must be present: absence is not "any value", nor "no limit".
    expect(contextAllowed({ tool_name: ['a'] }, undefined)).toBe(false);
    expect(contextAllowed({ purpose: ['refund'] }, { max_txn_value: '1' })).toBe(false);
    expect(contextAllowed({ max_txn_value: '100' }, { purpose: 'refund' })).toBe(false);
    expect(contextAllowed({ max_txn_value: '5' }, { max_txn_value: '5.000' })).toBe(true);
    expect(contextAllowed({ max_txn_value: '5' }, { max_txn_value: 'five' })).toBe(false);
    // Another grant of the same subject may cover a ctx the first one does not.
    const two = issuancePolicySchema.parse({
      version: 'trustplane-broker-issuance-v1',
      grants: [
        { subject_exact: WORKER, audiences: ['*'], routes: ['*'], ctx: { purpose: ['refund'] } },
        {
          subject_exact: WORKER,
          audiences: ['*'],
          routes: ['*'],
          ctx: { purpose: ['audit'] },
          max_ttl_seconds: 30,
        },
      ],
    });
    expect(findGrant(two, WORKER, 'orders-api', 'orders.refund', { purpose: 'audit' })?.max_ttl_seconds).toBe(
      30,
    );
    expect(findGrant(two, WORKER, 'orders-api', 'orders.refund', { purpose: 'other' })).toBeUndefined();
    expect(findGrant(two, WORKER, 'orders-api', 'orders.refund')).toBeUndefined();
  });

  it('the schema refuses unknown ctx fields and malformed amounts', () => {
    const grant = (ctx: unknown) =>
      issuancePolicySchema.safeParse({
        version: 'trustplane-broker-issuance-v1',
        grants: [{ subject_exact: WORKER, audiences: ['*'], routes: ['*'], ctx }],
      }).success;
    expect(grant({ purpose: ['refund'], max_txn_value: '12.50' })).toBe(true);
    expect(grant({ sku: ['x'] })).toBe(false);
    expect(grant({ purpose: [] })).toBe(false);
    expect(grant({ max_txn_value: '-1' })).toBe(false);
    expect(grant({ max_txn_value: '1e3' })).toBe(false);
  });
});
