import { TrustplaneError } from '../authcore/errors.js';
import { parsePolicyBundle, parseTrustMaterial, parseWith } from './parse.js';
import {
  type IssuerKey,
  type PolicyBundle,
  type PolicySource,
  policySourceSchema,
  type TrustMaterial,
  type TrustMaterialIssuer,
  trustedIssuerSchema,
} from './schemas.js';

/** Options for {@link mergeSource}. */
export interface MergeSourceOptions {
  /** Replace an existing kid / source selector instead of failing with `bundle_conflict`. */
  readonly replace?: boolean;
}

/** A source to add to (or, in {@link removeSource}, select on) one route of a policy bundle. */
export interface RouteSourceEdit<S = PolicySource> {
  readonly routeId: string;
  readonly source: S;
}

/**
 * What identifies an allowed source: two sources with the same selector are the same rule.
 * Exactly one of `subject_exact` / `subject_prefix`.
 */
export type SourceSelector = Pick<
  PolicySource,
  'source_type' | 'issuer' | 'trust_domain' | 'subject_exact' | 'subject_prefix'
>;

/** An issuer of trust material, or one of its keys when `kid` is set. */
export interface IssuerSelector {
  readonly issuer: string;
  readonly kid?: string;
}

const quote = (value: string) => JSON.stringify(value.length > 128 ? `${value.slice(0, 127)}…` : value);

function sameSelector(a: SourceSelector, b: SourceSelector): boolean {
  return (
    a.source_type === b.source_type &&
    a.issuer === b.issuer &&
    a.trust_domain === b.trust_domain &&
    a.subject_exact === b.subject_exact &&
    a.subject_prefix === b.subject_prefix
  );
}

/**
 * The document without `signed_by`/`signature`: an edited document is unsigned until re-signed.
 * Callers pass a freshly parsed document (zod output is a deep copy), so edits never reach the input.
 */
function withoutSignature<T extends { signed_by?: unknown; signature?: unknown }>(doc: T): T {
  const copy = { ...doc };
  delete copy.signed_by;
  delete copy.signature;
  return copy;
}

function findRoute(doc: PolicyBundle, routeId: string) {
  for (const group of doc.route_groups) {
    for (const route of group.routes) if (route.route_id === routeId) return route;
  }
  throw new TrustplaneError('bundle_route_missing', `no route with route_id ${quote(routeId)}`);
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

function removeIssuer(input: TrustMaterial, selector: IssuerSelector): TrustMaterial {
  const doc = withoutSignature(parseTrustMaterial(input));
  const at = doc.issuers.findIndex((i) => i.issuer === selector.issuer);
  const issuer = doc.issuers[at];
  if (!issuer) throw new TrustplaneError('bundle_source_not_found', `no issuer ${quote(selector.issuer)}`);
  if (selector.kid === undefined) {
    doc.issuers.splice(at, 1);
    return parseTrustMaterial(doc);
  }
  const keyAt = issuer.keys.findIndex((k) => k.kid === selector.kid);
  if (keyAt < 0) {
    throw new TrustplaneError(
      'bundle_source_not_found',
      `issuer ${quote(selector.issuer)} has no kid ${quote(selector.kid)}`,
    );
  }
  if (issuer.keys.length === 1) {
    throw new TrustplaneError(
      'bundle_conflict',
      `kid ${quote(selector.kid)} is the last key of issuer ${quote(selector.issuer)}; remove the issuer instead`,
    );
  }
  issuer.keys.splice(keyAt, 1);
  return parseTrustMaterial(doc);
}

function removeRouteSource(input: PolicyBundle, edit: RouteSourceEdit<SourceSelector>): PolicyBundle {
  const doc = withoutSignature(parsePolicyBundle(input));
  const route = findRoute(doc, edit.routeId);
  const at = route.allowed_sources.findIndex((s) => sameSelector(s, edit.source));
  if (at < 0) {
    throw new TrustplaneError('bundle_source_not_found', `route ${quote(edit.routeId)} has no such source`);
  }
  if (route.allowed_sources.length === 1) {
    throw new TrustplaneError(
      'bundle_conflict',
      `refusing to remove the last allowed source of route ${quote(edit.routeId)}; a route needs at least one`,
    );
  }
  route.allowed_sources.splice(at, 1);
  return parsePolicyBundle(doc);
}

/**
 * Remove a source from a document, returning a NEW unsigned document (input untouched, old
 * signature dropped).
 *
 * - Trust material + `{ issuer }`: removes the issuer; `{ issuer, kid }` removes one key (not the
 *   issuer's last one).
 * - Policy bundle + `{ routeId, source: selector }`: removes the matching allowed source (not the
 *   route's last one).
 *
 * @param doc the document to edit (validated)
 * @param selector what to remove
 * @returns the edited, validated, unsigned document
 * @throws TrustplaneError `bundle_source_not_found` (nothing matches), `bundle_route_missing` (unknown
 *   route id), `bundle_conflict` (last key of an issuer / last source of a route), `invalid_bundle`
 * @example
 * const next = removeSource(trust, { issuer: 'https://issuer.example/software-jwks', kid: 'old-2025' })
 */
export function removeSource(doc: TrustMaterial, selector: IssuerSelector): TrustMaterial;
export function removeSource(doc: PolicyBundle, selector: RouteSourceEdit<SourceSelector>): PolicyBundle;
export function removeSource(
  doc: TrustMaterial | PolicyBundle,
  selector: IssuerSelector | RouteSourceEdit<SourceSelector>,
): TrustMaterial | PolicyBundle {
  if (doc.kind === 'trust_material') return removeIssuer(doc, selector as IssuerSelector);
  return removeRouteSource(doc, selector as RouteSourceEdit<SourceSelector>);
}
