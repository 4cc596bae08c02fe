import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { HEALTHY, unhealthy, type ComponentHealth } from '../authcore/component-health.js';
import { TrustplaneError } from '../authcore/errors.js';
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
import { digest, parseJson, readBounded } from './bundle-file.js';
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
   * Load both bundles (startup: any failure throws).
   * @throws TrustplaneError `invalid_bundle`, `bundle_signature_invalid`, `unsigned_bundle_rejected`
   */
  static async open(sources: BundleSources, options: BundleManagerOptions): Promise<BundleManager> {
    const now = (options.clock ?? (() => Math.floor(Date.now() / 1000)))();
    const trustBytes = await readBounded(sources.trustMaterialPath);
    const policyBytes = await readBounded(sources.policyBundlePath);
    const trust = await BundleManager.#loadTrust(sources, trustBytes, now, options.log);
    const policy = await BundleManager.#loadPolicy(sources, policyBytes, now, options.log);
    return new BundleManager(
      {
        trust,
        policy,
        trustDigest: digest(trustBytes),
        policyDigest: digest(policyBytes),
        trustLoadedAt: now,
        policyLoadedAt: now,
      },
      sources,
      options,
    );
  }

  static async #loadTrust(sources: BundleSources, bytes: Uint8Array, now: number, log: Logger) {
    const doc = parseJson(bytes, sources.trustMaterialPath);
    const trust = await loadWith(doc, sources.trustMaterialKeys, sources.devAllowUnsigned, (signers) =>
      loadTrustMaterial(doc, { signers, allowUnsigned: sources.devAllowUnsigned, now }),
    );
    if (!trust.signed)
      log.warn('UNSIGNED trust material accepted (--dev-allow-unsigned)', {
        file: sources.trustMaterialPath,
      });
    return trust;
  }

  static async #loadPolicy(sources: BundleSources, bytes: Uint8Array, now: number, log: Logger) {
    const doc = parseJson(bytes, sources.policyBundlePath);
    const policy = await loadWith(doc, sources.policyBundleKeys, sources.devAllowUnsigned, (signers) =>
      loadPolicyBundle(doc, { signers, allowUnsigned: sources.devAllowUnsigned, now }),
    );
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
   * Re-read both files; replace what changed and verified. Reloads are serialized.
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
      try {
        const bytes = await readBounded(path);
        const d = digest(bytes);
        const cur = this.#current;
        if (d === (name === 'policy' ? cur.policyDigest : cur.trustDigest)) continue;
        if (name === 'trust_material') {
          const trust = await BundleManager.#loadTrust(this.#sources, bytes, now, this.#log);
          checkRollback(name, cur.trust.issuedAt, trust.issuedAt);
          this.#current = { ...this.#current, trust, trustDigest: d, trustLoadedAt: now };
          this.#record(name, trust, now);
        } else {
          const policy = await BundleManager.#loadPolicy(this.#sources, bytes, now, this.#log);
          checkRollback(name, cur.policy.issuedAt, policy.issuedAt);
          this.#current = { ...this.#current, policy, policyDigest: d, policyLoadedAt: now };
          this.#record(name, policy, now);
        }
        result[name] = 'reloaded';
        this.#metrics?.bundleReloads.inc({ bundle: name, result: 'success' });
        this.#log.info('bundle reloaded', { bundle: name, trigger, sha256: d });
      } catch (e) {
        result[name] = 'failed';
        this.#metrics?.bundleReloads.inc({ bundle: name, result: 'failure' });
        this.#log.error('bundle reload failed; keeping the bundle in force', {
          bundle: name,
          trigger,
          reason: e instanceof TrustplaneError ? e.reason : 'io',
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
    return result;
  }

  /**
   * Watch both files (their directories, so atomic renames and Kubernetes ConfigMap symlink swaps
   * are seen) and poll every `intervalMs` as a fallback (0 disables polling).
   */
  watch(intervalMs: number): void {
    const dirs = new Set([dirname(this.#sources.trustMaterialPath), dirname(this.#sources.policyBundlePath)]);
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#schedule());
        w.on('error', () => undefined);
        this.#watchers.push(w);
      } catch (e) {
        this.#log.warn('cannot watch bundle directory; relying on polling and SIGHUP', {
          dir,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
    if (intervalMs > 0) {
      this.#timer = setInterval(() => void this.reload('poll'), intervalMs);
      this.#timer.unref();
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    // Editors and `cp` write in several steps; wait for the file to settle.
    this.#debounce = setTimeout(() => void this.reload('watch'), 100);
    this.#debounce.unref();
  }

  /** Stop watching and wait for a reload in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    clearInterval(this.#timer);
    clearInterval(this.#freshnessTimer);
    clearTimeout(this.#debounce);
    await this.#chain;
  }
}

function checkRollback(name: BundleName, current: number | undefined, next: number | undefined): void {
  if (current !== undefined && (next === undefined || next < current)) {
    throw new TrustplaneError(
      'bundle_conflict',
      `refusing ${name} older than the one in force (issued_at rollback)`,
    );
  }
}
