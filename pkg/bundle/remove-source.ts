import { TrustplaneError } from '../authcore/errors.js';
import { parsePolicyBundle } from './parse-policy-bundle.js';
import { parseTrustMaterial } from './parse-trust-material.js';
import type { PolicyBundle } from './policy-bundle-schema.js';
import {
  findRoute,
  quote,
  sameSelector,
  withoutSignature,
  type RouteSourceEdit,
  type SourceSelector,
} from './source-edit.js';
import type { TrustMaterial } from './trust-material-schema.js';

/** An issuer of trust material, or one of its keys when `kid` is set. */
export interface IssuerSelector {
  readonly issuer: string;
  readonly kid?: string;
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
