export {
  MAX_SPIFFE_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  SpiffeIdError,
  formatSpiffeId,
  isValidTrustDomain,
  parseSpiffeId,
  parseTrustDomain,
  validateSpiffePath,
  type SpiffeId,
  type SpiffeIdErrorCode,
} from './spiffe-id.js';
export {
  MAX_BUNDLE_BYTES,
  MAX_BUNDLE_KEYS,
  bundlesFromPem,
  bundlesFromSpiffeBundle,
  bundlesFromTrustMaterial,
  mergePinnedBundles,
  mergeTrustBundles,
  parsePemCertificates,
  type PinnedBundlesResult,
  type SpiffeTrustBundles,
} from './bundle.js';
export { SvidError, type SvidErrorCode } from './svid-error.js';
export {
  MAX_CERTIFICATE_BYTES,
  MAX_SVID_CHAIN_LENGTH,
  assertKeyMatchesLeaf,
  readLeafSpiffeIdUnverified,
  verifyX509Svid,
  type VerifiedSvid,
} from './x509-svid.js';
export {
  DEFAULT_SVID_DEBOUNCE_MS,
  DEFAULT_SVID_POLL_INTERVAL_MS,
  SvidFileSource,
  type SvidFileSourceOptions,
  type SvidSnapshot,
} from './file-source.js';
