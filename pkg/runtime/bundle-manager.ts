import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { HEALTHY, unhealthy, type ComponentHealth } from '../authcore/component-health.js';
import { TrustplaneError } from '../authcore/errors.js';
import { DEFAULT_SKEW_SECONDS } from '../authcore/verify-passport.js';
import {
  describePolicyFreshness,
  describeTrustFreshness,
  freshnessJson,
  loadPolicyBundle,
  type FreshnessReport,
  type FreshnessState,
  loadTrustMaterial,
  type LoadedPolicy,
  type LoadedTrustMaterial,
} from '../bundle/index.js';
import { contentDigest, digest, parseJson, readBounded } from './bundle-file.js';
import {
  BundleFetchError,
  closeFetchAgent,
  fetchDocument,
  isBundleUrl,
  isCleartextRemoteUrl,
  persistDocument,
  redactUrl,
  type RemoteBundleOptions,
} from './bundle-fetch.js';
import type { ConfiguredKey } from './configured-keys.js';
import { loadWith } from './configured-signers.js';
import type { Logger } from './logger.js';
import type { AdapterMetrics } from './metrics.js';

/** Where the bundles come from and who may sign them. */
export interface BundleSources {
  readonly trustMaterialPath: string;
  readonly policyBundlePath: string;
  readonly trustMaterialKeys: readonly ConfiguredKey[];
  readonly policyBundleKeys: readonly ConfiguredKey[];
  /** Development only: accept unsigned documents (logged loudly at every load). */
  readonly devAllowUnsigned: boolean;
  /**
   * How to pull the documents whose path is an `http(s)://` URL (a bundle server or a static
   * server): required when one is.
   */
  readonly remote?: RemoteBundleOptions;
}

/** File name of each document in the state directory of a pulled source. */
const STATE_FILES: Readonly<Record<BundleName, string>> = {
  trust_material: 'trust-material.json',
  policy: 'policy-bundle.json',
};

/** A pulled document: the last bytes fetched and what the source said. */
interface RemoteDocument {
  readonly url: string;
  /** The ETag of the last 200 answer (accepted or not: a refused document is not fetched again). */
  etag: string | undefined;
  /** The last document fetched (what a reload reads). */
  latest: Buffer | undefined;
  /** Epoch seconds of the last answer (200 or 304). */
  lastContact: number | undefined;
  /** Consecutive failed fetches. */
  failures: number;
}
/** The trust material and policy in force. Replaced as a whole, never mutated. */
export interface BundleSnapshot {
  readonly trust: LoadedTrustMaterial;
  readonly policy: LoadedPolicy;
  /** SHA-256 of the trust material file bytes. */
  readonly trustDigest: string;
  /** SHA-256 of the policy bundle file bytes. */
  readonly policyDigest: string;
  /** Epoch seconds each was loaded. */
  readonly trustLoadedAt: number;
  readonly policyLoadedAt: number;
}

/** Which bundle. */
export type BundleName = 'trust_material' | 'policy';

/** Outcome of one reload per bundle. */
export type ReloadOutcome = 'unchanged' | 'reloaded' | 'failed';

/** Options for {@link BundleManager.open}. */
export interface BundleManagerOptions {
  readonly log: Logger;
  readonly metrics?: AdapterMetrics;
  /** Epoch seconds (default system clock). */
  readonly clock?: () => number;
}

/**
 * Loads the trust material and policy bundle, verifies their signatures, and replaces them
 * atomically when the files change. A file that fails to parse or verify, or that is older than the
 * one in force (`issued_at` rollback), leaves the last good snapshot in force; the failure is
 * logged and counted (`trustplane_bundle_reloads_total{result="failure"}`).
 */
export class BundleManager {
  #current: BundleSnapshot;
  readonly #sources: BundleSources;
  readonly #log: Logger;
  readonly #metrics: AdapterMetrics | undefined;
  readonly #clock: () => number;
  #chain: Promise<unknown> = Promise.resolve();
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #closed = false;
  #freshnessTimer: NodeJS.Timeout | undefined;
  readonly #remotes = new Map<BundleName, RemoteDocument>();
  readonly #abort = new AbortController();
  #pulls: Promise<void>[] = [];
  /** Digest of the last pulled document refused, so it is not reloaded (and counted) again. */
  readonly #refused = new Map<BundleName, string>();
  readonly #lastFailure = new Map<BundleName, string>();
  readonly #freshnessSeen: Partial<Record<BundleName, FreshnessState>> = {};

  private constructor(snapshot: BundleSnapshot, sources: BundleSources, options: BundleManagerOptions) {
    this.#current = snapshot;
    this.#sources = sources;
    this.#log = options.log;
    this.#metrics = options.metrics;
    this.#clock = options.clock ?? (() => Math.floor(Date.now() / 1000));
    this.#record('trust_material', snapshot.trust, snapshot.trustLoadedAt);
    this.#record('policy', snapshot.policy, snapshot.policyLoadedAt);
  }

  /**
   * Load both bundles (startup: any failure throws). A document at a URL is fetched once (bounded
   * by `remote.timeoutMs`); when the source cannot be reached, or answers with a document older than
   * the one persisted in `remote.stateDir` or one that does not verify, the persisted document is
   * used instead (logged). With neither, start fails. A fetched document with the persisted one's
   * `issued_at` but other content is refused the same way (`bundle_conflict`), and any document
   * dated beyond the clock skew is refused (`bundle_not_yet_valid`).
   * @throws TrustplaneError `invalid_bundle`, `bundle_signature_invalid`, `unsigned_bundle_rejected`,
   *   `bundle_source_unavailable`, `bundle_not_yet_valid` (a file dated in the future)
   */
  static async open(sources: BundleSources, options: BundleManagerOptions): Promise<BundleManager> {
    const now = (options.clock ?? (() => Math.floor(Date.now() / 1000)))();
    const remotes = new Map<BundleName, RemoteDocument>();
    const warned = new Set<string>();
    const initial = async <T extends Versioned>(
      name: BundleName,
      location: string,
      load: (bytes: Uint8Array) => Promise<T>,
    ): Promise<{ doc: T; bytes: Uint8Array }> => {
      if (!isBundleUrl(location)) {
        const bytes = await readBounded(location);
        return { doc: await load(bytes), bytes };
      }
      const remote = sources.remote;
      if (remote === undefined) throw new TypeError(`${name}: a bundle URL needs the remote options`);
      const host = isCleartextRemoteUrl(location) ? new URL(location).host : undefined;
      if (remote.token !== undefined && host !== undefined && !warned.has(host)) {
        // Warned, not refused: a private network may carry it; the token is only as safe as that.
        warned.add(host);
        options.log.warn('bundle fetch token sent in cleartext (http:// to a non-loopback host): use https', {
          url: redactUrl(location),
        });
      }
      const state: RemoteDocument = {
        url: location,
        etag: undefined,
        latest: undefined,
        lastContact: undefined,
        failures: 0,
      };
      remotes.set(name, state);
      let persisted: { doc: T; bytes: Uint8Array } | undefined;
      try {
        const bytes = await readBounded(`${remote.stateDir}/${STATE_FILES[name]}`);
        persisted = { doc: await load(bytes), bytes };
      } catch (e) {
        if (!(e instanceof Error && 'code' in e && e.code === 'ENOENT'))
          options.log.warn('persisted bundle unusable; ignoring it', { bundle: name, error: errorText(e) });
      }
      let fetched: { doc: T; bytes: Uint8Array } | undefined;
      let why = '';
      try {
        const r = await fetchDocument(location, remote, { waitSeconds: 0 });
        state.lastContact = now;
        if (r.status === 200) {
          state.etag = r.etag;
          state.latest = r.bytes;
          fetched = { doc: await load(r.bytes), bytes: r.bytes };
          options.metrics?.bundleFetches.inc({ bundle: name, result: 'success', reason: 'none' });
          const conflict = persisted !== undefined ? orderProblem(persisted.doc, fetched.doc) : undefined;
          if (conflict !== undefined) {
            fetched = undefined;
            why =
              conflict === 'older'
                ? 'the source serves a document older than the persisted one (issued_at rollback)'
                : "the source serves a document with the persisted one's issued_at but other content";
            options.metrics?.bundleFetches.inc({
              bundle: name,
              result: 'failure',
              reason: 'bundle_conflict',
            });
          }
        }
      } catch (e) {
        why = e instanceof Error ? e.message : String(e);
        const reason =
          e instanceof BundleFetchError
            ? e.reason
            : e instanceof TrustplaneError
              ? e.reason
              : 'internal_error';
        options.metrics?.bundleFetches.inc({ bundle: name, result: 'failure', reason });
      }
      const chosen = fetched ?? persisted;
      if (chosen === undefined)
        throw new TrustplaneError(
          'bundle_source_unavailable',
          `${name}: cannot fetch ${redactUrl(location)} (${why}) and no persisted copy in the state directory`,
        );
      if (fetched === undefined)
        options.log.warn(`starting from the persisted ${name}: ${why}`, {
          bundle: name,
          url: redactUrl(location),
          ...(chosen.doc.issuedAt !== undefined ? { issued_at: chosen.doc.issuedAt } : {}),
        });
      else await persistDocument(remote.stateDir, STATE_FILES[name], fetched.bytes);
      return chosen;
    };
    const trust = await initial('trust_material', sources.trustMaterialPath, (b) =>
      BundleManager.#loadTrust(sources, b, now, options.log),
    );
    const policy = await initial('policy', sources.policyBundlePath, (b) =>
      BundleManager.#loadPolicy(sources, b, now, options.log),
    );
    const manager = new BundleManager(
      {
        trust: trust.doc,
        policy: policy.doc,
        trustDigest: digest(trust.bytes),
        policyDigest: digest(policy.bytes),
        trustLoadedAt: now,
        policyLoadedAt: now,
      },
      sources,
      options,
    );
    for (const [name, r] of remotes) manager.#remotes.set(name, r);
    return manager;
  }

  static async #loadTrust(sources: BundleSources, bytes: Uint8Array, now: number, log: Logger) {
    const doc = parseJson(bytes, redactUrl(sources.trustMaterialPath));
    const trust = await loadWith(doc, sources.trustMaterialKeys, sources.devAllowUnsigned, (signers) =>
      loadTrustMaterial(doc, { signers, allowUnsigned: sources.devAllowUnsigned, now }),
    );
    checkNotFuture('trust material', trust.issuedAt, now);
    if (!trust.signed)
      log.warn('UNSIGNED trust material accepted (--dev-allow-unsigned)', {
        file: sources.trustMaterialPath,
      });
    return trust;
  }

  static async #loadPolicy(sources: BundleSources, bytes: Uint8Array, now: number, log: Logger) {
    const doc = parseJson(bytes, redactUrl(sources.policyBundlePath));
    const policy = await loadWith(doc, sources.policyBundleKeys, sources.devAllowUnsigned, (signers) =>
      loadPolicyBundle(doc, { signers, allowUnsigned: sources.devAllowUnsigned, now }),
    );
    checkNotFuture('policy bundle', policy.issuedAt, now);
    if (!policy.signed)
      log.warn('UNSIGNED policy bundle accepted (--dev-allow-unsigned)', { file: sources.policyBundlePath });
    return policy;
  }

  /** The snapshot in force. Capture it once per request. */
  get current(): BundleSnapshot {
    return this.#current;
  }

  /** Seconds since each bundle's `issued_at` (undefined when it has none). */
  ages(now: number): Record<BundleName, number | undefined> {
    const { trust, policy } = this.#current;
    return {
      trust_material: trust.issuedAt !== undefined ? now - trust.issuedAt : undefined,
      policy: policy.issuedAt !== undefined ? now - policy.issuedAt : undefined,
    };
  }

  #record(name: BundleName, doc: { issuedAt?: number }, loadedAt: number) {
    this.#metrics?.bundleLoadedAt.set({ bundle: name }, loadedAt);
    if (doc.issuedAt !== undefined) this.#metrics?.bundleIssuedAt.set({ bundle: name }, doc.issuedAt);
  }

  /** Age, limit and time left of each bundle in force ({@link describePolicyFreshness}). */
  freshness(now: number = this.#clock()): Record<BundleName, FreshnessReport> {
    const { trust, policy } = this.#current;
    return {
      trust_material: describeTrustFreshness(trust, now),
      policy: describePolicyFreshness(policy.document, now),
    };
  }

  /**
   * Readiness of the bundles in force: `expired` once either document's `expires_at` has passed;
   * `stale` once a `bounded` route of the policy is past its limit (it denies
   * `stale_bundle_fail_closed`) or no route passes its class at all; `stale_soon` within the margin
   * (min(60 s, 20 % of the limit)) of the shortest `bounded` limit or of an `expires_at`. A stale
   * `realtime` route alone keeps the adapter ready: it follows a publisher re-signing in seconds,
   * and the age metric shows it.
   */
  health(now: number = this.#clock()): ComponentHealth {
    const f = this.freshness(now);
    if (f.trust_material.state === 'expired' || f.policy.state === 'expired') return unhealthy('expired');
    if (f.policy.state === 'stale') return unhealthy('stale');
    if (f.policy.state === 'stale_soon' || f.trust_material.state === 'stale_soon')
      return unhealthy('stale_soon');
    return HEALTHY;
  }

  /**
   * Log each bundle's freshness transitions, checked every `intervalMs`: one warning when it comes
   * within the margin of its limit (`bundle about to go stale`), one error when it is stale or
   * expired, one info line when a newer bundle makes it fresh again. Never one line per check.
   */
  watchFreshness(intervalMs = 1_000): void {
    if (this.#freshnessTimer !== undefined) return;
    const check = () => {
      const now = this.#clock();
      for (const [name, report] of Object.entries(this.freshness(now)) as [BundleName, FreshnessReport][]) {
        const before = this.#freshnessSeen[name];
        this.#freshnessSeen[name] = report.state;
        if (before === report.state) continue;
        const fields = { bundle: name, ...freshnessJson(report) };
        if (report.state === 'stale_soon')
          this.#log.warn('bundle about to go stale: publish a newer one', fields);
        else if (report.state === 'stale' || report.state === 'expired')
          this.#log.error('bundle stale: bounded routes deny stale_bundle_fail_closed', fields);
        else if (before !== undefined) this.#log.info('bundle fresh again', fields);
      }
    };
    check();
    this.#freshnessTimer = setInterval(check, intervalMs);
    this.#freshnessTimer.unref();
  }

  /**
   * Re-read both documents (files from disk; pulled documents from the last fetch); replace what
   * changed and verified. Reloads are serialized.
   * @param trigger why (logged)
   */
  reload(trigger: string): Promise<Record<BundleName, ReloadOutcome>> {
    const next = this.#chain.then(() => this.#reloadNow(trigger));
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #reloadNow(trigger: string): Promise<Record<BundleName, ReloadOutcome>> {
    const now = this.#clock();
    const result: Record<BundleName, ReloadOutcome> = { trust_material: 'unchanged', policy: 'unchanged' };
    // Trust material first: a new policy may name issuers only the new trust material has.
    for (const name of ['trust_material', 'policy'] as const) {
      const path = name === 'policy' ? this.#sources.policyBundlePath : this.#sources.trustMaterialPath;
      const remote = this.#remotes.get(name);
      try {
        const bytes = remote !== undefined ? remote.latest : await readBounded(path);
        if (bytes === undefined) continue;
        const d = digest(bytes);
        const cur = this.#current;
        if (d === (name === 'policy' ? cur.policyDigest : cur.trustDigest)) continue;
        if (remote !== undefined && this.#refused.get(name) === d) {
          result[name] = 'failed';
          continue;
        }
        if (name === 'trust_material') {
          const trust = await BundleManager.#loadTrust(this.#sources, bytes, now, this.#log);
          checkRollback(name, cur.trust, trust);
          this.#current = { ...this.#current, trust, trustDigest: d, trustLoadedAt: now };
          this.#record(name, trust, now);
        } else {
          const policy = await BundleManager.#loadPolicy(this.#sources, bytes, now, this.#log);
          checkRollback(name, cur.policy, policy);
          this.#current = { ...this.#current, policy, policyDigest: d, policyLoadedAt: now };
          this.#record(name, policy, now);
        }
        result[name] = 'reloaded';
        this.#metrics?.bundleReloads.inc({ bundle: name, result: 'success' });
        this.#log.info('bundle reloaded', { bundle: name, trigger, sha256: d });
        if (remote !== undefined && this.#sources.remote !== undefined) {
          // The last good document, for a start while the source is down.
          await persistDocument(this.#sources.remote.stateDir, STATE_FILES[name], bytes).catch((e: unknown) =>
            this.#log.error('cannot persist the bundle to the state directory', {
              bundle: name,
              error: errorText(e),
            }),
          );
        }
      } catch (e) {
        result[name] = 'failed';
        const reason = e instanceof TrustplaneError ? e.reason : 'io';
        this.#lastFailure.set(name, reason);
        if (remote?.latest !== undefined) this.#refused.set(name, digest(remote.latest));
        this.#metrics?.bundleReloads.inc({ bundle: name, result: 'failure' });
        this.#log.error('bundle reload failed; keeping the bundle in force', {
          bundle: name,
          trigger,
          reason,
          error: errorText(e),
        });
      }
    }
    return result;
  }

  /**
   * Watch the files (their directories, so atomic renames and Kubernetes ConfigMap symlink swaps
   * are seen) and poll them every `intervalMs` as a fallback (0 disables polling). Documents at a
   * URL are pulled instead: long-polled when the source supports it, else fetched every poll
   * interval (`remote.pollIntervalMs`), with a backoff (up to 30 s) while it fails.
   */
  watch(intervalMs: number): void {
    const files = (['trust_material', 'policy'] as const)
      .filter((n) => !this.#remotes.has(n))
      .map((n) => (n === 'policy' ? this.#sources.policyBundlePath : this.#sources.trustMaterialPath));
    for (const dir of new Set(files.map((f) => dirname(f)))) {
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          if (isBundleFileEvent(name, this.#sources)) this.#schedule();
        });
        w.on('error', () => undefined);
        this.#watchers.push(w);
      } catch (e) {
        this.#log.warn('cannot watch bundle directory; relying on polling and SIGHUP', {
          dir,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
    if (intervalMs > 0 && files.length > 0) {
      this.#timer = setInterval(() => void this.reload('poll'), intervalMs);
      this.#timer.unref();
    }
    for (const name of this.#remotes.keys()) this.#pulls.push(this.#pull(name));
  }

  /** Seconds since each pulled document's source last answered (undefined: a file, or never). */
  contactAges(now: number = this.#clock()): Partial<Record<BundleName, number>> {
    const out: Partial<Record<BundleName, number>> = {};
    for (const [name, r] of this.#remotes) if (r.lastContact !== undefined) out[name] = now - r.lastContact;
    return out;
  }

  async #pull(name: BundleName): Promise<void> {
    const remote = this.#remotes.get(name)!;
    const options = this.#sources.remote!;
    const signal = this.#abort.signal;
    // The listener goes when the sleep ends either way: one per poll would pile up on the signal.
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const t = setTimeout(done, ms);
        t.unref();
        if (signal.aborted) done();
        else signal.addEventListener('abort', done, { once: true });
      });
    // A source that says it long-polls but answers at once is not asked again at once: at most one
    // request per poll interval (at most 1 s) then.
    const minGapMs = Math.min(options.pollIntervalMs, 1_000);
    while (!this.#closed) {
      let pause = 0;
      const started = Date.now();
      try {
        const r = await fetchDocument(remote.url, options, {
          etag: remote.etag,
          waitSeconds: options.waitSeconds,
          signal: this.#abort.signal,
        });
        if (this.#closed) return;
        remote.lastContact = this.#clock();
        if (remote.failures > 0)
          this.#log.info('bundle source reachable again', {
            bundle: name,
            url: redactUrl(remote.url),
            failures: remote.failures,
          });
        remote.failures = 0;
        if (r.status === 304) {
          this.#metrics?.bundleFetches.inc({ bundle: name, result: 'success', reason: 'not_modified' });
        } else {
          remote.etag = r.etag;
          remote.latest = r.bytes;
          const outcome = (await this.reload('fetch'))[name];
          if (outcome === 'failed')
            this.#metrics?.bundleFetches.inc({
              bundle: name,
              result: 'failure',
              reason: this.#lastFailure.get(name) ?? 'io',
            });
          else this.#metrics?.bundleFetches.inc({ bundle: name, result: 'success', reason: 'none' });
        }
        // A source that answers at once (a static server, or long-poll off) is polled on an interval.
        pause = r.longPoll ? minGapMs - (Date.now() - started) : options.pollIntervalMs;
      } catch (e) {
        if (this.#closed) return;
        remote.failures += 1;
        const reason = e instanceof BundleFetchError ? e.reason : 'network';
        this.#metrics?.bundleFetches.inc({ bundle: name, result: 'failure', reason });
        if (remote.failures === 1)
          this.#log.warn('cannot fetch the bundle; serving the one in force (it keeps aging)', {
            bundle: name,
            url: redactUrl(remote.url),
            reason,
            error: errorText(e),
          });
        pause = Math.min(options.pollIntervalMs * 2 ** Math.min(remote.failures - 1, 6), 30_000);
      }
      if (pause > 0) await sleep(pause);
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    // Editors and `cp` write in several steps; wait for the file to settle.
    this.#debounce = setTimeout(() => void this.reload('watch'), 100);
    this.#debounce.unref();
  }

  /** Stop watching and pulling, and wait for a reload in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    clearInterval(this.#timer);
    clearInterval(this.#freshnessTimer);
    clearTimeout(this.#debounce);
    await Promise.all(this.#pulls);
    if (this.#sources.remote !== undefined) closeFetchAgent(this.#sources.remote);
    await this.#chain;
  }
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** What the order of documents is decided on: `issued_at`, then the content at one `issued_at`. */
interface Versioned {
  readonly issuedAt?: number | undefined;
  readonly document: object;
}

/**
 * Why `next` may not replace `current`, or undefined: older (`issued_at` rollback), or the same
 * `issued_at` with other content (two documents a client cannot order: replaying the one without a
 * revocation would undo it). The same `issued_at` and content is no change.
 */
function orderProblem(current: Versioned, next: Versioned): 'older' | 'other_content' | undefined {
  if (current.issuedAt === undefined) return undefined;
  if (next.issuedAt === undefined || next.issuedAt < current.issuedAt) return 'older';
  if (
    next.issuedAt === current.issuedAt &&
    contentDigest(next.document as Record<string, unknown>) !==
      contentDigest(current.document as Record<string, unknown>)
  )
    return 'other_content';
  return undefined;
}

function checkRollback(name: BundleName, current: Versioned, next: Versioned): void {
  const problem = orderProblem(current, next);
  if (problem !== undefined)
    throw new TrustplaneError(
      'bundle_conflict',
      problem === 'older'
        ? `refusing ${name} older than the one in force (issued_at rollback)`
        : `refusing ${name} with the issued_at of the one in force but other content`,
    );
}

/**
 * A document dated beyond the clock skew is refused: freshness would deny it anyway, and once in
 * force every correctly dated document would be refused as a rollback until its `issued_at`.
 */
function checkNotFuture(what: string, issuedAt: number | undefined, now: number): void {
  if (issuedAt !== undefined && issuedAt > now + DEFAULT_SKEW_SECONDS)
    throw new TrustplaneError(
      'bundle_not_yet_valid',
      `${what} issued ${issuedAt - now} s in the future (beyond the ${DEFAULT_SKEW_SECONDS} s clock skew): check the signer's clock`,
    );
}

/**
 * Whether a change in a watched directory may concern a bundle: the bundle files themselves, a
 * Kubernetes ConfigMap swap (`..data`, `..2026_01_31...`), or an event without a name. Anything
 * else is ignored: a log file in the same directory (`2> bundles/adapter.log`) must not wake the
 * watcher, or each failed reload's log line would trigger the next one.
 */
function isBundleFileEvent(
  name: string | Buffer | null,
  sources: { readonly trustMaterialPath: string; readonly policyBundlePath: string },
): boolean {
  if (name === null) return true;
  const file = name.toString();
  return (
    file.startsWith('..') ||
    file === basename(sources.trustMaterialPath) ||
    file === basename(sources.policyBundlePath)
  );
}
