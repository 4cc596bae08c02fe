import { randomUUID } from 'node:crypto';
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import type { ReplayStore } from '../authcore/replay-store.js';
import type { AuditComponent } from '../audit/event.js';
import type { AuditSink } from '../audit/audit-sink.js';
import { firstHeaderValue, type ByteBudget } from '../internal/node-http/index.js';
import type { BundleManager } from '../runtime/bundle-manager.js';
import type { Logger } from '../runtime/logger.js';
import type { AdapterMetrics } from '../runtime/metrics.js';
import {
  createEnforcementKernel,
  type EnforcementKernel,
  type EnforcementObservation,
  type ReceiptSigner,
} from '../verifier/index.js';
import type { AdapterConfig } from './config.js';
import { UpstreamSlots } from './upstream-slots.js';

/** What the request handlers need (one per adapter instance). */
export interface EnforcementRuntime {
  readonly config: AdapterConfig;
  /** The enforcement kernel (proxy mode: component `adapter`; forward-auth, ext-authz-grpc: `forward-auth`). */
  readonly kernel: EnforcementKernel;
  readonly log: Logger;
  readonly metrics: AdapterMetrics;
  readonly upstream?: URL;
  readonly agent?: HttpAgent | HttpsAgent;
  /**
   * Proxy mode: the upstream connections (`upstreamMaxSockets`), taken before the jti is consumed
   * and waited for at most `upstreamQueueTimeoutMs` (see proxy.ts).
   */
  readonly upstreamSlots?: UpstreamSlots;
  /** The buffered-bytes budget (`maxBufferedBodyBytes`) every request's body counts against. */
  readonly budget: ByteBudget;
}

/** A {@link ByteBudget} of `limit` bytes, reported in `trustplane_buffered_body_bytes`. */
function byteBudget(limit: number, metrics: AdapterMetrics): ByteBudget {
  let used = 0;
  return {
    tryReserve(bytes) {
      if (used + bytes > limit) {
        metrics.overloadRefusals.inc({ kind: 'body_budget' });
        return false;
      }
      used += bytes;
      metrics.bufferedBodyBytes.set(used);
      return true;
    },
    release(bytes) {
      used = Math.max(0, used - bytes);
      metrics.bufferedBodyBytes.set(used);
    },
  };
}

/** What {@link createEnforcementRuntime} builds the runtime from. */
export interface EnforcementRuntimeDeps {
  readonly bundles: BundleManager;
  readonly replayStore: ReplayStore;
  readonly audit: AuditSink;
  readonly log: Logger;
  readonly metrics: AdapterMetrics;
  readonly clock?: () => number;
  readonly upstream?: URL;
  readonly agent?: HttpAgent | HttpsAgent;
  /** Receipt signer (routes with `receipt: true`); absent when no receipt key is configured. */
  readonly receipts?: ReceiptSigner;
}

/** Count one audit write failure and log it (never the event's content). */
export function reportAuditFailure(deps: { log: Logger; metrics: AdapterMetrics }, e: unknown): void {
  deps.metrics.auditWriteFailures.inc();
  deps.log.error('audit write failed', { error: e instanceof Error ? e.message : String(e) });
}

/**
 * The adapter's enforcement runtime: the kernel over the bundle manager's current snapshot, with
 * the adapter's metrics and decision log as its observer.
 */
export function createEnforcementRuntime(
  config: AdapterConfig,
  deps: EnforcementRuntimeDeps,
): EnforcementRuntime {
  const { log, metrics, bundles } = deps;
  // The gRPC ext_authz check is forward-auth in another transport: the gateway holds the request.
  const external = config.mode === 'forward-auth' || config.mode === 'ext-authz-grpc';
  const component: AuditComponent = external ? 'forward-auth' : 'adapter';
  const observe = (o: EnforcementObservation) => {
    const d = o.decision;
    const reason = d.allowed ? 'none' : d.reason;
    metrics.decisions.inc({ outcome: o.outcome, reason, route: d.routeId ?? '' });
    metrics.verifySeconds.observe({ outcome: o.outcome }, o.seconds);
    if (!d.allowed && d.reason === 'replay_store_unavailable') metrics.replayStoreErrors.inc();
    if (log.enabled('info')) {
      log.info('decision', {
        component,
        decision: o.outcome,
        status: d.status,
        reason: d.allowed ? undefined : d.reason,
        stage: d.allowed ? undefined : d.stage,
        route_id: d.routeId,
        method: o.request.method,
        path: o.request.path,
        sub: d.subject,
        iss: d.issuer,
        jti: d.jti,
        request_id: o.request.requestId,
        latency_ms: Math.round(o.seconds * 1e6) / 1e3,
        // A deny says why: request_binding_mismatch names the transcript inputs the verifier
        // used (origin and where it came from, method, path, query, covered header names, body
        // digest), never a secret.
        ...(d.allowed ? {} : { message: d.message, ...detailFields(d.details) }),
      });
    }
  };
  const kernel = createEnforcementKernel({
    component,
    material: () => bundles.current,
    replayStore: deps.replayStore,
    audit: deps.audit,
    instance: config.instance,
    skewSeconds: config.skewSeconds,
    maxLifetimeSeconds: config.maxLifetimeSeconds,
    maxBodyBytes: config.maxBodyBytes,
    // Forward-auth cannot replace the Host the gateway forwards: it must be the signed origin.
    bindHost: external,
    durableAuditTimeoutMs: config.auditDurableTimeoutMs,
    onAuditError: (e) => reportAuditFailure(deps, e),
    observe,
    ...(deps.clock !== undefined ? { clock: deps.clock } : {}),
    ...(config.routeId !== undefined ? { routeId: config.routeId } : {}),
    ...(config.publicOrigin !== undefined ? { publicOrigin: config.publicOrigin } : {}),
    ...(deps.receipts !== undefined ? { receipts: deps.receipts } : {}),
  });
  return {
    config,
    kernel,
    log,
    metrics,
    budget: byteBudget(config.maxBufferedBodyBytes, metrics),
    ...(deps.upstream !== undefined ? { upstream: deps.upstream } : {}),
    ...(deps.agent !== undefined ? { agent: deps.agent } : {}),
    ...(deps.upstream !== undefined
      ? { upstreamSlots: new UpstreamSlots(config.upstreamMaxSockets, config.upstreamQueueTimeoutMs) }
      : {}),
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request id the adapter uses: the caller's `X-Request-Id` when well-formed, else a new UUID. */
export function requestIdOf(req: IncomingMessage): string {
  return requestIdFrom(firstHeaderValue(req, 'x-request-id'));
}

/** The request id for a given `X-Request-Id` value: it when well-formed, else a new UUID. */
export function requestIdFrom(given: string | undefined): string {
  return given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
}

/** A deny's details as flat log fields, `detail_<name>` (deny path only). */
function detailFields(
  details: Readonly<Record<string, string | number | boolean>>,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(details)) out[`detail_${k}`] = v;
  return out;
}
