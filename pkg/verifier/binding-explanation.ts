/**
 * What the verifier used to rebuild a request's transcript, for a `request_binding_mismatch` (or
 * `invalid_request_proof`) deny: enough for an operator to spot what differs from what the caller
 * signed, and never a secret (no passport, proof, nonce or header value). Computed on the deny
 * path only. Internal to pkg/verifier.
 */

/** Where the transcript's scheme and authority came from. */
export type OriginSource = 'publicOrigin' | 'base_url' | 'host';

/** The inputs of a rebuilt transcript. */
export interface BindingInputs {
  readonly scheme: string;
  readonly authority: string;
  readonly publicOrigin: string | undefined;
  readonly baseUrl: string | undefined;
  readonly method: string;
  readonly path: string;
  readonly normalizedQuery: string;
  readonly coveredHeaders: readonly string[];
  readonly bodySha256: string;
}

/** The source of the origin, in the order resolveOrigin applies them. */
export function originSource(publicOrigin: string | undefined, baseUrl: string | undefined): OriginSource {
  return publicOrigin !== undefined ? 'publicOrigin' : baseUrl !== undefined ? 'base_url' : 'host';
}

/**
 * The deny details naming each transcript input (`origin`, `origin_from`, `method`, `path`,
 * `query`, `covered_headers`, `body_sha256`).
 */
export function bindingDetails(inputs: BindingInputs): Record<string, string> {
  return {
    origin: `${inputs.scheme}://${inputs.authority}`,
    origin_from: originSource(inputs.publicOrigin, inputs.baseUrl),
    method: inputs.method,
    path: inputs.path,
    query: inputs.normalizedQuery,
    covered_headers: inputs.coveredHeaders.join(','),
    body_sha256: inputs.bodySha256,
  };
}
