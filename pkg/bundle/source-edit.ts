import { TrustplaneError } from '../authcore/errors.js';
import type { PolicyBundle, PolicySource } from './policy-bundle-schema.js';

/*
 * What {@link mergeSource} and {@link removeSource} share: the route edit and the source selector
 * they take, and the steps of editing a document (those are internal to pkg/bundle).
 */

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

export const quote = (value: string) =>
  JSON.stringify(value.length > 128 ? `${value.slice(0, 127)}…` : value);

export function sameSelector(a: SourceSelector, b: SourceSelector): boolean {
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
export function withoutSignature<T extends { signed_by?: unknown; signature?: unknown }>(doc: T): T {
  const copy = { ...doc };
  delete copy.signed_by;
  delete copy.signature;
  return copy;
}

export function findRoute(doc: PolicyBundle, routeId: string) {
  for (const group of doc.route_groups) {
    for (const route of group.routes) if (route.route_id === routeId) return route;
  }
  throw new TrustplaneError('bundle_route_missing', `no route with route_id ${quote(routeId)}`);
}
