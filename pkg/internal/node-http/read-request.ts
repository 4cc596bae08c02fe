import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TrustplaneError } from '../../authcore/errors.js';
import type { AuditRequestInfo } from '../../audit/event-from-decision.js';
import type { NormalizedRequest } from '../../verifier/normalized-request.js';
import { assertSafeHeaderLines } from './critical-headers.js';
import { nodeHeaderSource } from './header-source.js';
import { readBody, type BodyReadMode } from './read-body.js';
import { originFormTarget } from './request-target.js';

/** What the enforcement point saw of the request, before it reads it. */
export interface NodeRequestView {
  /** The method to verify (forward-auth: the original request's). */
  readonly method: string;
  /** The raw request target to verify (`/path?query`, exactly as sent). */
  readonly target: string;
  /** The scheme the caller used. */
  readonly scheme: string;
  /** `host[:port]` the caller addressed, lowercase. */
  readonly authority: string;
}

/** Options for {@link readNodeRequest}. */
export interface ReadNodeRequestOptions {
  readonly maxBodyBytes: number;
  readonly mode: BodyReadMode;
}

/** A request read for verification. */
export interface NodeRequestRead {
  readonly ok: true;
  readonly request: NormalizedRequest;
  /** The exact body bytes (empty when there is none). */
  readonly body: Buffer;
}

/** A request the reading layer refused: the kernel records and answers `error`. */
export interface NodeRequestRefusal {
  readonly ok: false;
  readonly error: TrustplaneError;
  /** Answer with `Connection: close` and discard the rest of the body. */
  readonly drain: boolean;
  /** The body was consumed by an earlier parser (a misconfiguration worth logging once). */
  readonly misconfigured?: true;
}

/**
 * The one Node reading layer every Node enforcement point uses: the request target must be in
 * origin-form, headers a decision depends on must not repeat, and the body is read and digested
 * in the same pass. Headers are read through {@link nodeHeaderSource} (every line, in order).
 * @param req the incoming request
 * @param view the method, raw target, scheme and authority to verify
 * @param options the body limit and read mode
 * @returns the normalized request and body bytes, or the refusal
 */
export async function readNodeRequest(
  req: IncomingMessage,
  view: NodeRequestView,
  options: ReadNodeRequestOptions,
): Promise<NodeRequestRead | NodeRequestRefusal> {
  let path: string;
  let query: string;
  try {
    ({ path, query } = originFormTarget(view.target));
    assertSafeHeaderLines(req.rawHeaders);
  } catch (e) {
    return { ok: false, error: e as TrustplaneError, drain: false };
  }
  const body = await readBody(req, options.maxBodyBytes, options.mode);
  if (!body.ok) {
    return {
      ok: false,
      error: body.error,
      drain: body.drain,
      ...(body.misconfigured ? { misconfigured: true as const } : {}),
    };
  }
  return {
    ok: true,
    request: {
      method: view.method,
      scheme: view.scheme,
      authority: view.authority,
      path,
      query,
      headers: nodeHeaderSource(req),
      bodySha256: body.sha256,
      bodyLength: body.bytes.length,
    },
    body: body.bytes,
  };
}

/**
 * The request facts of an audit event: method, authority, raw path, the query's SHA-256 (never the
 * query), the request id and the client address.
 */
export function auditRequestInfo(
  view: NodeRequestView,
  extra: { readonly requestId?: string | undefined; readonly clientAddress?: string | undefined },
): AuditRequestInfo {
  const q = view.target.indexOf('?');
  const path = q < 0 ? view.target : view.target.slice(0, q);
  const query = q < 0 ? '' : view.target.slice(q + 1);
  return {
    method: view.method,
    path,
    ...(view.authority !== '' ? { authority: view.authority } : {}),
    ...(query !== '' ? { querySha256: createHash('sha256').update(query).digest('hex') } : {}),
    ...(extra.requestId !== undefined && extra.requestId !== '' ? { requestId: extra.requestId } : {}),
    ...(extra.clientAddress !== undefined ? { clientAddress: extra.clientAddress } : {}),
  };
}
