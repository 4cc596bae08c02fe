import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, basename } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import { TrustplaneError } from '../authcore/errors.js';
import { DEFAULT_SKEW_SECONDS } from '../authcore/verify-passport.js';
import type { SigningKey } from '../authcore/signing-key.js';
import type { VerifyKey } from '../authcore/verify-key.js';
import {
  buildPolicyBundle,
  buildTrustMaterial,
  loadPolicyBundle,
  loadTrustMaterial,
  shortestRouteLimitSeconds,
  signDocument,
  type PolicyBundle,
} from '../bundle/index.js';
import { contentDigest } from './bundle-file.js';
import { createLogger, type Logger } from './logger.js';

/** File names of the two documents under the server's root (and of a static mirror). */
export const BUNDLE_DOCUMENTS = Object.freeze({
  trust_material: 'trust-material.json',
  policy: 'policy-bundle.json',
} as const);

/** Which document. */
export type BundleDocumentName = keyof typeof BUNDLE_DOCUMENTS;

/**
 * What signs the published documents. A file or environment key implements it with
 * {@link keyBundleSigner}; a KMS signer implements the same three members (its `sign` calls the
 * KMS with the canonical signing input and returns the 64-byte Ed25519 signature).
 */
export interface BundleSigner {
  /** `signed_by.issuer` of every document. */
  readonly issuer: string;
  /** `signed_by.kid`: the key id verifiers pin. */
  readonly kid: string;
  /** The public key: the server verifies each document with it before serving it. */
  readonly publicKey: VerifyKey;
  /** Pure Ed25519 over `input`. */
  sign(input: Uint8Array): Promise<Uint8Array>;
}

/** A {@link BundleSigner} over a private key held in memory (read from a file or the environment). */
export function keyBundleSigner(
  key: SigningKey,
  id: { readonly issuer: string; readonly kid: string },
): BundleSigner {
  if (id.issuer === '' || id.kid === '') throw new TypeError('keyBundleSigner: issuer and kid are required');
  return Object.freeze({
    issuer: id.issuer,
    kid: id.kid,
    publicKey: key.publicKey,
    sign: (input: Uint8Array) => key.sign(input),
  });
}

/** The unsigned documents of one publication (each with `issued_at = now`). */
export interface UnsignedDocuments {
  readonly trust: Readonly<Record<string, unknown>>;
  readonly policy: Readonly<Record<string, unknown>>;
}

/**
 * A builder reading the `bundle build` configs at each publication (so an edit is published as
 * is): `buildTrustMaterial` and `buildPolicyBundle` with `issued_at = now`.
 * @throws TrustplaneError `invalid_bundle` (at publication) for a config that does not validate
 */
export function configFileBuilder(files: {
  readonly trustConfig: string;
  readonly policyConfig: string;
}): (now: number) => UnsignedDocuments {
  const read = (file: string): never => {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as never;
    } catch (e) {
      throw new TrustplaneError(
        'invalid_bundle',
        `${basename(file)}: ${e instanceof SyntaxError ? 'invalid JSON' : 'cannot read'}`,
      );
    }
  };
  return (now) => ({
    trust: buildTrustMaterial(read(files.trustConfig), now),
    policy: buildPolicyBundle(read(files.policyConfig), now),
  });
}

/** Options for {@link startBundleServer}. */
export interface BundleServerOptions {
  /** host:port (default 127.0.0.1:8443; port 0 = any free port). */
  readonly listen?: string;
  readonly signer: BundleSigner;
  /** Builds the unsigned documents for a publication at `now`. */
  readonly build: (now: number) => UnsignedDocuments | Promise<UnsignedDocuments>;
  /** Files whose change publishes at once (their directories are watched; 100 ms debounce). */
  readonly watchFiles?: readonly string[];
  /**
   * Re-sign interval, seconds. Default: a third of the shortest `bounded` or `realtime` limit of
   * the published policy (100 s for the default 300 s; at least 1 s), or 3600 s when every route is
   * `offline-ok`.
   */
  readonly resignIntervalSeconds?: number;
  /** Longest long-poll a request may ask for (`?wait=N` / `Prefer: wait=N`), seconds (default 60). */
  readonly maxWaitSeconds?: number;
  /**
   * Most long-poll requests held at once, all documents and fetchers together (default 1,000).
   * Beyond it a request is answered at once (200 or 304, no `Preference-Applied`, so the fetcher
   * falls back to its poll interval) and counted in `trustplane_bundle_server_waits_refused_total`.
   */
  readonly maxWaitingRequests?: number;
  /** Fetchers must send `Authorization: Bearer <token>` (compared in constant time, never logged). */
  readonly bearerToken?: string;
  /** Serve HTTPS (PEM text); with `clientCa`, fetchers must present a certificate it issued (mTLS). */
  readonly tls?: { readonly cert: string; readonly key: string; readonly clientCa?: string };
  readonly log?: Logger;
  /** Epoch seconds (default system clock). */
  readonly clock?: () => number;
}

/** One published document. */
export interface PublishedDocument {
  readonly bytes: Buffer;
  /** Strong ETag: `"sha256-<hex of the bytes>"`. */
  readonly etag: string;
  readonly issuedAt: number;
}

/** A running bundle server. */
export interface BundleServer {
  /** `http(s)://host:port` (documents at `/<name>`: {@link BUNDLE_DOCUMENTS}). */
  readonly url: string;
  readonly address: AddressInfo;
  readonly registry: Registry;
  /** The documents being served. */
  current(): Readonly<Record<BundleDocumentName, PublishedDocument>>;
  /** Build, sign, self-verify and publish now. Resolves false (and keeps serving the last good) on failure. */
  publish(trigger: string): Promise<boolean>;
  /** Stop serving (open long-polls are cut). */
  close(): Promise<void>;
}

const MAX_WAIT_DEFAULT = 60;
const MAX_WAITING_DEFAULT = 1_000;
const OFFLINE_RESIGN_SECONDS = 3_600;

function etagOf(bytes: Buffer): string {
  return `"sha256-${createHash('sha256').update(bytes).digest('hex')}"`;
}

/** The wait asked for: `?wait=N` or `Prefer: wait=N` (RFC 7240), capped; 0 when none. */
function requestedWait(req: IncomingMessage, url: URL, max: number): number {
  let raw = url.searchParams.get('wait') ?? undefined;
  const prefer = req.headers.prefer;
  if (raw === undefined && typeof prefer === 'string') raw = /(?:^|[,;\s])wait=(\d{1,6})/i.exec(prefer)?.[1];
  const n = raw !== undefined && /^\d{1,6}$/.test(raw) ? Number(raw) : 0;
  return Math.min(n, max);
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  if (i < 0) throw new TypeError(`listen must be host:port, got ${JSON.stringify(listen)}`);
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

/**
 * Start the bundle publisher: build the trust material and policy bundle, sign them, verify the
 * signed bytes with the signer's public key and the loaders' checks, and serve them over HTTP(S):
 *
 * - `GET /trust-material.json`, `GET /policy-bundle.json`: the signed document, strong `ETag`
 *   (SHA-256 of the bytes), `If-None-Match` → 304; long-poll with `?wait=N` or `Prefer: wait=N`
 *   (the request waits up to N s, at most `maxWaitSeconds`, for an ETag other than the one sent;
 *   the answer carries `Preference-Applied: wait=N`).
 * - `GET /healthz`: 200 while documents are served; `GET /metrics`: Prometheus text.
 *
 * It re-signs with a fresh `issued_at` every `resignIntervalSeconds` and at once when a watched
 * file changes. Each publication's `issued_at` is later than the last one's (the clock, or the last
 * plus 1 s when the clock has not moved on), so no two different documents share one. A publication
 * that fails (bad config, signer error, a document that does not verify, an `issued_at` older than
 * the one served, or the one served with other content, or one beyond the 30 s clock skew, which is
 * also what the clock going back more than that leads to) is logged and counted, and the last good
 * documents stay: it never serves an unsigned or older document. The first publication must
 * succeed, or start fails.
 *
 * @throws TrustplaneError `invalid_bundle` (first publication), or the listen error; RangeError for
 *   a `maxWaitingRequests` that is not a positive integer
 * @example
 * const server = await startBundleServer({ signer: keyBundleSigner(key, { issuer, kid }),
 *   build: configFileBuilder({ trustConfig, policyConfig }), watchFiles: [trustConfig, policyConfig] })
 */
export async function startBundleServer(options: BundleServerOptions): Promise<BundleServer> {
  const log = options.log ?? createLogger('info');
  const clock = options.clock ?? (() => Math.floor(Date.now() / 1000));
  const maxWait = options.maxWaitSeconds ?? MAX_WAIT_DEFAULT;
  const maxWaiting = options.maxWaitingRequests ?? MAX_WAITING_DEFAULT;
  if (!Number.isSafeInteger(maxWaiting) || maxWaiting < 1)
    throw new RangeError('startBundleServer: maxWaitingRequests must be a positive integer');
  const registry = new Registry();
  const registers = [registry];
  const publications = new Counter({
    name: 'trustplane_bundle_server_publications_total',
    help: 'Publications (build, sign, self-verify) by trigger (start, schedule, watch) and result (success, failure).',
    labelNames: ['trigger', 'result'],
    registers,
  });
  const requests = new Counter({
    name: 'trustplane_bundle_server_requests_total',
    help: 'Document requests by document and status (200, 304, 401, 404).',
    labelNames: ['document', 'status'],
    registers,
  });
  const waiting = new Gauge({
    name: 'trustplane_bundle_server_waiting_requests',
    help: 'Long-poll requests waiting for a newer document.',
    registers,
  });
  const waitsRefused = new Counter({
    name: 'trustplane_bundle_server_waits_refused_total',
    help: 'Long-poll requests answered at once because maxWaitingRequests were already waiting.',
    registers,
  });
  const issuedGauge = new Gauge({
    name: 'trustplane_bundle_server_issued_timestamp_seconds',
    help: 'issued_at of the document served, by bundle.',
    labelNames: ['bundle'],
    registers,
  });
  const tokenDigest =
    options.bearerToken !== undefined ? createHash('sha256').update(options.bearerToken).digest() : undefined;

  let current: Record<BundleDocumentName, PublishedDocument & { readonly content: string }> | undefined;
  let resignSeconds = options.resignIntervalSeconds ?? OFFLINE_RESIGN_SECONDS;
  const waiters = new Set<{ name: BundleDocumentName; etag: string; wake: () => void }>();

  async function sign(doc: Readonly<Record<string, unknown>>): Promise<Record<string, unknown>> {
    return (await signDocument(
      doc,
      { sign: (input) => options.signer.sign(input) },
      {
        issuer: options.signer.issuer,
        kid: options.signer.kid,
      },
    )) as Record<string, unknown>;
  }

  let chain: Promise<unknown> = Promise.resolve();
  type Published = PublishedDocument & { readonly content: string };
  const signers = [{ kid: options.signer.kid, key: options.signer.publicKey }];
  /** Build and sign at `now`, then the self-check: exactly what a verifier pinned to this signer runs. */
  const buildSigned = async (now: number) => {
    const unsigned = await options.build(now);
    const [trust, policy] = [await sign(unsigned.trust), await sign(unsigned.policy)];
    const loadedTrust = await loadTrustMaterial(trust, { signers, now });
    const loadedPolicy = await loadPolicyBundle(policy, { signers, now });
    const docs = [
      ['trust_material', trust, loadedTrust.issuedAt],
      ['policy', policy, loadedPolicy.issuedAt],
    ] as const;
    return { docs, loadedPolicy };
  };
  /** A document with the issued_at of the one served but other content (verifiers refuse it). */
  const conflicts = (docs: Awaited<ReturnType<typeof buildSigned>>['docs']) =>
    docs.some(([name, doc, issuedAt]) => {
      const served = current?.[name];
      return served !== undefined && issuedAt === served.issuedAt && contentDigest(doc) !== served.content;
    });
  const checkClock = (now: number, clockNow: number, last: number) => {
    if (now > clockNow + DEFAULT_SKEW_SECONDS)
      throw new TrustplaneError(
        'bundle_conflict',
        `the clock went back: it is ${last - clockNow} s behind the last issued_at (${last}); publication resumes when it is within ${DEFAULT_SKEW_SECONDS} s of it, or restart the server to publish at the clock's time`,
      );
  };
  const publishNow = async (trigger: string): Promise<boolean> => {
    try {
      const clockNow = clock();
      // Never two different documents under one issued_at: verifiers could not order them
      // (replaying the one without a revocation would undo it). A publication in the second of
      // the last one (or with the clock gone back a little) keeps its issued_at when nothing
      // changed, so verifiers see no new document, and takes the last plus 1 s when something did.
      const last =
        current !== undefined
          ? Math.max(current.trust_material.issuedAt, current.policy.issuedAt)
          : undefined;
      let now = last !== undefined ? Math.max(clockNow, last) : clockNow;
      if (last !== undefined) checkClock(now, clockNow, last);
      let built = await buildSigned(now);
      if (last !== undefined && now === last && conflicts(built.docs)) {
        now = last + 1;
        checkClock(now, clockNow, last);
        built = await buildSigned(now);
      }
      const { docs, loadedPolicy } = built;
      const next = {} as Record<BundleDocumentName, Published>;
      for (const [name, doc, issuedAt] of docs) {
        if (issuedAt === undefined) throw new TrustplaneError('invalid_bundle', `${name} has no issued_at`);
        if (issuedAt > clockNow + DEFAULT_SKEW_SECONDS)
          throw new TrustplaneError(
            'bundle_not_yet_valid',
            `refusing to publish ${name} issued ${issuedAt - clockNow} s in the future (verifiers refuse it)`,
          );
        const served = current?.[name];
        if (served !== undefined && issuedAt < served.issuedAt)
          throw new TrustplaneError(
            'bundle_conflict',
            `refusing to publish ${name} older than the one served (issued_at ${issuedAt} < ${served.issuedAt}): the clock went back`,
          );
        const content = contentDigest(doc);
        if (served !== undefined && issuedAt === served.issuedAt) {
          // The same content under the same issued_at is no change; other content (a builder that
          // keeps its own issued_at) is refused, as verifiers refuse it.
          if (content !== served.content)
            throw new TrustplaneError(
              'bundle_conflict',
              `refusing to publish ${name} with the issued_at of the one served (${issuedAt}) and other content`,
            );
          next[name] = served;
          continue;
        }
        const bytes = Buffer.from(`${JSON.stringify(doc)}\n`);
        next[name] = { bytes, etag: etagOf(bytes), issuedAt, content };
      }
      current = next;
      if (options.resignIntervalSeconds === undefined) {
        const shortest = shortestRouteLimitSeconds(loadedPolicy.document as PolicyBundle);
        resignSeconds =
          shortest === undefined ? OFFLINE_RESIGN_SECONDS : Math.max(1, Math.floor(shortest / 3));
      }
      issuedGauge.set({ bundle: 'trust_material' }, next.trust_material.issuedAt);
      issuedGauge.set({ bundle: 'policy' }, next.policy.issuedAt);
      publications.inc({ trigger, result: 'success' });
      log.info('bundles published', {
        trigger,
        issued_at: now,
        policy_etag: next.policy.etag,
        trust_material_etag: next.trust_material.etag,
        resign_interval_seconds: resignSeconds,
      });
      for (const w of [...waiters]) if (next[w.name].etag !== w.etag) w.wake();
      return true;
    } catch (e) {
      publications.inc({ trigger, result: 'failure' });
      log.error('publication failed; serving the last good documents', {
        trigger,
        reason: e instanceof TrustplaneError ? e.reason : 'internal_error',
        error: e instanceof Error ? e.message : String(e),
      });
      return false;
    }
  };
  const publish = (trigger: string): Promise<boolean> => {
    const next = chain.then(() => publishNow(trigger));
    chain = next.catch(() => undefined);
    return next;
  };

  if (!(await publish('start'))) {
    throw new TrustplaneError(
      'invalid_bundle',
      'the first publication failed (see the log): nothing to serve',
    );
  }

  const authorized = (req: IncomingMessage): boolean => {
    if (tokenDigest === undefined) return true;
    const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(req.headers.authorization ?? '');
    if (!m) return false;
    return timingSafeEqual(createHash('sha256').update(m[1]!).digest(), tokenDigest);
  };

  const answer = (
    res: ServerResponse,
    name: BundleDocumentName,
    doc: PublishedDocument,
    ifNoneMatch: string | undefined,
    wait: number,
    head: boolean,
  ) => {
    const headers: Record<string, string> = {
      etag: doc.etag,
      'cache-control': 'no-cache',
      'x-trustplane-issued-at': String(doc.issuedAt),
    };
    if (wait > 0) headers['preference-applied'] = `wait=${wait}`;
    if (ifNoneMatch !== undefined && ifNoneMatch.split(/\s*,\s*/).includes(doc.etag)) {
      requests.inc({ document: name, status: '304' });
      res.writeHead(304, headers).end();
      return;
    }
    requests.inc({ document: name, status: '200' });
    res.writeHead(200, {
      ...headers,
      'content-type': 'application/json',
      'content-length': String(doc.bytes.length),
    });
    res.end(head ? undefined : doc.bytes);
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://bundle-server');
    } catch {
      res.writeHead(400).end();
      return;
    }
    const json = (status: number, body: unknown, extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'method not allowed' });
    if (url.pathname === '/healthz') return json(200, { status: 'ok', issued_at: current!.policy.issuedAt });
    if (!authorized(req)) {
      requests.inc({ document: 'any', status: '401' });
      return json(
        401,
        { error: 'unauthorized' },
        { 'www-authenticate': 'Bearer realm="trustplane-bundles"' },
      );
    }
    if (url.pathname === '/metrics') {
      registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
        .catch(() => json(500, { error: 'metrics unavailable' }));
      return;
    }
    const name = (Object.keys(BUNDLE_DOCUMENTS) as BundleDocumentName[]).find(
      (n) => url.pathname === `/${BUNDLE_DOCUMENTS[n]}`,
    );
    if (name === undefined) {
      requests.inc({ document: 'none', status: '404' });
      return json(404, { error: 'not found' });
    }
    const inm = req.headers['if-none-match'];
    const wait = requestedWait(req, url, maxWait);
    const head = req.method === 'HEAD';
    const doc = current![name];
    if (wait === 0 || inm === undefined || !inm.split(/\s*,\s*/).includes(doc.etag)) {
      answer(res, name, doc, inm, wait, head);
      return;
    }
    if (waiters.size >= maxWaiting) {
      // Anyone who can reach an unauthenticated server could otherwise hold any number of sockets.
      waitsRefused.inc();
      answer(res, name, doc, inm, 0, head);
      return;
    }
    // Long-poll: hold the request until a publication changes this document or the wait ends.
    let done = false;
    const waiter = {
      name,
      etag: doc.etag,
      wake: () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        waiters.delete(waiter);
        waiting.dec();
        answer(res, name, current![name], inm, wait, head);
      },
    };
    const timer = setTimeout(() => waiter.wake(), wait * 1000);
    waiters.add(waiter);
    waiting.inc();
    res.once('close', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      waiters.delete(waiter);
      waiting.dec();
    });
  };

  const server: Server = options.tls
    ? createHttpsServer(
        {
          cert: options.tls.cert,
          key: options.tls.key,
          ...(options.tls.clientCa !== undefined
            ? { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: true }
            : {}),
        },
        handler,
      )
    : createHttpServer(handler);
  const { host, port } = splitListen(options.listen ?? '127.0.0.1:8443');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;

  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      void publish('schedule').finally(() => {
        if (!closed) schedule();
      });
    }, resignSeconds * 1000);
    timer.unref();
  };
  let closed = false;
  schedule();

  const watchers: FSWatcher[] = [];
  let debounce: NodeJS.Timeout | undefined;
  const names = new Set((options.watchFiles ?? []).map((f) => basename(f)));
  for (const dir of new Set((options.watchFiles ?? []).map((f) => dirname(f)))) {
    try {
      const w = watch(dir, { persistent: false }, (_event, file) => {
        if (file !== null && !names.has(String(file)) && !names.has(String(file).replace(/\.tmp$/, '')))
          return;
        clearTimeout(debounce);
        debounce = setTimeout(() => {
          if (!closed) void publish('watch');
        }, 100);
        debounce.unref();
      });
      w.on('error', () => undefined);
      watchers.push(w);
    } catch (e) {
      log.warn('cannot watch a config directory: changes are published on the schedule only', {
        dir,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }

  const scheme = options.tls ? 'https' : 'http';
  const hostText = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log.info('bundle server listening', {
    url: `${scheme}://${hostText}:${address.port}`,
    signer_kid: options.signer.kid,
    resign_interval_seconds: resignSeconds,
    auth: tokenDigest !== undefined ? 'bearer' : options.tls?.clientCa !== undefined ? 'mtls' : 'none',
  });
  return {
    url: `${scheme}://${hostText}:${address.port}`,
    address,
    registry,
    current: () => current!,
    publish,
    async close() {
      closed = true;
      clearTimeout(timer);
      clearTimeout(debounce);
      for (const w of watchers) w.close();
      for (const w of [...waiters]) w.wake();
      await chain;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
