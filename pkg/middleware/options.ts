import { statusForReason, type IssuerRegistry, type ReasonCode } from '../authcore/index.js';
import {
  auditEventFromDecision,
  type AuditEvent,
  type AuditRequestInfo,
  type AuditSink,
} from '../audit/event.js';
import type { LoadedPolicy } from '../bundle/index.js';
import type { Decision, DenyDecision, VerifierContext } from '../verifier/index.js';

// Shared by the Hono and the Node middleware. Web APIs only: the Hono middleware runs on
// Workers, Deno and Bun.

/** Trust material and policy bundle one decision is made from (one consistent snapshot). */
export interface TrustplaneMaterial {
  /** Loaded trust material (issuers and keys), e.g. from `loadTrustMaterial`. */
  readonly trust: IssuerRegistry;
  /** Loaded policy bundle, e.g. from `loadPolicyBundle`. */
  readonly policy: LoadedPolicy;
}

/**
 * Returns the currently loaded {@link TrustplaneMaterial}, or `undefined` while nothing valid is
 * loaded (the request is then denied `policy_unavailable`, 503). Called once per request, so a
 * reloader that swaps the snapshot it returns takes effect on the next request, and one request
 * never mixes trust material and policy of different loads. If it throws, or returns something
 * that is not loaded material, the request is denied `internal_error` (500).
 * @example
 * let current: TrustplaneMaterial | undefined
 * watcher.on('loaded', (trust, policy) => (current = { trust, policy }))
 * trustplane({ material: () => current, replayStore })
 */
export type TrustplaneMaterialProvider = () => TrustplaneMaterial | undefined;

/** Options both middlewares share (everything except the material source and `onDecision`). */
export interface TrustplaneCommonOptions extends Pick<
  VerifierContext,
  'replayStore' | 'clock' | 'skewSeconds' | 'maxLifetimeSeconds' | 'routeId' | 'publicOrigin' | 'maxBodyBytes'
> {
  /** Where one audit event per decision goes (default: none). */
  readonly audit?: AuditSink;
  /**
   * Called when the audit sink throws or rejects; the decision stands either way. Default: a
   * `console.error` line on the 1st, 10th, 100th, … failure (bounded log volume).
   */
  readonly onAuditError?: (error: unknown, event: AuditEvent | undefined) => void;
  /** Instance name written to audit events. */
  readonly instance?: string;
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
 * Options of `trustplane()` in both middlewares: either `{ trust, policy }` (static) or
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

/** Validated options, ready per request. @internal (not exported by the module entries) */
export interface PreparedOptions {
  readonly maxBodyBytes: number;
  /** The verifier context for this request, or a deny when no material is available. */
  readonly context: () => VerifierContext | DenyDecision;
  /** Write the audit event for a decision (never throws). */
  readonly audit: (
    decision: Decision,
    facts: {
      readonly request: AuditRequestInfo;
      readonly startedMs: number;
      readonly policyVersion: string | undefined;
      readonly status?: number;
    },
  ) => Promise<void>;
  readonly auditEnabled: boolean;
  /**
   * Record the decision and return the one that stands: on a route with `audit: "required"`, an
   * allow stands only once its event is durable (`writeDurable`); otherwise it becomes a 503
   * `audit_unavailable` deny. Every other decision is written best effort, as `audit` does.
   */
  readonly record: (
    decision: Decision,
    answered: Decision,
    facts: {
      readonly request: AuditRequestInfo;
      readonly startedMs: number;
      readonly policyVersion: string | undefined;
      readonly policy: LoadedPolicy | undefined;
    },
  ) => Promise<Decision>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isFunction = (v: unknown): boolean => typeof v === 'function';

function checkMaterial(trust: unknown, policy: unknown, where: string): void {
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
 * A deny made by the middleware itself (before or around the verifier), at stage `parse`.
 * @internal (not exported by the module entries)
 * @param reason the reason code; the status is the registry's
 * @param message operator-facing detail for the audit event (never sent to the caller)
 * @returns the deny decision
 */
export function middlewareDeny(reason: ReasonCode, message: string): DenyDecision {
  return { allowed: false, status: statusForReason(reason), reason, stage: 'parse', message, details: {} };
}

function defaultAuditErrorReporter(): (error: unknown) => void {
  let failures = 0;
  let nextReport = 1;
  return (error) => {
    failures += 1;
    // 1st, 10th, 100th, ...: visible without flooding the log while a sink is down.
    if (failures === nextReport) {
      nextReport *= 10;
      const why = error instanceof Error ? error.message : String(error);
      console.error(`trustplane: audit write failed (${failures} so far): ${why}`);
    }
  };
}

/**
 * Validate `trustplane()` options eagerly (caller misuse throws at construction) and prepare the
 * per-request pieces. @internal (not exported by the module entries)
 * @param options the caller's options
 * @param component the audit component name
 * @param defaults the middleware's default body limit and instance name
 * @returns the per-request context resolver and audit writer
 * @throws TypeError or RangeError for misuse
 */
export function prepareOptions(
  options: TrustplaneMiddlewareOptions,
  component: 'middleware-hono' | 'middleware-node',
  defaults: { readonly maxBodyBytes: number; readonly instance?: string },
): PreparedOptions {
  if (!isObject(options)) throw new TypeError('trustplane(): options must be an object');
  const o = options as TrustplaneMiddlewareOptions & Record<string, unknown>;
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
  const maxBodyBytes = o.maxBodyBytes ?? defaults.maxBodyBytes;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) {
    throw new RangeError('trustplane(): maxBodyBytes must be a non-negative integer');
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
  if (o.onAuditError !== undefined && !isFunction(o.onAuditError)) {
    throw new TypeError('trustplane(): onAuditError must be a function');
  }
  const instance = o.instance ?? defaults.instance;

  const common = {
    replayStore: o.replayStore,
    maxBodyBytes,
    ...(o.clock !== undefined ? { clock: o.clock } : {}),
    ...(o.skewSeconds !== undefined ? { skewSeconds: o.skewSeconds } : {}),
    ...(o.maxLifetimeSeconds !== undefined ? { maxLifetimeSeconds: o.maxLifetimeSeconds } : {}),
    ...(o.routeId !== undefined ? { routeId: o.routeId } : {}),
    ...(o.publicOrigin !== undefined ? { publicOrigin: o.publicOrigin } : {}),
  };
  let context: () => VerifierContext | DenyDecision;
  if (o.material === undefined) {
    const fixed: VerifierContext = { ...common, trust: o.trust!, policy: o.policy! };
    context = () => fixed;
  } else {
    const provider = o.material;
    context = () => {
      let material: TrustplaneMaterial | undefined;
      try {
        material = provider();
      } catch {
        return middlewareDeny('internal_error', 'material provider threw');
      }
      if (material === undefined) {
        return middlewareDeny('policy_unavailable', 'no trust material or policy bundle loaded');
      }
      try {
        checkMaterial(material.trust, material.policy, 'material().');
      } catch (e) {
        return middlewareDeny('internal_error', (e as Error).message);
      }
      return { ...common, trust: material.trust, policy: material.policy };
    };
  }

  const sink = o.audit;
  const onAuditError = o.onAuditError ?? defaultAuditErrorReporter();
  const audit: PreparedOptions['audit'] = async (decision, facts) => {
    if (sink === undefined) return;
    let event: AuditEvent | undefined;
    try {
      event = auditEventFromDecision(decision, {
        component,
        ...(instance !== undefined ? { instance } : {}),
        request: facts.request,
        latencyUs: (performance.now() - facts.startedMs) * 1000,
        ...(facts.policyVersion !== undefined ? { policyVersion: facts.policyVersion } : {}),
        ...(facts.status !== undefined ? { status: facts.status } : {}),
      });
      await sink.write(event);
    } catch (error) {
      try {
        // A failing reporter must not break the request either.
        onAuditError(error, event);
      } catch {
        /* ignored: the decision stands */
      }
    }
  };
  const record: PreparedOptions['record'] = async (decision, answered, facts) => {
    const base = { request: facts.request, startedMs: facts.startedMs, policyVersion: facts.policyVersion };
    const required =
      answered.allowed && facts.policy?.routesById.get(answered.routeId)?.route.audit === 'required';
    if (!required || !answered.allowed) {
      await audit(decision, { ...base, ...(answered !== decision ? { status: answered.status } : {}) });
      return answered;
    }
    const deny: DenyDecision = {
      ...middlewareDeny('audit_unavailable', 'the route requires a durable audit write'),
      stage: 'policy',
      routeId: answered.routeId,
      issuer: answered.issuer,
      subject: answered.subject,
      jti: answered.jti,
    };
    if (sink?.writeDurable === undefined || sink.durableAvailable === false) {
      await audit(deny, base);
      return deny;
    }
    try {
      await sink.writeDurable(
        auditEventFromDecision(answered, {
          component,
          ...(instance !== undefined ? { instance } : {}),
          request: facts.request,
          latencyUs: (performance.now() - facts.startedMs) * 1000,
          ...(facts.policyVersion !== undefined ? { policyVersion: facts.policyVersion } : {}),
        }),
      );
      return answered;
    } catch (error) {
      try {
        onAuditError(error, undefined);
      } catch {
        /* ignored */
      }
      // A queued allow event will still be written: it stays the decision's one record.
      if ((error as { queued?: unknown }).queued !== true) await audit(deny, base);
      return deny;
    }
  };
  return { maxBodyBytes, context, audit, auditEnabled: sink !== undefined, record };
}
