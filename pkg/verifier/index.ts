export { verifyRequest, type VerifierContext } from './verify-request.js';
export { denyAnswer, denyBody, denyHeaders, denyResponse, type DenyAnswer } from './deny-answer.js';
export {
  denyFrom,
  type DenyAbout,
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
export { evaluateSourcePolicy, compareDecimal, type RouteRules, type BundleRules } from './source-policy.js';
export {
  evaluateRoutePolicy,
  type RoutePolicySubject,
  type RoutePolicyOptions,
  type RoutePolicyResult,
} from './route-policy.js';
export { identityHeaders, type IdentityHeaders } from './identity-headers.js';
export {
  createEnforcementKernel,
  type EnforcementKernel,
  type EnforcementInput,
  type Enforcement,
  type AllowEnforcement,
  type DenyEnforcement,
  type PassEnforcement,
  type ReceiptResponse,
} from './kernel.js';
export {
  DEFAULT_DURABLE_AUDIT_TIMEOUT_MS,
  type EnforcementKernelOptions,
  type EnforcementObservation,
  type EnforcementOutcomeLabel,
  type ReceiptSigner,
  type TrustplaneMaterial,
  type TrustplaneMaterialProvider,
  type TrustplaneCommonOptions,
  type TrustplaneMiddlewareOptions,
  type TrustplaneStaticMaterialOptions,
  type TrustplaneProvidedMaterialOptions,
} from './kernel-options.js';
export type { RecordFacts } from './decision-recorder.js';
