import { TrustplaneError } from '../authcore/errors.js';
import { parseWith } from './parse-document.js';
import { parsePolicyBundle } from './parse-policy-bundle.js';
import { parseTrustMaterial } from './parse-trust-material.js';
import { policySourceSchema, type PolicyBundle } from './policy-bundle-schema.js';
import { findRoute, quote, sameSelector, withoutSignature, type RouteSourceEdit } from './source-edit.js';
import {
  type IssuerKey,
  type TrustMaterial,
  type TrustMaterialIssuer,
  trustedIssuerSchema,
} from './trust-material-schema.js';

/** Options for {@link mergeSource}. */
export interface MergeSourceOptions {
  /** Replace an existing kid / source selector instead of failing with `bundle_conflict`. */
  readonly replace?: boolean;
}

function mergeIssuer(input: TrustMaterial, addition: TrustMaterialIssuer, replace: boolean): TrustMaterial {
  const doc = withoutSignature(parseTrustMaterial(input));
  const issuer = parseWith(trustedIssuerSchema, addition, 'issuer');
  const existing = doc.issuers.find((i) => i.issuer === issuer.issuer);
  if (!existing) {
    doc.issuers.push(issuer);
    return parseTrustMaterial(doc);
  }
  const attributesDiffer =
    existing.trust_domain !== issuer.trust_domain ||
    existing.source_type !== issuer.source_type ||
    existing.max_key_binding !== issuer.max_key_binding;
  if (attributesDiffer && !replace) {
    throw new TrustplaneError(
      'bundle_conflict',
      `issuer ${quote(issuer.issuer)} exists with another trust_domain, source_type or max_key_binding`,
    );
  }
  if (attributesDiffer) {
    existing.trust_domain = issuer.trust_domain;
    existing.source_type = issuer.source_type;
    if (issuer.max_key_binding === undefined) delete existing.max_key_binding;
    else existing.max_key_binding = issuer.max_key_binding;
  }
  for (const key of issuer.keys) {
    const at = existing.keys.findIndex((k: IssuerKey) => k.kid === key.kid);
    if (at < 0) {
      existing.keys.push(key);
    } else if (replace) {
      existing.keys[at] = key;
    } else {
      throw new TrustplaneError(
        'bundle_conflict',
        `issuer ${quote(issuer.issuer)} already has kid ${quote(key.kid)} (use replace to overwrite it)`,
      );
    }
  }
  return parseTrustMaterial(doc);
}

function mergeRouteSource(input: PolicyBundle, edit: RouteSourceEdit, replace: boolean): PolicyBundle {
  const doc = withoutSignature(parsePolicyBundle(input));
  const source = parseWith(policySourceSchema, edit.source, 'source');
  const route = findRoute(doc, edit.routeId);
  const at = route.allowed_sources.findIndex((s) => sameSelector(s, source));
  if (at < 0) {
    route.allowed_sources.push(source);
  } else if (replace) {
    route.allowed_sources[at] = source;
  } else {
    throw new TrustplaneError(
      'bundle_conflict',
      `route ${quote(edit.routeId)} already allows this source selector (use replace to overwrite it)`,
    );
  }
  return parsePolicyBundle(doc);
}

/**
 * Add a source to a document, returning a NEW unsigned document (the input is untouched; any old
 * `signed_by`/`signature` is dropped, so re-sign with `signDocument`).
 *
 * - Trust material + an issuer entry: adds the issuer, or adds its keys to an existing issuer of
 *   the same name. A kid the issuer already has, or different issuer attributes, is a conflict.
 * - Policy bundle + `{ routeId, source }`: adds an allowed source to the route. A source with the
 *   same selector (`source_type`, `issuer`, `trust_domain`, `subject_exact`/`subject_prefix`) is
 *   a conflict.
 *
 * @param doc the document to edit (validated)
 * @param addition the issuer, or the route id and source
 * @param options `replace: true` overwrites a conflicting kid / source instead of failing
 * @returns the edited, validated, unsigned document
 * @throws TrustplaneError `bundle_conflict`, `bundle_route_missing` (unknown route id),
 *   `invalid_bundle` (the input or the addition does not validate)
 * @example
 * const next = mergeSource(bundle, { routeId: 'orders.get', source }, { replace: false })
 */
export function mergeSource(
  doc: TrustMaterial,
  addition: TrustMaterialIssuer,
  options?: MergeSourceOptions,
): TrustMaterial;
export function mergeSource(
  doc: PolicyBundle,
  addition: RouteSourceEdit,
  options?: MergeSourceOptions,
): PolicyBundle;
export function mergeSource(
  doc: TrustMaterial | PolicyBundle,
  addition: TrustMaterialIssuer | RouteSourceEdit,
  options: MergeSourceOptions = {},
): TrustMaterial | PolicyBundle {
  const replace = options.replace === true;
  if (doc.kind === 'trust_material') return mergeIssuer(doc, addition as TrustMaterialIssuer, replace);
  return mergeRouteSource(doc, addition as RouteSourceEdit, replace);
}
