import { fromUtf8Strict } from '../internal/bytes.js';
import { decodeBase64Url } from '../internal/base64url.js';
import { TrustplaneError } from './errors.js';

/** Longest compact passport accepted (bytes of the token text). */
export const MAX_PASSPORT_LENGTH = 8192;

/** Algorithms a passport may name: EdDSA, and Ed25519 (RFC 9864's fully specified name) as an alias. */
export const PASSPORT_ALGORITHMS: ReadonlySet<string> = new Set(['EdDSA', 'Ed25519']);

/** The protected header of a passport. */
export interface PassportHeader {
  readonly alg: 'EdDSA' | 'Ed25519';
  readonly kid: string;
  readonly typ?: string;
}

/** Parsed but NOT verified compact JWS parts. */
export interface UnverifiedPassport {
  readonly header: PassportHeader;
  readonly payload: Record<string, unknown>;
  readonly signingInput: string;
  readonly signature: Uint8Array;
}

const malformed = () => new TrustplaneError('malformed_passport', 'malformed passport');
const HEADER_PARAMS = new Set(['alg', 'kid', 'typ']);

function parseSegmentJson(segment: string): Record<string, unknown> {
  const bytes = decodeBase64Url(segment);
  if (!bytes) throw malformed();
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8Strict(bytes));
  } catch {
    throw malformed();
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed();
  return value as Record<string, unknown>;
}

/**
 * Split and decode a compact passport WITHOUT verifying it. Used by the verifier to find the
 * issuer key, and by tooling to display a token. Never trust its output for a decision.
 *
 * @throws TrustplaneError `malformed_passport`, `unsupported_algorithm`
 */
export function decodePassportUnverified(token: unknown): UnverifiedPassport {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_PASSPORT_LENGTH)
    throw malformed();
  const parts = token.split('.');
  if (parts.length !== 3) throw malformed();
  const [h, p, s] = parts as [string, string, string];
  const header = parseSegmentJson(h);
  // The algorithm is checked before anything else in the header, so `none`, HS256 and friends are
  // refused by name and never reach key lookup.
  if (typeof header.alg !== 'string' || !PASSPORT_ALGORITHMS.has(header.alg)) {
    throw new TrustplaneError('unsupported_algorithm', 'unsupported passport algorithm');
  }
  for (const name of Object.keys(header)) {
    // `crit`, `jwk`, `jku`, `x5u`, `x5c`, `b64` and any other parameter are refused: keys come
    // only from trust material, and we implement no JWS extensions.
    if (!HEADER_PARAMS.has(name)) throw malformed();
  }
  if (typeof header.kid !== 'string' || header.kid.length === 0 || header.kid.length > 256) throw malformed();
  if (header.typ !== undefined && header.typ !== 'JWT') throw malformed();
  const payload = parseSegmentJson(p);
  const signature = decodeBase64Url(s);
  if (!signature || signature.length !== 64) throw malformed();
  return {
    header: header as unknown as PassportHeader,
    payload,
    signingInput: `${h}.${p}`,
    signature,
  };
}
