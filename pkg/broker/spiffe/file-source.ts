import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import {
  bundlesFromPem,
  mergePinnedBundles,
  parsePemCertificates,
  MAX_BUNDLE_BYTES,
  type SpiffeTrustBundles,
} from './bundle.js';
import { SvidError } from './svid-error.js';
import {
  MAX_SVID_CHAIN_LENGTH,
  assertKeyMatchesLeaf,
  readLeafSpiffeIdUnverified,
  verifyX509Svid,
  type VerifiedSvid,
} from './x509-svid.js';

/*
 * An X.509-SVID source over the files spiffe-helper writes (svid.pem, svid_key.pem,
 * svid_bundle.pem). spiffe-helper replaces each file by writing a temporary file and renaming it
 * into place, one file after the other, so a reload can observe a new certificate with the old
 * key: every reload reads all three files, verifies the chain and the key pair, and only then
 * swaps. A failed reload keeps the last good SVID. Change detection is fs.watch on the directories
 * (debounced) with polling as the fallback (watch events can be lost, e.g. on network volumes).
 *
 * The bundle file sits in a directory the workload's pod can often write: it is the least trusted
 * of the three root sources. For a trust domain the caller pins (`pinnedBundles`, the signed trust
 * material), the bundle file is ignored and only the pinned roots count; otherwise a writer of the
 * directory could add a CA of their own and mint any SPIFFE ID of the trust domain.
 */

/** Default polling interval. */
export const DEFAULT_SVID_POLL_INTERVAL_MS = 5_000;
/** Default debounce after a directory event. */
export const DEFAULT_SVID_DEBOUNCE_MS = 100;
/** A stream of directory events delays a reload by at most this many debounce periods. */
const MAX_DEBOUNCE_PERIODS = 5;

/** What {@link SvidFileSource.current} returns: a verified SVID, its private key, the bundles used. */
export interface SvidSnapshot {
  /** The verified X.509-SVID. */
  readonly svid: VerifiedSvid;
  /** The private key matching `svid.leaf`. */
  readonly privateKey: KeyObject;
  /**
   * The trust bundles it was verified against: the pinned roots for pinned trust domains, the
   * bundle file for the leaf's trust domain when it is not pinned.
   */
  readonly bundles: SpiffeTrustBundles;
  /**
   * The bundle file's roots as read, before the pins applied. With the pins in force later,
   * `mergePinnedBundles(pins, unpinnedBundles)` gives the roots to authenticate peers with then (a
   * reloaded trust material applies to peers at once, not from the next rotation).
   */
  readonly unpinnedBundles: SpiffeTrustBundles;
}

/** Options of {@link SvidFileSource.open}. */
export interface SvidFileSourceOptions {
  /** PEM certificate chain, leaf first (spiffe-helper `svid_file_name`). */
  readonly certFile: string;
  /** PEM private key: PKCS#8 `PRIVATE KEY`, or SEC1 `EC PRIVATE KEY` (`svid_key_file_name`). */
  readonly keyFile: string;
  /**
   * PEM CA certificates of the leaf's trust domain (`svid_bundle_file_name`). Used only when that
   * trust domain is not in `pinnedBundles`.
   */
  readonly bundleFile: string;
  /**
   * Roots that are the ONLY roots of their trust domains (e.g. `bundlesFromTrustMaterial` of the
   * signed trust material; federated trust domains too): for a trust domain listed here the bundle
   * file is ignored. A function is called at every load, so a reloaded trust material applies from
   * the next rotation.
   */
  readonly pinnedBundles?: SpiffeTrustBundles | (() => SpiffeTrustBundles);
  /**
   * Called once per load when the bundle file carries a root for a pinned trust domain that the
   * pins do not list (the root is ignored). Gets the trust domain only, never certificate bytes.
   */
  readonly onIgnoredBundleFile?: (trustDomain: string) => void;
  /** Injected clock, epoch seconds. */
  readonly clock: () => number;
  /** Polling interval in ms (default 5000, minimum 10). */
  readonly pollIntervalMs?: number;
  /** Debounce after a directory event in ms (default 100). */
  readonly debounceMs?: number;
  /** Watch the directories with fs.watch (default true); polling runs either way. */
  readonly watch?: boolean;
  /** Called after each successful rotation (not for the initial load). */
  readonly onUpdate?: (snapshot: SvidSnapshot) => void;
  /** Called when a background reload fails; the last good SVID stays in use. */
  readonly onError?: (error: Error) => void;
}

interface ReadFiles {
  readonly cert: string;
  readonly key: string;
  readonly bundle: string;
  readonly fingerprint: string;
}

/** The three file roles, for messages (paths are configuration, not secrets, but stay out anyway). */
type FileRole = 'certificate file' | 'key file' | 'bundle file';

async function readBounded(file: string, role: FileRole): Promise<string> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new SvidError('svid_source_unreadable', `cannot open the ${role} (${errnoCode(err)})`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new SvidError('svid_source_unreadable', `the ${role} is not a regular file`);
    if (stat.size > MAX_BUNDLE_BYTES) throw new SvidError('svid_malformed', `the ${role} is too large`);
    // One byte more than the size seen, to notice a file that grows while being read.
    const buffer = Buffer.alloc(stat.size + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) {
        throw new SvidError('svid_source_unreadable', `the ${role} changed while being read`);
      }
    }
    return buffer.subarray(0, length).toString('utf8');
  } catch (err) {
    if (err instanceof SvidError) throw err;
    throw new SvidError('svid_source_unreadable', `cannot read the ${role} (${errnoCode(err)})`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function errnoCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,32}$/.test(code) ? code : 'I/O error';
}

function parsePrivateKey(pem: string): KeyObject {
  // Only PEM private-key blocks; node:crypto would also read a certificate or public key as input
  // to other functions, and an encrypted key has no passphrase here.
  if (!/-----BEGIN (?:EC |RSA )?PRIVATE KEY-----/.test(pem)) {
    throw new SvidError('svid_malformed', 'the key file does not contain a PEM private key');
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // node's message is not forwarded: it could quote parts of the input.
    throw new SvidError('svid_malformed', 'the key file does not contain a usable private key');
  }
}

function validateOptions(options: SvidFileSourceOptions): void {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('SvidFileSource: options are required');
  for (const name of ['certFile', 'keyFile', 'bundleFile'] as const) {
    if (typeof options[name] !== 'string' || options[name].length === 0) {
      throw new TypeError(`SvidFileSource: ${name} must be a non-empty path`);
    }
  }
  if (typeof options.clock !== 'function') throw new TypeError('SvidFileSource: clock is required');
  if (
    options.pollIntervalMs !== undefined &&
    (!Number.isInteger(options.pollIntervalMs) || options.pollIntervalMs < 10)
  ) {
    throw new RangeError('SvidFileSource: pollIntervalMs must be an integer >= 10');
  }
  if (options.debounceMs !== undefined && (!Number.isInteger(options.debounceMs) || options.debounceMs < 0)) {
    throw new RangeError('SvidFileSource: debounceMs must be a non-negative integer');
  }
  const pinned = options.pinnedBundles;
  if (pinned !== undefined && typeof pinned !== 'function' && typeof pinned.get !== 'function') {
    throw new TypeError('SvidFileSource: pinnedBundles must be a SpiffeTrustBundles map or a function');
  }
  if (options.onIgnoredBundleFile !== undefined && typeof options.onIgnoredBundleFile !== 'function') {
    throw new TypeError('SvidFileSource: onIgnoredBundleFile must be a function');
  }
}

/**
 * X.509-SVID source over spiffe-helper's files, with verified hot rotation.
 *
 * @example
 * ```ts
 * const source = await SvidFileSource.open({
 *   certFile: '/run/spiffe/svid.pem',
 *   keyFile: '/run/spiffe/svid_key.pem',
 *   bundleFile: '/run/spiffe/svid_bundle.pem',
 *   // The signed trust material's roots replace svid_bundle.pem for the trust domains it lists.
 *   pinnedBundles: () => bundlesFromTrustMaterial(trust.current.spiffeBundles.values()),
 *   onIgnoredBundleFile: (td) => log.warn({ trust_domain: td }, 'svid_bundle.pem ignored: trust domain pinned'),
 *   clock: () => Math.floor(Date.now() / 1000),
 *   onError: (e) => log.warn({ reason: e instanceof SvidError ? e.reason : 'error' }, e.message),
 * });
 * const { svid, privateKey } = source.current(); // throws svid_expired rather than hand out a stale identity
 * await source.close();
 * ```
 */
export class SvidFileSource {
  readonly #options: SvidFileSourceOptions;
  #current: SvidSnapshot;
  #fingerprint: string;
  /** Fingerprint of the last contents that failed for a reason time cannot fix. */
  #failedFingerprint: string | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #watchers: FSWatcher[] = [];
  #pollTimer: NodeJS.Timeout | undefined;
  #debounceTimer: NodeJS.Timeout | undefined;
  #pendingSince = 0;
  #closed = false;

  private constructor(options: SvidFileSourceOptions, snapshot: SvidSnapshot, fingerprint: string) {
    this.#options = options;
    this.#current = snapshot;
    this.#fingerprint = fingerprint;
  }

  /**
   * Load, verify and start watching. The first load must succeed.
   *
   * @throws {@link SvidError} `svid_source_unreadable` (a file cannot be read), `svid_malformed`
   *   (bad PEM or key), `svid_bundle_malformed`, `svid_key_mismatch`, or any reason of
   *   {@link verifyX509Svid}; `TypeError`/`RangeError` for bad options.
   */
  static async open(options: SvidFileSourceOptions): Promise<SvidFileSource> {
    validateOptions(options);
    const files = await readAll(options);
    const snapshot = verifyFiles(files, options);
    const source = new SvidFileSource(options, snapshot, files.fingerprint);
    source.#start();
    return source;
  }

  /**
   * The last good SVID, its key and bundles.
   *
   * @throws {@link SvidError} `svid_expired` when the last good SVID has expired at the clock's
   *   current time (a reload is scheduled), `svid_not_yet_valid` if the clock is before its notBefore.
   */
  current(): SvidSnapshot {
    const snapshot = this.#current;
    const now = this.#options.clock();
    if (!(now <= snapshot.svid.expiresAt)) {
      this.#schedule(false);
      throw new SvidError('svid_expired', 'the last good X.509-SVID has expired');
    }
    if (now < snapshot.svid.notBefore) {
      throw new SvidError('svid_not_yet_valid', 'the last good X.509-SVID is not yet valid');
    }
    return snapshot;
  }

  /**
   * Read and verify the files now, and swap if they verify (even when unchanged). On failure the
   * last good SVID stays and the promise rejects with the error (`onError` is not called).
   */
  async reload(): Promise<SvidSnapshot> {
    if (this.#closed) throw new Error('SvidFileSource is closed');
    return this.#enqueue(() => this.#load(true));
  }

  /** Stop watching and polling. `current()` keeps answering from the last good SVID. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#debounceTimer);
    this.#debounceTimer = undefined;
    clearInterval(this.#pollTimer);
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    await this.#queue.catch(() => undefined);
  }

  #start(): void {
    const o = this.#options;
    this.#pollTimer = setInterval(
      () => this.#background(),
      o.pollIntervalMs ?? DEFAULT_SVID_POLL_INTERVAL_MS,
    );
    this.#pollTimer.unref();
    if (o.watch === false) return;
    const byDir = new Map<string, Set<string>>();
    for (const file of [o.certFile, o.keyFile, o.bundleFile]) {
      const dir = path.dirname(path.resolve(file));
      const names = byDir.get(dir) ?? new Set<string>();
      names.add(path.basename(file));
      byDir.set(dir, names);
    }
    for (const [dir, names] of byDir) {
      try {
        const watcher = watch(dir, { persistent: false }, (_event, filename) => {
          // A rename into place reports the target name; some platforms report no name at all.
          if (filename === null || names.has(filename.toString())) this.#schedule(true);
        });
        watcher.on('error', () => {
          watcher.close();
          this.#report(
            new SvidError('svid_source_unreadable', 'watching the SVID directory failed; polling only'),
          );
        });
        this.#watchers.push(watcher);
      } catch {
        this.#report(
          new SvidError('svid_source_unreadable', 'cannot watch the SVID directory; polling only'),
        );
      }
    }
  }

  /**
   * Debounced reload. Directory events push the timer back (spiffe-helper renames three files in a
   * row) but never beyond a few debounce periods; other callers only join a pending reload, so a hot
   * `current()` loop on an expired SVID cannot starve it.
   */
  #schedule(fromEvent: boolean): void {
    if (this.#closed) return;
    const debounce = this.#options.debounceMs ?? DEFAULT_SVID_DEBOUNCE_MS;
    const now = performance.now();
    if (this.#debounceTimer !== undefined) {
      if (!fromEvent || now - this.#pendingSince >= debounce * MAX_DEBOUNCE_PERIODS) return;
      clearTimeout(this.#debounceTimer);
    } else {
      this.#pendingSince = now;
    }
    this.#debounceTimer = setTimeout(() => {
      this.#debounceTimer = undefined;
      this.#background();
    }, debounce);
    this.#debounceTimer.unref();
  }

  #background(): void {
    if (this.#closed) return;
    this.#enqueue(() => this.#load(false)).catch((err: unknown) => {
      this.#report(err instanceof Error ? err : new Error(String(err)));
    });
  }

  /** Reloads run one at a time, in order. */
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #load(force: boolean): Promise<SvidSnapshot> {
    const files = await readAll(this.#options);
    if (
      !force &&
      (files.fingerprint === this.#fingerprint || files.fingerprint === this.#failedFingerprint)
    ) {
      return this.#current;
    }
    let snapshot: SvidSnapshot;
    try {
      snapshot = verifyFiles(files, this.#options);
    } catch (err) {
      const timeBound =
        err instanceof SvidError && (err.reason === 'svid_expired' || err.reason === 'svid_not_yet_valid');
      // Identical broken contents are reported once, not on every poll; time-bound failures may heal.
      this.#failedFingerprint = timeBound ? undefined : files.fingerprint;
      throw err;
    }
    if (this.#closed) return this.#current;
    const changed = files.fingerprint !== this.#fingerprint;
    this.#current = snapshot;
    this.#fingerprint = files.fingerprint;
    this.#failedFingerprint = undefined;
    if (changed) {
      try {
        this.#options.onUpdate?.(snapshot);
      } catch {
        // A throwing listener must not undo a verified rotation.
      }
    }
    return snapshot;
  }

  #report(error: Error): void {
    try {
      this.#options.onError?.(error);
    } catch {
      // A throwing listener must not stop the watcher.
    }
  }
}

async function readAll(options: SvidFileSourceOptions): Promise<ReadFiles> {
  const [cert, key, bundle] = await Promise.all([
    readBounded(options.certFile, 'certificate file'),
    readBounded(options.keyFile, 'key file'),
    readBounded(options.bundleFile, 'bundle file'),
  ]);
  const hash = createHash('sha256');
  for (const part of [cert, key, bundle]) hash.update(`${part.length}:`).update(part);
  return { cert, key, bundle, fingerprint: hash.digest('hex') };
}

/** Everything is checked before anything is swapped. */
function verifyFiles(files: ReadFiles, options: SvidFileSourceOptions): SvidSnapshot {
  const chain = parsePemCertificates(files.cert, 'certificate file', MAX_SVID_CHAIN_LENGTH);
  const privateKey = parsePrivateKey(files.key);
  const leafDer = chain[0] as Uint8Array;
  // Only to pick the bundle file's trust domain; verifyX509Svid below decides.
  const { trustDomain } = readLeafSpiffeIdUnverified(leafDer);
  const fromFile = bundlesFromPem(trustDomain, files.bundle);
  const pinned = options.pinnedBundles;
  const { bundles, ignoredTrustDomains } = mergePinnedBundles(
    (typeof pinned === 'function' ? pinned() : pinned) ?? new Map(),
    fromFile,
  );
  // Reported before verifying: a rogue CA next to an SVID it minted is refused below, and the
  // operator still learns why.
  for (const td of ignoredTrustDomains) {
    try {
      options.onIgnoredBundleFile?.(td);
    } catch {
      // A throwing listener must not decide a load.
    }
  }
  const svid = verifyX509Svid(chain, bundles, options.clock());
  assertKeyMatchesLeaf(svid.leaf, privateKey);
  return Object.freeze({ svid, privateKey, bundles, unpinnedBundles: fromFile });
}
