import { parseJsonText, parseWith } from './parse-document.js';
import { type TrustMaterial, trustMaterialSchema } from './trust-material-schema.js';

/**
 * Parse and schema-check trust-material JSON text (no signature check; see {@link loadTrustMaterial}).
 *
 * @param text JSON text or its UTF-8 bytes, at most {@link MAX_DOCUMENT_BYTES}
 * @returns the validated document
 * @throws TrustplaneError `invalid_bundle` for oversize, non-UTF-8, non-JSON or schema-invalid input
 * @example const doc = parseTrustMaterialText(await fs.readFile('trust.json', 'utf8'))
 */
export function parseTrustMaterialText(text: string | Uint8Array): TrustMaterial {
  return parseWith(trustMaterialSchema, parseJsonText(text, 'trust material'), 'trust material');
}

/**
 * Schema-check a trust-material value without verifying its signature (used by editing tools).
 * @throws TrustplaneError `invalid_bundle`
 * @example const doc = parseTrustMaterial(JSON.parse(text))
 */
export function parseTrustMaterial(value: unknown): TrustMaterial {
  return parseWith(trustMaterialSchema, value, 'trust material');
}
