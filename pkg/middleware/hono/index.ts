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
} from '../options.js';
export type { AllowDecision, DenyDecision, Decision } from '../../verifier/index.js';
