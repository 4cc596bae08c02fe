export { trustplane, type TrustplaneOptions, type TrustplaneRequestHandler } from './trustplane.js';
export type {
  TrustplaneMiddlewareOptions,
  TrustplaneCommonOptions,
  TrustplaneMaterial,
  TrustplaneMaterialProvider,
  TrustplaneStaticMaterialOptions,
  TrustplaneProvidedMaterialOptions,
} from '../options.js';
export type { AllowDecision, DenyDecision, Decision } from '../../verifier/index.js';
