import type { VerifyKey } from './verify-key.js';
import type { KeyBinding } from './signer-taxonomy.js';

/** One signing key of a trusted issuer, with its optional validity window (epoch seconds). */
export interface TrustedKey {
  readonly kid: string;
  readonly key: VerifyKey;
  readonly nbf?: number;
  readonly exp?: number;
}

/** An issuer the verifier trusts, with keys imported once at load time. */
export interface TrustedIssuer {
  readonly issuer: string;
  readonly trustDomain: string;
  readonly sourceType: string;
  /** The highest key binding this issuer may vouch for; a higher claim is capped to it. */
  readonly maxKeyBinding: KeyBinding;
  /** Keys by kid (null-prototype lookups). */
  readonly keys: ReadonlyMap<string, TrustedKey>;
}

/** Resolves issuers by `iss`. Implemented by loaded trust material. */
export interface IssuerRegistry {
  getIssuer(iss: string): TrustedIssuer | undefined;
  /** When the registry's document stops being valid (epoch seconds); verifiers deny from then on. */
  readonly expiresAt?: number;
}

/** An in-memory issuer registry. */
export function createIssuerRegistry(issuers: readonly TrustedIssuer[]): IssuerRegistry {
  const map = new Map<string, TrustedIssuer>();
  for (const i of issuers) {
    if (map.has(i.issuer)) throw new RangeError(`duplicate issuer ${JSON.stringify(i.issuer)}`);
    map.set(i.issuer, i);
  }
  return { getIssuer: (iss) => map.get(iss) };
}
