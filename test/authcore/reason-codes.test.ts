import { describe, expect, it } from 'vitest';
import {
  REASON_CODES,
  REASON_CODE_LIST,
  TrustplaneError,
  isReasonCode,
  isRetryableReason,
  statusForReason,
} from '../../pkg/authcore/index.js';
// Not re-exported from trustplane/authcore (yet): imported from the registry module itself.
import { COMPONENT_REASON_LAYERS, isComponentReason } from '../../pkg/authcore/reason-codes.js';

// ARCHITECTURE.md: 502/504 for upstream failures after an allow.
const STATUSES = new Set([400, 401, 403, 413, 429, 431, 500, 502, 503, 504]);

describe('reason codes', () => {
  it('the list is non-empty, unique, snake_case and frozen', () => {
    expect(REASON_CODE_LIST.length).toBeGreaterThan(20);
    expect(new Set(REASON_CODE_LIST).size).toBe(REASON_CODE_LIST.length);
    for (const code of REASON_CODE_LIST) expect(code).toMatch(/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
    expect(Object.isFrozen(REASON_CODE_LIST)).toBe(true);
  });

  it.each(REASON_CODE_LIST.map((c) => [c]))(
    '%s has a status among 400/401/403/413/429/431/500/502/503/504',
    (code) => {
      const info = REASON_CODES[code];
      expect(STATUSES.has(info.status)).toBe(true);
      expect(statusForReason(code)).toBe(info.status);
      expect(info.summary.length).toBeGreaterThan(0);
      expect(isReasonCode(code)).toBe(true);
    },
  );

  it('the registry and the list hold the same codes', () => {
    expect(Object.keys(REASON_CODES)).toEqual([...REASON_CODE_LIST]);
  });

  it('the registry has a null prototype and is frozen', () => {
    expect(Object.getPrototypeOf(REASON_CODES)).toBeNull();
    expect('toString' in REASON_CODES).toBe(false);
    expect('constructor' in REASON_CODES).toBe(false);
    expect(Object.isFrozen(REASON_CODES)).toBe(true);
  });

  it.each([
    'constructor',
    'toString',
    '__proto__',
    'hasOwnProperty',
    'valueOf',
    '',
    'JTI_REPLAY',
    'jti_replay ',
  ])('isReasonCode(%j) is false', (value) => {
    expect(isReasonCode(value)).toBe(false);
  });

  it.each([[undefined], [null], [42], [{}], [['jti_replay']]])('isReasonCode(%j) is false', (value) => {
    expect(isReasonCode(value)).toBe(false);
  });

  it('the statuses the architecture fixes', () => {
    expect(statusForReason('malformed_passport')).toBe(401);
    expect(statusForReason('invalid_request_proof')).toBe(401);
    expect(statusForReason('jti_replay')).toBe(401);
    expect(statusForReason('audience_mismatch')).toBe(403);
    expect(statusForReason('insufficient_key_binding')).toBe(403);
    expect(statusForReason('stale_bundle_fail_closed')).toBe(403);
    expect(statusForReason('body_too_large')).toBe(413);
    expect(statusForReason('replay_store_unavailable')).toBe(503);
    expect(statusForReason('audit_unavailable')).toBe(503);
    expect(statusForReason('upstream_unavailable')).toBe(502);
    expect(statusForReason('upstream_timeout')).toBe(504);
  });
});

describe('errors', () => {
  it.each([
    'malformed_passport',
    'invalid_request_proof',
    'audience_mismatch',
    'body_too_large',
    'invalid_bundle',
    'replay_store_unavailable',
    'invalid_key',
  ] as const)('TrustplaneError(%s) carries reason, status, name and details', (reason) => {
    const err = new TrustplaneError(reason, 'fixed message', { field: 'x' });
    expect(err).toBeInstanceOf(Error);
    expect(err.reason).toBe(reason);
    expect(err.status).toBe(statusForReason(reason));
    expect(err.name).toBe('TrustplaneError');
    expect(err.message).toBe('fixed message');
    expect(err.details).toEqual({ field: 'x' });
  });

  it('retryable is true exactly for dependency failures a later retry may clear', () => {
    const retryable = REASON_CODE_LIST.filter((code) => isRetryableReason(code));
    expect(retryable.sort()).toEqual(
      [
        'audit_unavailable',
        'internal_error',
        'policy_unavailable',
        'replay_store_unavailable',
        // A new passport succeeds once the fail-closed window after a replay-store loss has passed.
        'replay_store_amnesia',
        'upstream_timeout',
        'upstream_unavailable',
        'workload_identity_unavailable',
        // A verifier starts once its bundle URL answers again.
        'bundle_source_unavailable',
        // Capacity: the same request succeeds once load (or the caller's share) drops.
        'overloaded',
        'replay_quota_exceeded',
        // Component layers: unreachable, timed out, not answering yet.
        'svid_source_unreadable',
        'workload_api_unavailable',
        'workload_api_no_identity',
        'workload_api_bad_response',
        'ledger_unavailable',
        'broker_unreachable',
        'broker_timeout',
        // Setup: the port is free again once the other process stops.
        'address_in_use',
      ].sort(),
    );
    expect(isRetryableReason('jti_replay')).toBe(false);
    expect(isRetryableReason('invalid_request_proof')).toBe(false);
  });
});

describe('component layers', () => {
  const component = REASON_CODE_LIST.filter((code) => isComponentReason(code));

  it('are the seven component layers, in one block at the end of the registry', () => {
    expect([...COMPONENT_REASON_LAYERS]).toEqual([
      'svid',
      'spiffe_id',
      'workload_api',
      'receipt',
      'ledger',
      'broker_ipc',
      'setup',
    ]);
    expect(Object.isFrozen(COMPONENT_REASON_LAYERS)).toBe(true);
    expect(component.length).toBeGreaterThan(40);
    // Every HTTP-facing code comes first: the component block was appended, nothing reordered.
    expect(REASON_CODE_LIST.slice(-component.length)).toEqual(component);
    // Layers appear in blocks, in COMPONENT_REASON_LAYERS order.
    const order = component.map((code) => COMPONENT_REASON_LAYERS.indexOf(REASON_CODES[code].layer as never));
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('each code starts with its layer name (audit_chain_broken, the CLI name, and the setup words the CLI prints, aside)', () => {
    const prefixed = component.filter(
      (code) =>
        code !== 'audit_chain_broken' &&
        REASON_CODES[code].layer !== 'setup' &&
        !code.startsWith(`${REASON_CODES[code].layer.replace('broker_ipc', 'broker')}_`),
    );
    expect(prefixed).toEqual([]);
    expect(REASON_CODES.audit_chain_broken.layer).toBe('ledger');
  });

  it('the HTTP-facing layers hold no component code', () => {
    const http = REASON_CODE_LIST.filter((code) => !isComponentReason(code));
    expect(http).toContain('workload_attestation_failed');
    expect(
      http.filter((code) =>
        (COMPONENT_REASON_LAYERS as readonly string[]).includes(REASON_CODES[code].layer),
      ),
    ).toEqual([]);
  });

  it.each([
    ['svid_untrusted_chain', 403, false],
    ['svid_source_unreadable', 503, true],
    ['spiffe_id_dot_segment', 400, false],
    ['workload_api_unavailable', 503, true],
    ['workload_api_bad_endpoint', 500, false],
    ['receipt_malformed', 400, false],
    ['receipt_signature_invalid', 403, false],
    ['ledger_unavailable', 503, true],
    ['ledger_error', 500, false],
    ['audit_chain_broken', 500, false],
    ['broker_unreachable', 503, true],
    ['broker_timeout', 504, true],
    ['broker_request_too_large', 413, false],
  ] as const)('%s: status %i, retryable %s', (code, status, retryable) => {
    expect(statusForReason(code)).toBe(status);
    expect(isRetryableReason(code)).toBe(retryable);
    expect(isComponentReason(code)).toBe(true);
  });
});
