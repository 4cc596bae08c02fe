import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectComponentError } from '../helpers/errors.js';
import { AUDIT_EVENT_SCHEMA } from '../../pkg/audit/event.js';
import { FileLedgerSink } from '../../pkg/audit/file-ledger-sink.js';
import { LedgerError, type LedgerErrorCode } from '../../pkg/audit/ledger-error.js';
import { verifyPostgresLedger } from '../../pkg/audit/postgres-ledger-verify.js';
import { RECEIPT_ERROR_CODES, ReceiptError, verifyReceipt } from '../../pkg/audit/index.js';
import { REASON_CODES, REASON_CODE_LIST, isRetryableReason } from '../../pkg/authcore/reason-codes.js';

const LEDGER_CODES = [
  'ledger_unavailable',
  'ledger_error',
  'ledger_chain_mismatch',
  'ledger_chain_fork',
  'ledger_event_dropped',
  'ledger_records_lost',
  'audit_chain_broken',
] as const satisfies readonly LedgerErrorCode[];
// Compile-time: the list names every LedgerErrorCode.
const covered: [Exclude<LedgerErrorCode, (typeof LEDGER_CODES)[number]>] extends [never] ? true : false =
  true;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tp-audit-errors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ReceiptError', () => {
  it('RECEIPT_ERROR_CODES are the receipt layer of the registry', () => {
    expect(REASON_CODE_LIST.filter((code) => REASON_CODES[code].layer === 'receipt')).toEqual([
      ...RECEIPT_ERROR_CODES,
    ]);
  });

  it('verifyReceipt throws a TrustplaneError with a registered receipt reason', async () => {
    const error = await verifyReceipt('not.a.receipt', { receiptKeys: new Map() }).then(
      () => new Error('verified'),
      (e: unknown) => e,
    );
    const e = expectComponentError(error, 'receipt', 'ReceiptError');
    expect(e.reason).toBe('receipt_malformed');
    expect(e.status).toBe(400);
    expect(isRetryableReason(e.reason)).toBe(false);
  });

  it.each(RECEIPT_ERROR_CODES.map((c) => [c]))('%s: status as registered, never retryable', (code) => {
    const e = expectComponentError(new ReceiptError(code, 'refused'), 'receipt', 'ReceiptError');
    expect(e.reason).toBe(code);
    expect(isRetryableReason(code)).toBe(false);
  });
});

describe('LedgerError', () => {
  it('the code list is the ledger layer of the registry', () => {
    expect(covered).toBe(true);
    expect(REASON_CODE_LIST.filter((code) => REASON_CODES[code].layer === 'ledger')).toEqual([
      ...LEDGER_CODES,
    ]);
  });

  it('a ledger file of another chain: ledger_chain_mismatch, not retryable', async () => {
    const file = path.join(dir, 'ledger.jsonl');
    const sink = await FileLedgerSink.open(file, { chainId: 'adapter-1' });
    await sink.writeDurable({
      schema: AUDIT_EVENT_SCHEMA,
      event_id: 'evt-1',
      time: new Date(0).toISOString(),
      event_type: 'authorization_decision',
      component: 'adapter',
      decision: 'allow',
      status: 200,
    });
    await sink.close();
    const error = await FileLedgerSink.open(file, { chainId: 'adapter-2' }).then(
      () => new Error('opened'),
      (e: unknown) => e,
    );
    const e = expectComponentError(error, 'ledger', 'LedgerError');
    expect(e.reason).toBe('ledger_chain_mismatch');
    expect(e.status).toBe(500);
    expect(isRetryableReason(e.reason)).toBe(false);
  });

  it('a ledger file whose last record is corrupt: audit_chain_broken', async () => {
    const file = path.join(dir, 'corrupt.jsonl');
    await writeFile(file, '{"chain_id":"adapter-1","seq":1}\n');
    const error = await FileLedgerSink.open(file, { chainId: 'adapter-1' }).then(
      () => new Error('opened'),
      (e: unknown) => e,
    );
    expect(expectComponentError(error, 'ledger', 'LedgerError').reason).toBe('audit_chain_broken');
  });

  it('PostgreSQL unreachable: ledger_unavailable, 503, retryable, the Node error code in details', async () => {
    const url = 'postgresql://auditor:pw-not-shown@127.0.0.1:1/ledger';
    const error = await verifyPostgresLedger(url, undefined, { connectTimeoutMs: 1000 }).then(
      () => new Error('verified'),
      (e: unknown) => e,
    );
    const e = expectComponentError(error, 'ledger', 'LedgerError');
    expect(e.reason).toBe('ledger_unavailable');
    expect(e.status).toBe(503);
    expect(isRetryableReason(e.reason)).toBe(true);
    expect(e.details).toEqual({ error: 'ECONNREFUSED' });
    expect(e.message).toContain('postgresql://auditor:***@127.0.0.1:1/ledger');
    expect(e.message).not.toContain('pw-not-shown');
  });

  it.each(LEDGER_CODES.map((c) => [c]))('%s: status as registered', (code) => {
    const e = expectComponentError(
      new LedgerError(code, 'failed', { sqlstate: '42501' }),
      'ledger',
      'LedgerError',
    );
    expect(e.reason).toBe(code);
    expect(e.details).toEqual({ sqlstate: '42501' });
  });

  it('only ledger_unavailable is retryable', () => {
    expect(LEDGER_CODES.filter((code) => isRetryableReason(code))).toEqual(['ledger_unavailable']);
  });
});
