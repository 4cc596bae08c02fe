export {
  POLICY_BUNDLE_VERSION,
  policyBundleSchema,
  policyApiSchema,
  policyRouteGroupSchema,
  policyRouteSchema,
  enforcementModeSchema,
  type EnforcementMode,
  mcpPolicySchema,
  type McpPolicy,
  type McpToolRule,
  type McpResourceRule,
  type McpPromptRule,
  type McpArgumentRule,
  policySourceSchema,
  policyScopeSchema,
  contextPolicySchema,
  provenancePolicySchema,
  revocationSchema,
  revocationFeedSchema,
  riskSchema,
  freshnessClassSchema,
  type PolicyBundle,
  type PolicyApi,
  type PolicyRouteGroup,
  type PolicyRoute,
  type PolicySource,
  type PolicyScope,
  type ContextPolicy,
  type ProvenancePolicy,
  type Revocation,
  type FreshnessClass,
  type RouteRisk,
} from './policy-bundle-schema.js';
export {
  TRUST_MATERIAL_VERSION,
  trustMaterialSchema,
  trustedIssuerSchema,
  issuerKeySchema,
  spiffeBundleSchema,
  spiffeBundleKeySchema,
  receiptKeySchema,
  type TrustMaterial,
  type TrustMaterialIssuer,
  type IssuerKey,
  type SpiffeBundle,
  type SpiffeBundleKey,
  type ReceiptKey,
} from './trust-material-schema.js';
export {
  SIGNATURE_FORMAT,
  UNSIGNED_SIGNATURE_FORMAT,
  signedBySchema,
  signatureSchema,
  type SignedBy,
  type DocumentSignature,
} from './document-signature-schema.js';
export { SIGNED_DOCUMENT_PREFIX, documentSigningInput } from './document-signing-input.js';
export { signDocument, type SignDocumentOptions, type SignedDocument } from './sign-document.js';
export {
  verifyDocument,
  type DocumentSigner,
  type VerifyDocumentOptions,
  type VerifyDocumentResult,
} from './verify-document.js';
export { MAX_DOCUMENT_BYTES } from './parse-document.js';
export { parsePolicyBundle, parsePolicyBundleText } from './parse-policy-bundle.js';
export { parseTrustMaterial, parseTrustMaterialText } from './parse-trust-material.js';
export { type LoadDocumentOptions } from './load-document-options.js';
export { loadPolicyBundle, type LoadedPolicy } from './load-policy-bundle.js';
export {
  loadTrustMaterial,
  defaultMaxKeyBinding,
  type LoadedTrustMaterial,
  type LoadedReceiptKey,
} from './load-trust-material.js';
export { type RevocationQuery } from './revocation-index.js';
export { buildRouteTable, type RouteEntry, type RouteMatch, type RouteTable } from './route-table.js';
export {
  checkFreshness,
  DEFAULT_FRESHNESS_CLASS,
  DEFAULT_BOUNDED_MAX_STALENESS_SECONDS,
  REALTIME_MAX_STALENESS_SECONDS,
  type FreshnessResult,
} from './freshness.js';
export {
  describePolicyFreshness,
  describeTrustFreshness,
  freshnessJson,
  routeLimitSeconds,
  shortestRouteLimitSeconds,
  staleSoonMarginSeconds,
  type FreshnessReport,
  type FreshnessState,
} from './freshness-report.js';
export {
  buildPolicyBundle,
  policyBundleConfigSchema,
  type PolicyBundleConfig,
} from './build-policy-bundle.js';
export {
  buildTrustMaterial,
  trustMaterialConfigSchema,
  type TrustMaterialConfig,
} from './build-trust-material.js';
export { mergeSource, type MergeSourceOptions } from './merge-source.js';
export { removeSource, type IssuerSelector } from './remove-source.js';
export { type RouteSourceEdit, type SourceSelector } from './source-edit.js';
export {
  mcpArgumentRuleSchema,
  MAX_MCP_PATTERN_LENGTH,
  MAX_MCP_PATTERN_INPUT,
  MAX_MCP_RULES,
  MAX_MCP_ARGUMENT_RULES,
} from './mcp-policy-schema.js';
