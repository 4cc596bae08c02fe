import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TrustplaneError } from '../../authcore/errors.js';
import type { AuditRequestInfo } from '../../audit/event-from-decision.js';
import type { NormalizedRequest } from '../../verifier/normalized-request.js';
import { assertSafeHeaderLines } from './critical-headers.js';
import { nodeHeaderSource } from './header-source.js';
import { readBody, type BodyRead, type BodyReadMode } from './read-body.js';
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

/** A budget of body bytes buffered at once, across requests (the adapter's `maxBufferedBodyBytes`). */
export interface ByteBudget {
  /** Take `bytes` from the budget; false when that would exceed it (nothing is taken then). */
  tryReserve(bytes: number): boolean;
  /** Give `bytes` back. */
  release(bytes: number): void;
}

/** Options for {@link readNodeRequest}. */
export interface ReadNodeRequestOptions {
  readonly maxBodyBytes: number;
  readonly mode: BodyReadMode;
  /** Buffered-bytes budget shared by all requests; beyond it a body is refused `overloaded`. */
  readonly budget?: ByteBudget;
}

/**
 * A request body, read and digested at most once, when first asked for (the pipeline asks only
 * after the credentials, route and policy checks passed). Its bytes count against the budget
 * until {@link NodeBody.release}.
 */
export class NodeBody {
  /** The request says it has a body (a non-zero `Content-Length`, or a `Transfer-Encoding`). */
  readonly declared: boolean;
  readonly #req: IncomingMessage;
  readonly #options: ReadNodeRequestOptions;
  #pending: Promise<BodyRead> | undefined;
  #result: BodyRead | undefined;
  #reserved = 0;

  constructor(req: IncomingMessage, options: ReadNodeRequestOptions) {
    this.#req = req;
    this.#options = options;
    const length = req.headers['content-length'];
    this.declared =
      req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0);
  }

  /** Read (once) and return the outcome. */
  read(): Promise<BodyRead> {
    this.#pending ??= this.#read();
    return this.#pending;
  }

  /** The outcome, once read. */
  get result(): BodyRead | undefined {
    return this.#result;
  }

  /** The pipeline's reader: the digest, or the refusal thrown. */
  readonly digest = async (): Promise<{ sha256: string; length: number; bytes: Uint8Array }> => {
    const r = await this.read();
    if (!r.ok) throw r.error;
    return { sha256: r.sha256, length: r.bytes.length, bytes: r.bytes };
  };

  /** Give the buffered bytes back to the budget (when the exchange is over). */
  release(): void {
    if (this.#reserved > 0) this.#options.budget?.release(this.#reserved);
    this.#reserved = 0;
  }

  async #read(): Promise<BodyRead> {
    const { budget, maxBodyBytes, mode } = this.#options;
    if (budget !== undefined && this.declared) {
      // Reserve the declared length (or the limit, for a chunked body) before buffering a byte.
      const length = Number(this.#req.headers['content-length'] ?? maxBodyBytes);
      const want = Math.min(Number.isFinite(length) ? length : maxBodyBytes, maxBodyBytes);
      if (!budget.tryReserve(want)) {
        this.#result = {
          ok: false,
          error: new TrustplaneError('overloaded', 'the buffered request bodies are at their limit'),
          drain: true,
        };
        return this.#result;
      }
      this.#reserved = want;
    }
    this.#result = await readBody(this.#req, maxBodyBytes, mode);
    return this.#result;
  }
}

/** A request read for verification (its body is read later, on demand). */
export interface NodeRequestRead {
  readonly ok: true;
  /** The request to decide: its `readBody` reads the body on demand. */
  readonly request: NormalizedRequest;
  readonly body: NodeBody;
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
 * origin-form and the header lines safe (no repeated critical header, no name an upstream would
 * merge with another); the body is read and digested in one pass, later, only when the pipeline
 * asks for it. Headers are read through {@link nodeHeaderSource} (every line, in order).
 * @param req the incoming request
 * @param view the method, raw target, scheme and authority to verify
 * @param options the body limit, read mode and budget
 * @returns the normalized request with its deferred body, or the refusal
 */
export function readNodeRequest(
  req: IncomingMessage,
  view: NodeRequestView,
  options: ReadNodeRequestOptions,
): NodeRequestRead | NodeRequestRefusal {
  let path: string;
  let query: string;
  try {
    ({ path, query } = originFormTarget(view.target));
    assertSafeHeaderLines(req.rawHeaders);
  } catch (e) {
    return { ok: false, error: e as TrustplaneError, drain: true };
  }
  // A declared length over the limit is refused from the head alone, before anything else.
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > options.maxBodyBytes) {
    return { ok: false, error: new TrustplaneError('body_too_large', 'request body too large'), drain: true };
  }
  const body = new NodeBody(req, options);
  return {
    ok: true,
    request: {
      method: view.method,
      scheme: view.scheme,
      authority: view.authority,
      path,
      query,
      headers: nodeHeaderSource(req),
      // Placeholders: readBody supplies the digest.
      bodySha256: '',
      bodyLength: 0,
      readBody: body.digest,
    },
    body,
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
