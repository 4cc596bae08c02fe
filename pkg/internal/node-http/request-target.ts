import { TrustplaneError } from '../../authcore/errors.js';

/** A raw request target split at its first `?`, without any normalization. */
export interface RequestTarget {
  /** The path exactly as sent. */
  readonly path: string;
  /** The query exactly as sent, without `?` (`''` when none). */
  readonly query: string;
}

/** Split a raw request target (`/path?query`) at the first `?`, without normalizing the path. */
export function splitTarget(target: string): RequestTarget {
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

/**
 * Split an origin-form request target. Absolute-form (`http://host/p`), authority-form and `*`
 * never reach routing: the path the verifier checks must be the one the upstream routes on.
 * @throws TrustplaneError `malformed_request`
 */
export function originFormTarget(target: string): RequestTarget {
  if (!target.startsWith('/')) {
    throw new TrustplaneError('malformed_request', 'request target is not in origin-form');
  }
  return splitTarget(target);
}
