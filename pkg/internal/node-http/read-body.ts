import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TrustplaneError } from '../../authcore/errors.js';

/** SHA-256 of the empty body. */
export const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const EMPTY = Buffer.alloc(0);

/** How the body is read. */
export type BodyReadMode =
  /** Keep the bytes (proxy, forward-auth): the point forwards or discards them itself. */
  | 'buffer'
  /**
   * Put the bytes back in front of the stream (`readable.unshift`) so that handlers downstream
   * (body parsers, `req.pipe`) read them as if untouched (Node middleware).
   */
  | 'restore';

/** A body read in one pass: the exact bytes and their digest. */
export interface BodyBytes {
  readonly ok: true;
  readonly bytes: Buffer;
  /** Lowercase hex SHA-256 of `bytes`. */
  readonly sha256: string;
}

/** A body that could not be read. */
export interface BodyRefusal {
  readonly ok: false;
  /** `body_too_large`, `malformed_request` or `internal_error`. */
  readonly error: TrustplaneError;
  /**
   * The rest of the body may still be arriving: answer with `Connection: close` and discard it
   * (`req.resume()`) instead of reading it for keep-alive.
   */
  readonly drain: boolean;
  /** The body was consumed before the middleware ran (a misconfiguration worth logging once). */
  readonly misconfigured?: true;
}

/** The result of {@link readBody}. */
export type BodyRead = BodyBytes | BodyRefusal;

const tooLarge = (drain: boolean): BodyRefusal => ({
  ok: false,
  error: new TrustplaneError('body_too_large', 'request body too large'),
  drain,
});

const CONSUMED_BODY =
  'the request body was consumed by an earlier body parser and only its parsed form is left; ' +
  'register trustplane() before express.json()/text()/urlencoded() (a Buffer req.body from ' +
  'express.raw() is accepted when the request has no Content-Encoding)';

/**
 * Read and digest a request body in one pass, up to `maxBytes` (a larger `Content-Length` is
 * refused before reading). RFC 9112 §6.3: without `Transfer-Encoding` and `Content-Length` there is
 * no body. In `restore` mode a body already consumed by a parser is accepted only as a raw
 * `Buffer` `req.body` of an unencoded request (`express.raw()`); anything else is a
 * misconfiguration (`internal_error`).
 *
 * Chunks are pulled with `read(readableLength)`: an explicit size never makes the stream emit
 * 'end' (a bare `read()` at EOF would), and `unshift` is allowed until 'end' has been emitted.
 * @param req the incoming request
 * @param maxBytes the largest body accepted
 * @param mode `buffer` or `restore`
 * @returns the bytes and digest, or the refusal
 */
export function readBody(
  req: IncomingMessage,
  maxBytes: number,
  mode: BodyReadMode,
): Promise<BodyRead> | BodyRead {
  const contentLength = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (!chunked && (contentLength === undefined || Number(contentLength) === 0)) {
    return { ok: true, bytes: EMPTY, sha256: EMPTY_BODY_SHA256 };
  }
  if (contentLength !== undefined && Number(contentLength) > maxBytes) return tooLarge(true);
  if (req.readableEnded || req.readableDidRead) return consumedBody(req, maxBytes, mode);
  if (req.complete && req.readableLength === 0) {
    // Fully received and nothing buffered: an empty (chunked) body. Leave the stream untouched.
    return { ok: true, bytes: EMPTY, sha256: EMPTY_BODY_SHA256 };
  }
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (result: BodyRead) => {
      req.off('readable', onReadable);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      resolve(result);
    };
    const onReadable = () => {
      while (req.readableLength > 0) {
        const chunk = req.read(req.readableLength) as Buffer | null;
        if (chunk === null) break;
        total += chunk.length;
        if (total > maxBytes) {
          finish(tooLarge(true));
          return;
        }
        hash.update(chunk);
        chunks.push(chunk);
      }
      if (req.complete) {
        const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
        finish({ ok: true, bytes, sha256: hash.digest('hex') });
        if (mode === 'restore') {
          if (total > 0) req.unshift(bytes);
        } else {
          // Nothing is left to read: let the stream end so the connection can serve the next request.
          req.resume();
        }
      }
    };
    const onEnd = () => {
      // Not expected (nothing here reads past EOF); with bytes read they could not be restored.
      if (total === 0) finish({ ok: true, bytes: EMPTY, sha256: EMPTY_BODY_SHA256 });
      else {
        finish({
          ok: false,
          error: new TrustplaneError('internal_error', 'request stream ended early'),
          drain: false,
        });
      }
    };
    const onError = () =>
      finish({
        ok: false,
        error: new TrustplaneError('malformed_request', 'request body could not be read'),
        drain: false,
      });
    const onClose = () => {
      if (!req.complete) onError();
    };
    // Start the underlying read first, so attaching 'readable' does not schedule a read(0) that
    // would end an already-finished empty stream.
    if (req.readableLength === 0) req.read(0);
    req.on('readable', onReadable);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** A body some earlier handler already read: only an unencoded raw `Buffer` can stand for the bytes. */
function consumedBody(req: IncomingMessage, maxBytes: number, mode: BodyReadMode): BodyRead {
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  const encoding = req.headers['content-encoding']?.trim().toLowerCase() ?? 'identity';
  if (mode === 'restore' && Buffer.isBuffer(parsed) && encoding === 'identity' && req.readableEnded) {
    if (parsed.length > maxBytes) return tooLarge(false);
    return { ok: true, bytes: parsed, sha256: createHash('sha256').update(parsed).digest('hex') };
  }
  return {
    ok: false,
    error: new TrustplaneError('internal_error', CONSUMED_BODY),
    drain: false,
    misconfigured: true,
  };
}
