import { parseJsonText, parseWith } from './parse-document.js';
import { type PolicyBundle, policyBundleSchema } from './policy-bundle-schema.js';

/**
 * Parse and schema-check policy-bundle JSON text (no signature check; see {@link loadPolicyBundle}).
 *
 * @param text JSON text or its UTF-8 bytes, at most {@link MAX_DOCUMENT_BYTES}
 * @returns the validated document
 * @throws TrustplaneError `invalid_bundle` for oversize, non-UTF-8, non-JSON or schema-invalid input
 * @example const doc = parsePolicyBundleText(await fs.readFile('bundle.json'))
 */
export function parsePolicyBundleText(text: string | Uint8Array): PolicyBundle {
  return parseWith(policyBundleSchema, parseJsonText(text, 'policy bundle'), 'policy bundle');
}

/**
 * Schema-check a policy bundle value without verifying its signature (used by editing tools).
 * @throws TrustplaneError `invalid_bundle`
 * @example const doc = parsePolicyBundle(JSON.parse(text))
 */
export function parsePolicyBundle(value: unknown): PolicyBundle {
  return parseWith(policyBundleSchema, value, 'policy bundle');
}
