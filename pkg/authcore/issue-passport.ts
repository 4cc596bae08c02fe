import { utf8 } from '../internal/bytes.js';
import { encodeBase64Url } from '../internal/base64url.js';
import type { PassportContext, PassportProvenance } from './claims.js';
import type { SigningKey } from './signing-key.js';
import { isKeyBinding, type KeyBinding } from './signer-taxonomy.js';

/** Claims for a new passport. `iat`/`exp` are epoch seconds. */
export interface IssuePassportClaims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  exp: number;
  jti: string;
  trust_domain: string;
  cnf: { kid: string; key_binding: KeyBinding; public_key_b64url: string };
  ctx?: PassportContext;
  provenance?: PassportProvenance;
}

/** Options for {@link issuePassport}. */
export interface IssuePassportOptions {
  /** Header `kid` of the issuer key. */
  kid: string;
}

/**
 * Sign a passport-v1 compact JWS with header `{"alg":"EdDSA","kid":…,"typ":"JWT"}`.
 * @throws TypeError/RangeError for caller misuse (bad times, unknown key binding).
 * @example
 * const token = await issuePassport(claims, issuerKey, { kid: 'issuer-2026-01' })
 */
export async function issuePassport(
  claims: IssuePassportClaims,
  key: SigningKey,
  options: IssuePassportOptions,
): Promise<string> {
  if (!Number.isSafeInteger(claims.iat) || !Number.isSafeInteger(claims.exp) || claims.exp <= claims.iat) {
    throw new RangeError('passport iat/exp must be integers with exp > iat');
  }
  if (!isKeyBinding(claims.cnf.key_binding)) throw new RangeError('unknown cnf.key_binding');
  if (!options.kid) throw new TypeError('kid is required');
  const payload: Record<string, unknown> = {
    iss: claims.iss,
    sub: claims.sub,
    aud: claims.aud,
    iat: claims.iat,
    exp: claims.exp,
    jti: claims.jti,
    trust_domain: claims.trust_domain,
    cnf: {
      kid: claims.cnf.kid,
      key_binding: claims.cnf.key_binding,
      public_key_b64url: claims.cnf.public_key_b64url,
    },
  };
  if (claims.ctx) payload.ctx = claims.ctx;
  if (claims.provenance) payload.provenance = claims.provenance;
  const header = { alg: 'EdDSA', kid: options.kid, typ: 'JWT' };
  const signingInput = `${encodeBase64Url(utf8(JSON.stringify(header)))}.${encodeBase64Url(utf8(JSON.stringify(payload)))}`;
  const signature = await key.sign(utf8(signingInput));
  return `${signingInput}.${encodeBase64Url(signature)}`;
}
