import { parsePublicKey, type VerifyKey } from '../authcore/verify-key.js';

/** A configured document-signing public key. */
export interface ConfiguredKey {
  /** The key's kid when the configured value named one (a JWK with `kid`). */
  readonly kid?: string;
  readonly key: VerifyKey;
}

/**
 * Parse configured signer keys (key text, PEM, or JWK JSON; a JWK's `kid` is kept).
 * @throws TrustplaneError `invalid_key`
 */
export async function parseConfiguredKeys(values: readonly string[]): Promise<ConfiguredKey[]> {
  const out: ConfiguredKey[] = [];
  for (const value of values) {
    const text = value.trim();
    let kid: string | undefined;
    if (text.startsWith('{')) {
      try {
        const jwk = JSON.parse(text) as { kid?: unknown };
        if (typeof jwk.kid === 'string') kid = jwk.kid;
      } catch {
        // parsePublicKey reports the error.
      }
    }
    const key = await parsePublicKey(text);
    out.push(kid !== undefined ? { kid, key } : { key });
  }
  return out;
}
