/** Wire header names (lowercase, as Headers normalizes them). */
export const WIRE_HEADERS = Object.freeze({
  authorization: 'authorization',
  proof: 'x-trustplane-proof',
  transcriptSha256: 'x-trustplane-transcript-sha256',
  nonce: 'x-trustplane-nonce',
  bodySha256: 'x-trustplane-body-sha256',
  coveredHeaders: 'x-trustplane-covered-headers',
} as const);

/** Identity headers a verifier sends upstream on allow; any caller-sent copy is removed. */
export const IDENTITY_HEADERS = Object.freeze([
  'x-trustplane-subject',
  'x-trustplane-issuer',
  'x-trustplane-trust-domain',
  'x-trustplane-jti',
  'x-trustplane-key-binding',
  'x-trustplane-route-id',
] as const);

/** transcript-v1 constants. */
export const TRANSCRIPT_VERSION = 'trustplane-transcript-v1';
/** The only query normalization transcript-v1 defines. */
export const QUERY_NORMALIZATION = 'rfc3986-sort-keys-values';
/** Width of the transcript time bucket, seconds (bucket = floor(iat / 20)). */
export const TIME_BUCKET_SECONDS = 20;
/** Longest nonce accepted. */
export const MAX_NONCE_LENGTH = 256;
/** Longest raw query string accepted. */
export const MAX_QUERY_LENGTH = 8192;
