export {
  trustplane,
  type TrustplaneOptions,
  type TrustplaneVariables,
  type TrustplaneEnv,
} from './trustplane.js';
export type {
  TrustplaneMiddlewareOptions,
  TrustplaneCommonOptions,
  TrustplaneMaterial,
  TrustplaneMaterialProvider,
  TrustplaneStaticMaterialOptions,
  TrustplaneProvidedMaterialOptions,
} from '../../verifier/index.js';
export type { AllowDecision, DenyDecision, Decision } from '../../verifier/index.js';
