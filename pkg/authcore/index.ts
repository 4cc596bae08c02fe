export {
  REASON_CODES,
  REASON_CODE_LIST,
  isReasonCode,
  statusForReason,
  isRetryableReason,
  isComponentReason,
  COMPONENT_REASON_LAYERS,
  type ReasonCode,
  type ReasonCodeInfo,
  type HttpReasonLayer,
  type ComponentReasonLayer,
} from './reason-codes.js';
export { TrustplaneError, SIGNATURE_FAILURE_MESSAGE } from './errors.js';
export { HEALTHY, unhealthy, type ComponentHealth } from './component-health.js';
export {
  SIGNER_CLASSES,
  KEY_BINDINGS,
  isKeyBinding,
  keyBindingRank,
  meetsKeyBinding,
  minKeyBinding,
  maxKeyBinding,
  type KeyBinding,
} from './signer-taxonomy.js';
export { parsePrivateKey, generateSigningKey, type SigningKey } from './signing-key.js';
export { parsePublicKey, importRawPublicKey, fingerprintPublicKey, type VerifyKey } from './verify-key.js';
export { toPublicJwk, jwkThumbprint, type Ed25519PublicJwk } from './public-jwk.js';
export {
  verifyEd25519,
  useEd25519Primitive,
  ed25519Backend,
  type Ed25519VerifyPrimitive,
} from './verify-ed25519.js';
export {
  passportClaimsSchema,
  passportCnfSchema,
  passportContextSchema,
  passportProvenanceSchema,
  REQUIRED_PASSPORT_CLAIMS,
  type PassportClaims,
  type PassportCnf,
  type PassportContext,
  type PassportProvenance,
} from './claims.js';
export {
  decodePassportUnverified,
  MAX_PASSPORT_LENGTH,
  PASSPORT_ALGORITHMS,
  type PassportHeader,
  type UnverifiedPassport,
} from './passport-format.js';
export { issuePassport, type IssuePassportClaims, type IssuePassportOptions } from './issue-passport.js';
export {
  verifyPassport,
  DEFAULT_SKEW_SECONDS,
  DEFAULT_MAX_LIFETIME_SECONDS,
  type VerifyPassportOptions,
  type VerifiedPassport,
} from './verify-passport.js';
export {
  createIssuerRegistry,
  type IssuerRegistry,
  type TrustedIssuer,
  type TrustedKey,
} from './issuer-registry.js';
export { assertReplayArguments, MAX_REPLAY_KEY_BYTES, type ReplayStore } from './replay-store.js';
export {
  MemoryReplayStore,
  DEFAULT_SWEEP_GRACE_SECONDS,
  type MemoryReplayStoreOptions,
} from './memory-replay-store.js';
export { keyBindingSchema } from './claims.js';
export { useSha256Primitive, type Sha256Primitive } from '../internal/sha256.js';
