import { utf8 } from '../internal/bytes.js';
import { decodeBase64Url } from '../internal/base64url.js';
import type { PassportClaims } from './claims.js';
import { checkPassportClaims, checkPassportCnf } from './claims-check.js';
import { SIGNATURE_FAILURE_MESSAGE, TrustplaneError } from './errors.js';
import type { IssuerRegistry, TrustedIssuer } from './issuer-registry.js';
import { verifyEd25519 } from './verify-ed25519.js';
import { importRawPublicKey, type VerifyKey } from './verify-key.js';
import { decodePassportUnverified, type PassportHeader } from './passport-format.js';
import { type KeyBinding, minKeyBinding } from './signer-taxonomy.js';

/** Default clock-skew tolerance, seconds. */
export const DEFAULT_SKEW_SECONDS = 30;
/** Default maximum passport lifetime (`exp - iat`), seconds. */
export const DEFAULT_MAX_LIFETIME_SECONDS = 600;

/** Options for {@link verifyPassport}. */
export interface VerifyPassportOptions {
  /** Trusted issuers and their keys (from loaded trust material). */
  readonly issuers: IssuerRegistry;
  /** The audience this verifier protects. Required: there is no "any audience". */
  readonly audience: string;
  /** Current time, epoch seconds (injected clock). */
  readonly now: number;
  /** When set, the passport `trust_domain` must equal it (in addition to the issuer's). */
  readonly trustDomain?: string;
  /** Clock-skew tolerance, seconds (default 30). */
  readonly skewSeconds?: number;
  /** Maximum `exp - iat`, seconds (default 600). */
  readonly maxLifetimeSeconds?: number;
}

/** A verified passport. */
export interface VerifiedPassport {
  readonly header: PassportHeader;
  readonly claims: PassportClaims;
  readonly issuer: TrustedIssuer;
  /** The `cnf` key, imported, for the request-proof check. */
  readonly cnfKey: VerifyKey;
  /** `cnf.key_binding` capped by what the issuer may vouch for. */
  readonly effectiveKeyBinding: KeyBinding;
}

/**
 * Imported cnf keys by their base64url text. A caller with a long-lived request key presents the
 * same cnf on every request; importing it into WebCrypto each time costs more than a SHA-256 of
 * the whole transcript. Bounded (oldest evicted first); a CryptoKey is immutable, so sharing one
 * across requests is safe. The import refuses small-order and non-canonical keys (whatever the verify
 * backend), so that check also runs once per distinct key and its outcome is cached with the key.
 * Failed imports are not cached: the refusal is cheap, and only issuer-signed passports get here.
 */
const CNF_CACHE_MAX = 4096;
const cnfKeyCache = new Map<string, Promise<VerifyKey>>();

function importCnfKey(x: string, raw: Uint8Array): Promise<VerifyKey> {
  const hit = cnfKeyCache.get(x);
  if (hit) return hit;
  if (cnfKeyCache.size >= CNF_CACHE_MAX) cnfKeyCache.delete(cnfKeyCache.keys().next().value!);
  const pending = importRawPublicKey(raw);
  cnfKeyCache.set(x, pending);
  pending.catch(() => cnfKeyCache.delete(x));
  return pending;
}

const fail = (reason: ConstructorParameters<typeof TrustplaneError>[0], message: string) =>
  new TrustplaneError(reason, message);

/**
 * Verify a passport: algorithm allowlist (EdDSA, alias Ed25519), issuer and kid from trust
 * material, Ed25519 signature, then claims against the injected clock, audience and trust domain.
 *
 * @param token the compact JWS (untrusted)
 * @returns the verified passport; never returns on failure
 * @throws TrustplaneError with reason `malformed_passport`, `unsupported_algorithm`, `unknown_issuer`,
 *   `unknown_key`, `invalid_passport_signature`, `passport_expired`, `passport_not_yet_valid`,
 *   `passport_lifetime_exceeded`, `audience_mismatch`, `trust_domain_mismatch`, `invalid_cnf` (also
 *   for a cnf key of small order or with a non-canonical encoding)
 * @example
 * const p = await verifyPassport(token, { issuers, audience: 'orders-api', now: Math.floor(Date.now() / 1000) })
 */
export async function verifyPassport(
  token: unknown,
  options: VerifyPassportOptions,
): Promise<VerifiedPassport> {
  if (typeof options.audience !== 'string' || options.audience.length === 0) {
    throw new TypeError('verifyPassport: audience is required');
  }
  if (!Number.isFinite(options.now)) throw new TypeError('verifyPassport: now must be epoch seconds');
  const skew = options.skewSeconds ?? DEFAULT_SKEW_SECONDS;
  const maxLifetime = options.maxLifetimeSeconds ?? DEFAULT_MAX_LIFETIME_SECONDS;

  const parsed = decodePassportUnverified(token);
  // passportClaimsSchema, checked by hand (the hot path; a test keeps the two in agreement).
  const raw = checkPassportClaims(parsed.payload);
  if (raw === undefined) throw fail('malformed_passport', 'malformed passport claims');

  const issuer = options.issuers.getIssuer(raw.iss);
  if (!issuer) throw fail('unknown_issuer', 'passport issuer is not trusted');
  // Keys are looked up within the issuer only: a kid of another issuer is unknown here.
  const trustedKey = issuer.keys.get(parsed.header.kid);
  if (!trustedKey) throw fail('unknown_key', 'passport key is not trusted for its issuer');
  if (
    (trustedKey.nbf !== undefined && options.now + skew < trustedKey.nbf) ||
    (trustedKey.exp !== undefined && options.now - skew >= trustedKey.exp)
  ) {
    throw fail('unknown_key', 'passport key is outside its validity window');
  }
  if (!(await verifyEd25519(trustedKey.key, parsed.signature, utf8(parsed.signingInput)))) {
    throw fail('invalid_passport_signature', SIGNATURE_FAILURE_MESSAGE);
  }

  if (raw.exp <= raw.iat) throw fail('malformed_passport', 'passport exp must be after iat');
  if (raw.exp - raw.iat > maxLifetime) throw fail('passport_lifetime_exceeded', 'passport lifetime too long');
  if (raw.iat > options.now + skew) throw fail('passport_not_yet_valid', 'passport issued in the future');
  if (raw.nbf !== undefined && raw.nbf > options.now + skew) {
    throw fail('passport_not_yet_valid', 'passport not yet valid');
  }
  if (raw.exp <= options.now - skew) throw fail('passport_expired', 'passport expired');

  const aud = typeof raw.aud === 'string' ? raw.aud : raw.aud[0];
  if (aud !== options.audience) throw fail('audience_mismatch', 'passport audience mismatch');
  if (raw.trust_domain !== issuer.trustDomain) {
    throw fail('trust_domain_mismatch', "passport trust domain is not its issuer's");
  }
  if (options.trustDomain !== undefined && raw.trust_domain !== options.trustDomain) {
    throw fail('trust_domain_mismatch', 'passport trust domain mismatch');
  }

  const cnf = checkPassportCnf(raw.cnf);
  if (cnf === undefined) throw fail('invalid_cnf', 'passport cnf is invalid');
  const cnfRaw = decodeBase64Url(cnf.public_key_b64url);
  if (!cnfRaw || cnfRaw.length !== 32) throw fail('invalid_cnf', 'passport cnf key is invalid');
  let cnfKey: VerifyKey;
  try {
    cnfKey = await importCnfKey(cnf.public_key_b64url, cnfRaw);
  } catch {
    throw fail('invalid_cnf', 'passport cnf key is invalid');
  }

  const claims: PassportClaims = {
    iss: raw.iss,
    sub: raw.sub,
    aud,
    iat: raw.iat,
    exp: raw.exp,
    ...(raw.nbf !== undefined ? { nbf: raw.nbf } : {}),
    jti: raw.jti,
    trust_domain: raw.trust_domain,
    cnf,
    ...(raw.ctx ? { ctx: raw.ctx } : {}),
    ...(raw.provenance ? { provenance: raw.provenance } : {}),
  };
  return {
    header: parsed.header,
    claims,
    issuer,
    cnfKey,
    effectiveKeyBinding: minKeyBinding(claims.cnf.key_binding, issuer.maxKeyBinding),
  };
}
