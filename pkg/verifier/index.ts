export { verifyRequest, type VerifierContext } from './verify-request.js';
export {
  denyBody,
  denyHeaders,
  denyResponse,
  type Decision,
  type AllowDecision,
  type DenyDecision,
  type VerificationStage,
} from './decision.js';
export {
  normalizeWebRequest,
  getHeader,
  DEFAULT_MAX_BODY_BYTES,
  type NormalizedRequest,
} from './normalized-request.js';
export {
  evaluateSourcePolicy,
  compareDecimal,
  type RouteRules,
  type BundleRules,
} from './evaluate-policy.js';
