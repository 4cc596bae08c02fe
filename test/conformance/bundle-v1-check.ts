import { expect } from 'vitest';

/** bundle-v1 source rules: filled in once pkg/bundle lands. */
export async function checkBundleVector(v: Record<string, unknown>): Promise<void> {
  expect(v.policy_bundle).toBeDefined();
  throw new Error('bundle-v1 check not implemented yet');
}
