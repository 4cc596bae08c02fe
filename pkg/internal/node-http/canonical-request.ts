import type { IncomingMessage } from 'node:http';
import { normalizeQuery } from '../../proof/normalize-query.js';
import type { AllowDecision } from '../../verifier/index.js';
import { splitTarget } from './request-target.js';

/** `target` with its query replaced by `query` (already canonical). */
function withQuery(target: string, query: string): string {
  const { path } = splitTarget(target);
  return query === '' ? path : `${path}?${query}`;
}

/**
 * Hand the handlers of a Node point what the transcript covers. The query: `req.url` (what routers
 * and query parsers read) and Express's `req.originalUrl` get the canonical query (pair order,
 * escapes and `+` as verified). On an allow, the Host: `req.headers.host` becomes the authority the
 * transcript covered (`publicOrigin` or the API's `base_url`, when set), so a handler reading the
 * host cannot see another one.
 * @param req the request the point let through
 * @param allow the allow decision (undefined: a dry-run pass, whose query is normalized too)
 * @returns the canonical query now in `req.url` ('' when none)
 */
export function canonicalizeNodeRequest(req: IncomingMessage, allow: AllowDecision | undefined): string {
  const raw = splitTarget(req.url ?? '').query;
  const query = allow?.query ?? (raw === '' ? '' : normalizeQuery(raw));
  if (req.url !== undefined && (raw !== '' || query !== '')) req.url = withQuery(req.url, query);
  const r = req as IncomingMessage & { originalUrl?: unknown };
  if (typeof r.originalUrl === 'string' && r.originalUrl.includes('?'))
    r.originalUrl = withQuery(r.originalUrl, query);
  if (allow !== undefined && req.headers.host !== allow.authority) req.headers.host = allow.authority;
  return query;
}
