import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { TrustplaneError } from '../authcore/errors.js';
import type { HeaderSource } from '../proof/transcript.js';
import { repeatedCriticalHeader } from '../middleware/node/request.js';

export { EMPTY_BODY_SHA256, splitTarget } from '../middleware/node/request.js';

/** A request body read in one pass: the exact bytes and their digest. */
export interface ReadBody {
  readonly bytes: Buffer;
  readonly sha256: string;
}

/**
 * Read a request body up to `maxBytes`, hashing while it streams (one pass).
 * @throws TrustplaneError `body_too_large` (the stream is left paused; the caller answers 413 and closes)
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<ReadBody> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(new TrustplaneError('body_too_large', 'request body too large'));
  }
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) {
        cleanup();
        req.pause();
        reject(new TrustplaneError('body_too_large', 'request body too large'));
        return;
      }
      hash.update(chunk);
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve({
        bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total),
        sha256: hash.digest('hex'),
      });
    };
    const onError = () => {
      cleanup();
      reject(new TrustplaneError('malformed_request', 'request body could not be read'));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onError);
  });
}

/** Header lookup over Node's parsed headers (repeated fields joined with ", ", RFC 9110 §5.3). */
export function nodeHeaderSource(headers: IncomingHttpHeaders): HeaderSource {
  return (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
}

/** Header value as one string. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * Refuse a request that repeats a header the decision depends on (see `repeatedCriticalHeader`).
 * @throws TrustplaneError `malformed_request`
 */
export function assertNoDuplicateCriticalHeaders(rawHeaders: readonly string[]): void {
  const repeated = repeatedCriticalHeader(rawHeaders);
  if (repeated !== undefined) throw new TrustplaneError('malformed_request', `repeated ${repeated} header`);
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus those a proxy must never pass on. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** The header names a `Connection` header lists (they are hop-by-hop too). */
export function connectionTokens(headers: IncomingHttpHeaders): Set<string> | undefined {
  const c = headerValue(headers, 'connection');
  if (c === undefined) return undefined;
  return new Set(
    c
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== ''),
  );
}

/** True when a header must not cross a proxy hop. */
export function isHopByHop(name: string, listed: Set<string> | undefined): boolean {
  return HOP_BY_HOP.has(name) || (listed !== undefined && listed.has(name));
}
