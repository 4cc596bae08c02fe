import type fc from 'fast-check';
import { expect } from 'vitest';
import { TrustplaneError } from '../../pkg/authcore/errors.js';
import { REASON_CODES, type ReasonCodeInfo } from '../../pkg/authcore/reason-codes.js';

/*
 * Run budget of the fuzz suite (test/fuzz). Every property draws its `numRuns` from BUDGET by
 * key, so the number of generated cases per CI run is the sum of this table (times the
 * multiplier); budget.test.ts checks that every key is used by exactly one property and that the
 * total stays at 100,000 or more. Cheap string parsers get many cases, crypto-heavy ones fewer.
 *
 * Seeds are NOT fixed: every run draws fresh cases. On failure fast-check prints the seed and the
 * path of the counterexample; replay it with
 *   TRUSTPLANE_FUZZ_SEED=<seed> TRUSTPLANE_FUZZ_PATH=<path> npx vitest run test/fuzz -t '<test name>'
 * A longer campaign: TRUSTPLANE_FUZZ_RUNS_MULTIPLIER=10 npx vitest run test/fuzz (test timeouts
 * scale with it).
 */

/** Generated cases per property (before the multiplier). Keys are `<file>.<property>`. */
export const BUDGET = {
  // passport.test.ts
  'passport.decode-arbitrary': 10_000,
  'passport.verify-arbitrary': 2_500,
  'passport.verify-jws-shaped': 2_500,
  'passport.verify-signed-claims': 1_200,
  'passport.verify-mutated': 3_500,
  // transcript.test.ts
  'transcript.normalize-query': 10_000,
  'transcript.normalize-query-fixed-point': 6_000,
  'transcript.covered-headers': 6_000,
  'transcript.arbitrary-fields': 2_500,
  'transcript.control-characters': 2_500,
  'transcript.covered-field-differs': 2_500,
  // paths.test.ts
  'paths.path-safety': 12_000,
  'paths.client-path': 8_000,
  'paths.route-table': 1_200,
  // spiffe-id.test.ts
  'spiffe-id.parse': 12_000,
  'spiffe-id.trust-domain-and-path': 6_000,
  'spiffe-id.format': 4_000,
  // bundle.test.ts
  'bundle.jcs-stable': 3_000,
  'bundle.jcs-anything': 2_000,
  'bundle.parse-anything': 2_000,
  'bundle.parse-mutated': 2_000,
  'bundle.parse-text': 2_000,
  'bundle.verify-document': 1_500,
  'bundle.load-mutated-signed': 1_200,
  'bundle.load-resigned': 400,
  // broker-ipc.test.ts
  'broker-ipc.schemas': 3_000,
  'broker-ipc.issue-anything': 1_500,
  'broker-ipc.issue-mutated': 800,
  // x509.test.ts
  'x509.random-chains': 1_200,
  'x509.mutated-leaf': 800,
  'x509.mutated-intermediate': 500,
  'x509.bundles': 1_200,
  // receipt.test.ts
  'receipt.arbitrary': 2_500,
  'receipt.mutated': 2_500,
  'receipt.signed-payloads': 800,
} as const satisfies Record<string, number>;

/** A key of {@link BUDGET}. */
export type BudgetKey = keyof typeof BUDGET;

function parseMultiplier(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return 1;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `TRUSTPLANE_FUZZ_RUNS_MULTIPLIER must be a positive number, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** `TRUSTPLANE_FUZZ_RUNS_MULTIPLIER` (default 1): scales every budget, e.g. 10 for a nightly run. */
export const FUZZ_MULTIPLIER = parseMultiplier(process.env['TRUSTPLANE_FUZZ_RUNS_MULTIPLIER']);

const replaySeed = process.env['TRUSTPLANE_FUZZ_SEED'];
const replayPath = process.env['TRUSTPLANE_FUZZ_PATH'];

/** Cases one property runs: its budget times the multiplier. */
export function runsFor(key: BudgetKey): number {
  return Math.max(1, Math.round(BUDGET[key] * FUZZ_MULTIPLIER));
}

/** Longest a single synchronous case may take before it counts as a hang (ms). */
export const CASE_TIME_LIMIT_MS = 2_000;
/** Longest a single asynchronous case may take (fast-check `timeout`, ms). */
export const ASYNC_CASE_TIME_LIMIT_MS = 5_000;
/**
 * Longest one property may run, shrinking included (fast-check `interruptAfterTimeLimit`, counted
 * as a failure). fast-check checks it between cases, so it also ends a synchronous property that
 * vitest's timeout could not interrupt, or a shrink that explodes on a huge counterexample.
 */
export const PROPERTY_TIME_LIMIT_MS = Math.round(45_000 * Math.max(1, FUZZ_MULTIPLIER));
/** vitest timeout of every fuzz test: above {@link PROPERTY_TIME_LIMIT_MS}. */
export const FUZZ_TEST_TIMEOUT_MS = PROPERTY_TIME_LIMIT_MS + 15_000;

/**
 * fast-check parameters of one property: its run count, the per-case and per-property time limits,
 * and the replay seed/path when given. Never a fixed seed otherwise. `examples` are known
 * counterexamples (attack regressions) run before the generated cases, on top of the budget.
 */
export function fuzzParams<T>(
  key: BudgetKey,
  extra: Pick<fc.Parameters<T>, 'examples'> = {},
): fc.Parameters<T> {
  const params: fc.Parameters<T> = {
    numRuns: runsFor(key),
    timeout: ASYNC_CASE_TIME_LIMIT_MS,
    interruptAfterTimeLimit: PROPERTY_TIME_LIMIT_MS,
    markInterruptAsFailure: true,
    ...extra,
  };
  if (replaySeed !== undefined && replaySeed !== '') {
    params.seed = Number(replaySeed);
    if (replayPath !== undefined && replayPath !== '') params.path = replayPath;
  }
  return params;
}

/**
 * Run `fn` and fail the case when it takes longer than {@link CASE_TIME_LIMIT_MS}: a parser that
 * is super-linear on some input is a denial of service even when it terminates.
 */
export function timed<T>(fn: () => T): T {
  const started = performance.now();
  const value = fn();
  const elapsed = performance.now() - started;
  if (elapsed > CASE_TIME_LIMIT_MS) {
    throw new Error(`one case took ${Math.round(elapsed)} ms (limit ${CASE_TIME_LIMIT_MS} ms): hang`);
  }
  return value;
}

/** The outcome of a call: its value, or what it threw. */
export type Outcome<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** Call `fn` (timed: a case over {@link CASE_TIME_LIMIT_MS} fails), capturing its result or what it threw. */
export function attempt<T>(fn: () => T): Outcome<T> {
  return timed((): Outcome<T> => {
    try {
      return { ok: true, value: fn() };
    } catch (error) {
      return { ok: false, error };
    }
  });
}

/** Await `fn`, capturing the result or the rejection. */
export async function attemptAsync<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Assert `error` is a TrustplaneError (of class `ctor` when given) whose reason is a registered code
 * of one of `layers` (and one of `reasons` when given), with the registry's status. Anything else
 * (a TypeError, a RangeError, a stack overflow) is a crash and fails the case with the original.
 */
export function expectCodedError(
  error: unknown,
  expected: {
    readonly layers?: readonly ReasonCodeInfo['layer'][];
    readonly reasons?: readonly string[];
    readonly ctor?: abstract new (...args: never[]) => TrustplaneError;
  },
): TrustplaneError {
  const ctor = expected.ctor ?? TrustplaneError;
  if (!(error instanceof ctor)) {
    // Rethrow the original: its stack says where the crash happened.
    throw error instanceof Error
      ? Object.assign(error, { message: `crash (not a ${ctor.name}): ${error.message}` })
      : new Error(`crash: threw a non-Error value (${Object.prototype.toString.call(error)})`);
  }
  expect(Object.hasOwn(REASON_CODES, error.reason)).toBe(true);
  expect(error.status).toBe(REASON_CODES[error.reason].status);
  if (expected.layers) expect(expected.layers).toContain(REASON_CODES[error.reason].layer);
  if (expected.reasons) expect(expected.reasons).toContain(error.reason);
  return error;
}
