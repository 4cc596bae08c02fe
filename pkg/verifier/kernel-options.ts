import type { IssuerRegistry } from '../authcore/issuer-registry.js';
import type { AuditComponent, AuditEvent } from '../audit/event.js';
import type { AuditRequestInfo } from '../audit/event-from-decision.js';
import type { AuditSink } from '../audit/audit-sink.js';
import type { ReceiptPayload } from '../audit/receipt-schema.js';
import type { LoadedPolicy } from '../bundle/load-policy-bundle.js';
import type { Decision } from './decision.js';
import type { VerifierContext } from './verify-request.js';

/** Trust material and policy bundle one decision is made from (one consistent snapshot). */
export interface TrustplaneMaterial {
  /** Loaded trust material (issuers and keys), e.g. from `loadTrustMaterial`. */
  readonly trust: IssuerRegistry;
  /** Loaded policy bundle, e.g. from `loadPolicyBundle`. */
  readonly policy: LoadedPolicy;
}

/**
 * Returns the currently loaded {@link TrustplaneMaterial}, or `undefined` while nothing valid is
 * loaded (the request is then denied `policy_unavailable`, 503). Called once per request: every
 * later step of that request (the pipeline, the route's audit, receipt and enforcement options,
 * the policy version in its audit event and receipt) uses that one snapshot, so a reload can never
 * split a request between two bundles. If it throws, or returns something that is not loaded
 * material, the request is denied `internal_error` (500).
 * @example
 * let current: TrustplaneMaterial | undefined
 * watcher.on('loaded', (trust, policy) => (current = { trust, policy }))
 * trustplane({ material: () => current, replayStore })
 */
export type TrustplaneMaterialProvider = () => TrustplaneMaterial | undefined;

/** Signs `trustplane-receipt-v1` receipts (see `signReceipt` in `trustplane/audit`). */
export interface ReceiptSigner {
  sign(payload: ReceiptPayload): Promise<string>;
}

/** How one decision ended, for metrics and logs: `would_deny` is a deny a dry-run route did not enforce. */
export type EnforcementOutcomeLabel = 'allow' | 'deny' | 'would_deny';

/** What the kernel reports to its observer once per request. */
export interface EnforcementObservation {
  readonly outcome: EnforcementOutcomeLabel;
  /** The decision that stands (for `would_deny`: the deny that was not enforced). */
  readonly decision: Decision;
  /** Time from `startedMs` to the decision, seconds. */
  readonly seconds: number;
  /** The request facts the point gave (method, authority, path, request id, …). */
  readonly request: AuditRequestInfo;
}

/** Options every enforcement point shares (the kernel's; the middlewares take them as they are). */
export interface TrustplaneCommonOptions extends Pick<
  VerifierContext,
  | 'replayStore'
  | 'clock'
  | 'skewSeconds'
  | 'maxLifetimeSeconds'
  | 'routeId'
  | 'publicOrigin'
  | 'maxBodyBytes'
  | 'bindHost'
> {
  /** Where one audit event per decision goes (default: none). */
  readonly audit?: AuditSink;
  /**
   * Called when the audit sink throws or rejects; the decision stands either way. Default: a
   * `console.error` line on the 1st, 10th, 100th, … failure (bounded log volume).
   */
  readonly onAuditError?: (error: unknown, event: AuditEvent | undefined) => void;
  /** Instance name written to audit events (and receipts). */
  readonly instance?: string;
  /**
   * How long an allow on an `audit: "required"` route waits for its event to be durable before
   * the request is answered 503 `audit_unavailable` instead (ms, default 2,000).
   */
  readonly durableAuditTimeoutMs?: number;
}

/** Static material: `trust` and `policy` given directly (no hot reload). */
export interface TrustplaneStaticMaterialOptions {
  readonly trust: IssuerRegistry;
  readonly policy: LoadedPolicy;
  readonly material?: never;
}

/** Provided material: a {@link TrustplaneMaterialProvider} consulted per request (hot reload). */
export interface TrustplaneProvidedMaterialOptions {
  readonly material: TrustplaneMaterialProvider;
  readonly trust?: never;
  readonly policy?: never;
}

/**
 * Options of `trustplane()` in the middlewares: either `{ trust, policy }` (static) or
 * `{ material: () => ({ trust, policy }) }` (hot reload), plus the common options. Checked when
 * `trustplane()` is called: misuse throws `TypeError`/`RangeError` then, not per request.
 * @example
 * const options: TrustplaneMiddlewareOptions = {
 *   trust: await loadTrustMaterial(trustDoc, { signers }),
 *   policy: await loadPolicyBundle(policyDoc, { signers }),
 *   replayStore: new MemoryReplayStore(),
 *   audit: new MemoryAuditSink(),
 * }
 */
export type TrustplaneMiddlewareOptions = TrustplaneCommonOptions &
  (TrustplaneStaticMaterialOptions | TrustplaneProvidedMaterialOptions);

/** Options of {@link createEnforcementKernel}: the middleware options plus what the point is. */
export type EnforcementKernelOptions = TrustplaneMiddlewareOptions & {
  /** The enforcement point, written to every audit event. */
  readonly component: AuditComponent;
  /** Observes every decision once it stands (metrics, decision logs). Must not throw; if it does, the error is ignored. */
  readonly observe?: (observation: EnforcementObservation) => void;
  /** Signs receipts on routes with `receipt: true` (absent: such routes answer without one). */
  readonly receipts?: ReceiptSigner;
};

/** Kernel options after validation. @internal */
export interface ValidatedKernelOptions {
  readonly material: TrustplaneMaterialProvider;
  readonly common: Omit<VerifierContext, 'trust' | 'policy'>;
  readonly maxBodyBytes: number;
  readonly durableAuditTimeoutMs: number;
}

/** Default wait for a durable audit write on an `audit: "required"` route, ms. */
export const DEFAULT_DURABLE_AUDIT_TIMEOUT_MS = 2_000;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isFunction = (v: unknown): boolean => typeof v === 'function';

/**
 * Check that `trust` and `policy` are loaded material (used at construction for static material and
 * per request for provided material).
 * @throws TypeError naming the bad member
 */
export function checkMaterial(trust: unknown, policy: unknown, where: string): void {
  if (!isObject(trust) || !isFunction(trust.getIssuer)) {
    throw new TypeError(`trustplane(): ${where}trust must be loaded trust material (getIssuer)`);
  }
  if (!isObject(policy) || !isObject(policy.routeTable) || !isFunction(policy.isRevoked)) {
    throw new TypeError(`trustplane(): ${where}policy must be a loaded policy bundle`);
  }
}

function checkSeconds(name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
    throw new RangeError(`trustplane(): ${name} must be a non-negative number of seconds`);
  }
}

/**
 * Validate the kernel options eagerly: caller misuse throws at construction, never per request.
 * @param options the caller's options
 * @param defaultMaxBodyBytes the enforcement point's default body limit
 * @returns the per-request pieces
 * @throws TypeError or RangeError for misuse
 */
export function validateKernelOptions(
  options: EnforcementKernelOptions,
  defaultMaxBodyBytes: number,
): ValidatedKernelOptions {
  if (!isObject(options)) throw new TypeError('trustplane(): options must be an object');
  const o = options as EnforcementKernelOptions & Record<string, unknown>;
  const hasStatic = o.trust !== undefined || o.policy !== undefined;
  if (hasStatic === (o.material !== undefined)) {
    throw new TypeError(
      'trustplane(): give either { trust, policy } or { material: () => ({ trust, policy }) }',
    );
  }
  if (hasStatic) checkMaterial(o.trust, o.policy, '');
  else if (!isFunction(o.material)) throw new TypeError('trustplane(): material must be a function');
  if (!isObject(o.replayStore) || !isFunction(o.replayStore.consume)) {
    throw new TypeError('trustplane(): replayStore must be a ReplayStore');
  }
  if (o.clock !== undefined && !isFunction(o.clock))
    throw new TypeError('trustplane(): clock must be a function');
  checkSeconds('skewSeconds', o.skewSeconds);
  checkSeconds('maxLifetimeSeconds', o.maxLifetimeSeconds);
  const maxBodyBytes = o.maxBodyBytes ?? defaultMaxBodyBytes;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) {
    throw new RangeError('trustplane(): maxBodyBytes must be a non-negative integer');
  }
  const durableAuditTimeoutMs = o.durableAuditTimeoutMs ?? DEFAULT_DURABLE_AUDIT_TIMEOUT_MS;
  if (!Number.isSafeInteger(durableAuditTimeoutMs) || durableAuditTimeoutMs <= 0) {
    throw new RangeError('trustplane(): durableAuditTimeoutMs must be a positive integer (ms)');
  }
  if (o.routeId !== undefined && (typeof o.routeId !== 'string' || o.routeId === '')) {
    throw new TypeError('trustplane(): routeId must be a non-empty string');
  }
  if (o.routeId !== undefined && o.policy !== undefined && !o.policy.routeTable.resolveById(o.routeId)) {
    throw new RangeError(`trustplane(): routeId ${JSON.stringify(o.routeId)} is not in the policy bundle`);
  }
  if (o.publicOrigin !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(o.publicOrigin);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash) {
      throw new TypeError('trustplane(): publicOrigin must be an http(s) origin such as https://api.example');
    }
  }
  if (o.audit !== undefined && (!isObject(o.audit) || !isFunction(o.audit.write))) {
    throw new TypeError('trustplane(): audit must be an AuditSink');
  }
  for (const hook of ['onAuditError', 'observe'] as const) {
    if (o[hook] !== undefined && !isFunction(o[hook]))
      throw new TypeError(`trustplane(): ${hook} must be a function`);
  }
  if (o.receipts !== undefined && (!isObject(o.receipts) || !isFunction(o.receipts.sign))) {
    throw new TypeError('trustplane(): receipts must be a ReceiptSigner');
  }
  const common = {
    replayStore: o.replayStore,
    maxBodyBytes,
    ...(o.clock !== undefined ? { clock: o.clock } : {}),
    ...(o.skewSeconds !== undefined ? { skewSeconds: o.skewSeconds } : {}),
    ...(o.maxLifetimeSeconds !== undefined ? { maxLifetimeSeconds: o.maxLifetimeSeconds } : {}),
    ...(o.routeId !== undefined ? { routeId: o.routeId } : {}),
    ...(o.publicOrigin !== undefined ? { publicOrigin: o.publicOrigin } : {}),
    ...(o.bindHost === true ? { bindHost: true } : {}),
  };
  let material: TrustplaneMaterialProvider;
  if (o.material === undefined) {
    const fixed: TrustplaneMaterial = { trust: o.trust!, policy: o.policy! };
    material = () => fixed;
  } else {
    material = o.material;
  }
  return { material, common, maxBodyBytes, durableAuditTimeoutMs };
}
