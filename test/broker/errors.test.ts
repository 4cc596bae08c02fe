import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectComponentError } from '../helpers/errors.js';
import {
  REASON_CODES,
  REASON_CODE_LIST,
  isRetryableReason,
  type ReasonCode,
  type ReasonCodeInfo,
} from '../../pkg/authcore/reason-codes.js';
import { BrokerIpcClient, BrokerIpcError, type BrokerIpcErrorCode } from '../../pkg/broker/ipc-client.js';
import {
  SpiffeIdError,
  SvidError,
  parseSpiffeId,
  verifyX509Svid,
  type SpiffeIdErrorCode,
  type SvidErrorCode,
} from '../../pkg/broker/spiffe/index.js';
import { parseWorkloadEndpoint } from '../../pkg/broker/spiffe/workload-api-endpoint.js';
import { WorkloadApiError, type WorkloadApiErrorCode } from '../../pkg/broker/spiffe/workload-api-error.js';
import { WorkloadApiX509Source } from '../../pkg/broker/spiffe/workload-api-source.js';
import type { BrokerIpcRequest } from '../../pkg/proof/broker-ipc-v1.js';

// Each component error class carries a registry code of its own layer: one vocabulary, one status
// table. These lists are checked against the registry below, and against the class's code type at
// compile time (a code added to one but not the other fails `tsc`).

const SVID_CODES = [
  'svid_malformed',
  'svid_bundle_malformed',
  'svid_no_uri_san',
  'svid_multiple_uri_sans',
  'svid_invalid_spiffe_id',
  'svid_leaf_is_ca',
  'svid_bad_key_usage',
  'svid_intermediate_not_ca',
  'svid_unsupported_extension',
  'svid_expired',
  'svid_not_yet_valid',
  'svid_unknown_trust_domain',
  'svid_untrusted_chain',
  'svid_key_mismatch',
  'svid_source_unreadable',
] as const satisfies readonly SvidErrorCode[];

const SPIFFE_ID_CODES = [
  'spiffe_id_empty',
  'spiffe_id_bad_scheme',
  'spiffe_id_missing_trust_domain',
  'spiffe_id_bad_trust_domain_char',
  'spiffe_id_bad_path_segment_char',
  'spiffe_id_dot_segment',
  'spiffe_id_empty_segment',
  'spiffe_id_trailing_slash',
  'spiffe_id_missing_leading_slash',
  'spiffe_id_too_long',
  'spiffe_id_trust_domain_too_long',
] as const satisfies readonly SpiffeIdErrorCode[];

const WORKLOAD_API_CODES = [
  'workload_api_no_endpoint',
  'workload_api_bad_endpoint',
  'workload_api_unavailable',
  'workload_api_no_identity',
  'workload_api_rejected',
  'workload_api_bad_response',
  'workload_api_closed',
] as const satisfies readonly WorkloadApiErrorCode[];

const BROKER_IPC_CODES = [
  'broker_unreachable',
  'broker_timeout',
  'broker_protocol_error',
  'broker_request_too_large',
] as const satisfies readonly BrokerIpcErrorCode[];

/** `true` only when the list names every member of the union. */
type Covers<Union, List extends readonly unknown[]> = [Exclude<Union, List[number]>] extends [never]
  ? true
  : false;
const covered: [
  Covers<SvidErrorCode, typeof SVID_CODES>,
  Covers<SpiffeIdErrorCode, typeof SPIFFE_ID_CODES>,
  Covers<WorkloadApiErrorCode, typeof WORKLOAD_API_CODES>,
  Covers<BrokerIpcErrorCode, typeof BROKER_IPC_CODES>,
] = [true, true, true, true];

function layerCodes(layer: ReasonCodeInfo['layer']): ReasonCode[] {
  return REASON_CODE_LIST.filter((code) => REASON_CODES[code].layer === layer);
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

const dir = mkdtempSync(path.join(tmpdir(), 'tp-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the code lists are the registry layers', () => {
  it.each([
    ['svid', SVID_CODES],
    ['spiffe_id', SPIFFE_ID_CODES],
    ['workload_api', WORKLOAD_API_CODES],
    ['broker_ipc', BROKER_IPC_CODES],
  ] as const)('%s', (layer, codes) => {
    expect(covered).toEqual([true, true, true, true]);
    expect(layerCodes(layer)).toEqual([...codes]);
  });
});

describe('SvidError', () => {
  it('verifyX509Svid throws a TrustplaneError with a registered svid reason', () => {
    const e = expectComponentError(
      thrown(() => verifyX509Svid([], new Map(), 0)),
      'svid',
      'SvidError',
    );
    expect(e.reason).toBe('svid_malformed');
    expect(e.status).toBe(403);
    expect(isRetryableReason(e.reason)).toBe(false);
  });

  it.each(SVID_CODES.map((c) => [c]))('%s: status as registered; the message is kept', (code) => {
    const e = expectComponentError(new SvidError(code, 'check failed'), 'svid', 'SvidError');
    expect(e.reason).toBe(code);
    expect(e.message).toBe('check failed');
  });

  it('only an unreadable source is retryable', () => {
    expect(SVID_CODES.filter((code) => isRetryableReason(code))).toEqual(['svid_source_unreadable']);
  });
});

describe('SpiffeIdError', () => {
  it('parseSpiffeId throws a TrustplaneError with a registered spiffe_id reason and go-spiffe message', () => {
    const e = expectComponentError(
      thrown(() => parseSpiffeId('spiffe://example.org/a/../b')),
      'spiffe_id',
      'SpiffeIdError',
    );
    expect(e.reason).toBe('spiffe_id_dot_segment');
    expect(e.message).toBe('path cannot contain dot segments');
    expect(e.status).toBe(400);
    expect(isRetryableReason(e.reason)).toBe(false);
  });

  it.each(SPIFFE_ID_CODES.map((c) => [c]))('%s: 400, fixed message, never retryable', (code) => {
    const e = expectComponentError(new SpiffeIdError(code), 'spiffe_id', 'SpiffeIdError');
    expect(e.status).toBe(400);
    expect(e.message.length).toBeGreaterThan(0);
    expect(isRetryableReason(code)).toBe(false);
  });
});

describe('WorkloadApiError', () => {
  it('parseWorkloadEndpoint throws a TrustplaneError with a registered reason and non-secret details', () => {
    const e = expectComponentError(
      thrown(() => parseWorkloadEndpoint('/run/agent.sock')),
      'workload_api',
      'WorkloadApiError',
    );
    expect(e.reason).toBe('workload_api_bad_endpoint');
    expect(e.details).toEqual({ endpoint: '/run/agent.sock' });
    expect(Object.isFrozen(e.details)).toBe(true);
    expect(isRetryableReason(e.reason)).toBe(false);
  });

  it('an agent that is not there: workload_api_unavailable, retryable', async () => {
    const error = await WorkloadApiX509Source.connect({
      endpoint: `unix://${path.join(dir, 'no-agent.sock')}`,
      initialTimeoutMs: 200,
      backoff: { initialMs: 50, maxMs: 50 },
    }).then(
      () => new Error('connected'),
      (e: unknown) => e,
    );
    const e = expectComponentError(error, 'workload_api', 'WorkloadApiError');
    expect(e.reason).toBe('workload_api_unavailable');
    expect(e.status).toBe(503);
    expect(isRetryableReason(e.reason)).toBe(true);
  });

  it.each(WORKLOAD_API_CODES.map((c) => [c]))(
    '%s: status as registered; details are a frozen copy',
    (code) => {
      const details = { field: 'x509_svid' };
      const e = expectComponentError(
        new WorkloadApiError(code, 'failed', details),
        'workload_api',
        'WorkloadApiError',
      );
      expect(e.details).toEqual(details);
      expect(e.details).not.toBe(details);
      expect(Object.isFrozen(e.details)).toBe(true);
    },
  );

  it('retryable exactly where a later call may get an SVID', () => {
    expect(WORKLOAD_API_CODES.filter((code) => isRetryableReason(code))).toEqual([
      'workload_api_unavailable',
      'workload_api_no_identity',
      'workload_api_bad_response',
    ]);
  });
});

describe('BrokerIpcError', () => {
  it('an unreachable broker: broker_unreachable, 503, retryable', async () => {
    const client = new BrokerIpcClient({ socketPath: path.join(dir, 'no-broker.sock') });
    const error = await client.issue({ request_id: 'r-1' } as unknown as BrokerIpcRequest).then(
      () => new Error('answered'),
      (e: unknown) => e,
    );
    const e = expectComponentError(error, 'broker_ipc', 'BrokerIpcError');
    expect(e.reason).toBe('broker_unreachable');
    expect(e.status).toBe(503);
    expect(isRetryableReason(e.reason)).toBe(true);
  });

  it('a request over 1 MiB: broker_request_too_large, 413, not retryable (nothing is sent)', async () => {
    const client = new BrokerIpcClient({ socketPath: path.join(dir, 'no-broker.sock') });
    const huge = { request_id: 'r-2', pad: 'a'.repeat(1024 * 1024) } as unknown as BrokerIpcRequest;
    const e = expectComponentError(
      await client.issue(huge).then(
        () => new Error('answered'),
        (err: unknown) => err,
      ),
      'broker_ipc',
      'BrokerIpcError',
    );
    expect(e.reason).toBe('broker_request_too_large');
    expect(e.status).toBe(413);
    expect(isRetryableReason(e.reason)).toBe(false);
  });

  it.each(BROKER_IPC_CODES.map((c) => [c]))('%s: status as registered', (code) => {
    expect(
      expectComponentError(new BrokerIpcError(code, 'failed'), 'broker_ipc', 'BrokerIpcError').reason,
    ).toBe(code);
  });

  it('unreachable and timeout are retryable, a protocol error or an oversized request is not', () => {
    expect(BROKER_IPC_CODES.filter((code) => isRetryableReason(code))).toEqual([
      'broker_unreachable',
      'broker_timeout',
    ]);
  });
});
