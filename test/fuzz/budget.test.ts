import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BUDGET, FUZZ_MULTIPLIER, runsFor, type BudgetKey } from './fuzz-config.js';

/*
 * The fuzz suite's case count is the sum of BUDGET: this checks every budget entry is spent by
 * exactly one property of test/fuzz, and that a CI run generates at least 100,000 cases.
 */

const MIN_CASES_PER_RUN = 100_000;
const DIR = new URL('./', import.meta.url);

describe('fuzz budget', () => {
  it('every budget key is used by exactly one property, and the total is at least 100,000 cases', () => {
    const uses = new Map<string, number>();
    for (const file of readdirSync(DIR).filter((f) => f.endsWith('.test.ts') && f !== 'budget.test.ts')) {
      const text = readFileSync(new URL(file, DIR), 'utf8');
      for (const m of text.matchAll(/fuzzParams\(\s*'([^']+)'/g)) uses.set(m[1]!, (uses.get(m[1]!) ?? 0) + 1);
    }
    const keys = Object.keys(BUDGET) as BudgetKey[];
    expect([...uses.keys()].sort()).toEqual([...keys].sort());
    for (const [key, count] of uses) expect(count, key).toBe(1);
    const base = keys.reduce((sum, key) => sum + BUDGET[key], 0);
    const total = keys.reduce((sum, key) => sum + runsFor(key), 0);
    console.log(
      `fuzz: ${keys.length} properties, ${total} generated cases this run (multiplier ${FUZZ_MULTIPLIER})`,
    );
    // The CI budget (multiplier 1); a multiplier only scales it.
    expect(base).toBeGreaterThanOrEqual(MIN_CASES_PER_RUN);
  });
});
