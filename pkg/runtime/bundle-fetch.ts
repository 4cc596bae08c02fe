import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { MAX_BUNDLE_BYTES } from './bundle-file.js';

/* Pulling a signed document from a bundle server or a static HTTP server (nginx, object storage). */

/** How verifiers reach a bundle URL. Secrets (the token, the client key) are never logged. */
export interface RemoteBundleOptions {
  /** Where the last good documents are kept (written atomically), to start from when the source is down. */
  readonly stateDir: string;
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** PEM CA certificates for an `https:` source (default: the system roots). */
  readonly ca?: string;
  /** PEM client certificate and key (mTLS). */
  readonly cert?: string;
  readonly key?: string;
  /**
   * Long-poll: each request asks the source to wait up to this long for a newer document
   * (`Prefer: wait=N`). A source that does not honour it (no `Preference-Applied`) is polled every
   * poll interval instead. 0 = plain polling.
   */
  readonly waitSeconds: number;
  /** Poll interval for sources without long-poll, and the base of the retry backoff (ms). */
  readonly pollIntervalMs: number;
  /** Time for one request beyond its wait (connect, headers, body), ms. */
  readonly timeoutMs: number;
}

/** Why a fetch failed (the `reason` label of `trustplane_bundle_fetches_total`). */
export type FetchFailure = 'network' | 'timeout' | 'http_status' | 'too_large' | 'unauthorized';

/** A fetch that did not yield a document. */
export class BundleFetchError extends Error {
  constructor(
    readonly reason: FetchFailure,
    message: string,
  ) {
    super(message);
    this.name = 'BundleFetchError';
  }
}

/** One answer of the source. */
export type FetchResult =
  | {
      readonly status: 200;
      readonly bytes: Buffer;
      readonly etag: string | undefined;
      readonly longPoll: boolean;
    }
  | { readonly status: 304; readonly longPoll: boolean };

/** Is this bundle location a URL (pulled) rather than a file? */
export function isBundleUrl(location: string): boolean {
  return /^https?:\/\//i.test(location);
}

/**
 * Whether a bundle URL sends what it carries in cleartext beyond this machine: `http:` to a host
 * other than `localhost`, `127.0.0.0/8` or `::1`.
 */
export function isCleartextRemoteUrl(location: string): boolean {
  let u: URL;
  try {
    u = new URL(location);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:') return false;
  const host = u.hostname.toLowerCase();
  return !(host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host));
}

/** A URL without its query or credentials, for logs and errors (a file path as is). */
export function redactUrl(url: string): string {
  if (!isBundleUrl(url)) return url;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return 'invalid URL';
  }
}

const agents = new WeakMap<RemoteBundleOptions, HttpAgent | HttpsAgent>();
function agentFor(url: URL, options: RemoteBundleOptions): HttpAgent | HttpsAgent {
  let agent = agents.get(options);
  if (agent === undefined) {
    agent =
      url.protocol === 'https:'
        ? new HttpsAgent({
            keepAlive: true,
            maxSockets: 4,
            ...(options.ca !== undefined ? { ca: options.ca } : {}),
            ...(options.cert !== undefined ? { cert: options.cert } : {}),
            ...(options.key !== undefined ? { key: options.key } : {}),
          })
        : new HttpAgent({ keepAlive: true, maxSockets: 4 });
    agents.set(options, agent);
  }
  return agent;
}

/** Close the keep-alive connections of these options' agent. */
export function closeFetchAgent(options: RemoteBundleOptions): void {
  agents.get(options)?.destroy();
  agents.delete(options);
}

/**
 * GET one document: `If-None-Match` with the last ETag seen, `Prefer: wait=N` to long-poll. The
 * body is bounded by {@link MAX_BUNDLE_BYTES}; the whole request by its wait plus `timeoutMs`.
 * @throws BundleFetchError
 */
export function fetchDocument(
  location: string,
  options: RemoteBundleOptions,
  state: { readonly etag?: string | undefined; readonly waitSeconds: number; readonly signal?: AbortSignal },
): Promise<FetchResult> {
  const url = new URL(location);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (state.etag !== undefined) headers['if-none-match'] = state.etag;
  if (state.waitSeconds > 0 && state.etag !== undefined) headers.prefer = `wait=${state.waitSeconds}`;
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const limitMs = state.waitSeconds * 1000 + options.timeoutMs;
  return new Promise((resolve, reject) => {
    let settled = false;
    // One listener per request on a signal shared by every poll: removed when the request settles,
    // or a long-running verifier accumulates one (holding its request) per fetch.
    const onAbort = () => fail('network', 'aborted');
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      state.signal?.removeEventListener('abort', onAbort);
      return true;
    };
    const fail = (reason: FetchFailure, message: string) => {
      if (!settle()) return;
      req.destroy();
      reject(new BundleFetchError(reason, message));
    };
    const req = send(
      url,
      { method: 'GET', headers, agent: agentFor(url, options) },
      (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const longPoll = /(?:^|[,;\s])wait=\d+/.test(String(res.headers['preference-applied'] ?? ''));
        if (status === 304) {
          res.resume();
          // Not modified from nothing: no document was ever fetched, so this is no contact.
          if (state.etag === undefined) {
            fail('http_status', 'HTTP 304 to a request without If-None-Match');
            return;
          }
          if (settle()) resolve({ status: 304, longPoll });
          return;
        }
        if (status !== 200) {
          res.resume();
          fail(status === 401 || status === 403 ? 'unauthorized' : 'http_status', `HTTP ${status}`);
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BUNDLE_BYTES) fail('too_large', 'document larger than the bundle size limit');
          else chunks.push(c);
        });
        res.on('end', () => {
          if (!settle()) return;
          const etag = res.headers.etag;
          resolve({
            status: 200,
            bytes: Buffer.concat(chunks),
            etag: typeof etag === 'string' ? etag : undefined,
            longPoll,
          });
        });
        res.on('error', (e) => fail('network', e.message));
      },
    );
    const timer = setTimeout(() => fail('timeout', `no answer within ${limitMs} ms`), limitMs);
    req.on('error', (e) => fail('network', e.message));
    if (state.signal?.aborted === true) {
      fail('network', 'aborted');
      return;
    }
    state.signal?.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}

/** Write `bytes` to `<dir>/<file>` atomically (temporary file, fsync, rename). */
export async function persistDocument(dir: string, file: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const target = join(dir, file);
  const tmp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
