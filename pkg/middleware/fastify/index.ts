export { trustplane, type TrustplaneFastifyOptions, type TrustplaneFastifyPlugin } from './trustplane.js';
export type {
  TrustplaneMiddlewareOptions,
  TrustplaneCommonOptions,
  TrustplaneMaterial,
  TrustplaneMaterialProvider,
  TrustplaneStaticMaterialOptions,
  TrustplaneProvidedMaterialOptions,
} from '../../verifier/index.js';
export type { AllowDecision, DenyDecision, Decision } from '../../verifier/index.js';
