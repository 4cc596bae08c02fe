import { TrustplaneError } from '../authcore/errors.js';
import { REASON_CODES } from '../authcore/reason-codes.js';
import type { AuditComponent } from '../audit/event.js';
import type { AuditRequestInfo } from '../audit/event-from-decision.js';
import { RECEIPT_VERSION, type ReceiptPayload } from '../audit/receipt-schema.js';
import type { EnforcementMode } from '../bundle/policy-bundle-schema.js';
import { denyFrom, type AllowDecision, type Decision, type DenyDecision } from './decision.js';
import { denyAnswer, type DenyAnswer } from './deny-answer.js';
import { DecisionRecorder, type RecordFacts } from './decision-recorder.js';
import {
  checkMaterial,
  validateKernelOptions,
  type EnforcementKernelOptions,
  type EnforcementOutcomeLabel,
  type TrustplaneMaterial,
} from './kernel-options.js';
import { DEFAULT_MAX_BODY_BYTES, type NormalizedRequest } from './normalized-request.js';
import { McpSessionBindings, type McpVerdict } from '../mcp/index.js';
import { mcpDenyAnswer, runMcpStage } from './mcp-stage.js';
import { verifyRequest, type VerifierContext } from './verify-request.js';

/** One request, as an enforcement point hands it to the kernel. */
export interface EnforcementInput {
  /**
   * The request as the point read it (a Web `Request`, or a {@link NormalizedRequest} built from
   * the raw request), or the reading layer's refusal (request target, repeated critical header,
   * body too large or unreadable), which the kernel records and answers like any other deny.
   */
  readonly request: Request | NormalizedRequest | TrustplaneError;
  /** Request facts for the audit event (the query only as a digest). */
  readonly facts: AuditRequestInfo;
  /** `performance.now()` when the request arrived. */
  readonly startedMs: number;
  /**
   * Sees the verifier's decision before it is recorded (the middlewares' `onDecision`). If it
   * throws, the request is denied 500 `internal_error` (fail closed).
   */
  readonly onDecision?: (decision: Decision) => void;
}

/** The request is allowed: forward it with the identity of `decision`. */
export interface AllowEnforcement {
  readonly outcome: 'allow';
  readonly decision: AllowDecision;
  /** The route's enforcement mode (`dry-run` routes allow like `enforce` ones). */
  readonly mode: EnforcementMode;
  /** True when the route asks for a receipt and the kernel has a receipt signer. */
  readonly receipt: boolean;
  /** What the decision was recorded with (its snapshot's policy version; used by receipts). */
  readonly facts: RecordFacts;
  /**
   * Routes with `mcp` (enforced): the MCP verdict. When `mcp.lists` is set, the point filters the
   * upstream's answer to the list requests (`filterMcpResponse`, `McpSseFilter` in `trustplane/mcp`).
   */
  readonly mcp?: McpVerdict | undefined;
}

/** The request is denied: send `answer` (status, headers, body); the upstream sees nothing. */
export interface DenyEnforcement {
  readonly outcome: 'deny';
  readonly decision: DenyDecision;
  readonly answer: DenyAnswer;
}

/**
 * A deny on a `dry-run` route: recorded and counted (`would_deny`) but not enforced. The request
 * goes on WITHOUT any identity (no `X-TrustPlane-*` identity headers, no `req.trustplane`), and the
 * answer carries nothing of the decision.
 */
export interface PassEnforcement {
  readonly outcome: 'pass';
  readonly decision: DenyDecision;
}

/** What the enforcement point does with one request. */
export type Enforcement = AllowEnforcement | DenyEnforcement | PassEnforcement;

/** The upstream's answer a receipt covers. */
export interface ReceiptResponse {
  readonly status: number;
  /** Lowercase hex SHA-256 of the exact response body bytes. */
  readonly bodySha256: string;
}

/**
 * The enforcement kernel: the one decide → record → answer path every enforcement point (Hono and
 * Node middleware, the adapter's proxy and forward-auth modes) is a thin shim over.
 */
export interface EnforcementKernel {
  /** The enforcement point (audit `component`). */
  readonly component: AuditComponent;
  /** The body limit the point must read with (bytes). */
  readonly maxBodyBytes: number;
  /**
   * Decide one request: take one trust/policy snapshot, run the pipeline on it, apply the route's
   * options from that same snapshot (`audit: "required"`, `receipt`, `enforcement`), record the
   * decision (best effort, or durably with one timeout), and return what to do. Never throws.
   */
  enforce(input: EnforcementInput): Promise<Enforcement>;
  /**
   * Sign a `trustplane-receipt-v1` over an allowed request and the upstream's answer, and record
   * it as a `receipt_issued` event. The payload's policy version is the decision's snapshot's.
   * @throws when there is no receipt signer or signing fails (the point answers 502)
   */
  issueReceipt(allow: AllowEnforcement, response: ReceiptResponse): Promise<string>;
}

/**
 * True when a dry-run route may let this deny through. Request-layer refusals (unsafe path,
 * malformed request, body too large) protect the upstream itself and are always enforced, and so
 * is `internal_error` (our own failure stays fail-closed).
 */
function observable(decision: DenyDecision): boolean {
  return REASON_CODES[decision.reason].layer !== 'request' && decision.reason !== 'internal_error';
}

/**
 * Create the enforcement kernel for one enforcement point.
 * @param options trust material and policy (static or a provider read once per request), replay
 *   store, clock and limits, the audit sink, the point's `component`, an observer for metrics
 * @returns the kernel
 * @throws TypeError or RangeError at construction for invalid options
 * @example
 * const kernel = createEnforcementKernel({ component: 'library', trust, policy, replayStore, audit })
 * const e = await kernel.enforce({ request, facts: { method: 'GET', path: '/v1/orders' }, startedMs: performance.now() })
 * if (e.outcome === 'deny') return new Response(e.answer.body, e.answer)
 */
export function createEnforcementKernel(options: EnforcementKernelOptions): EnforcementKernel {
  const v = validateKernelOptions(options, DEFAULT_MAX_BODY_BYTES);
  const recorder = new DecisionRecorder({
    component: options.component,
    instance: options.instance,
    sink: options.audit,
    onAuditError: options.onAuditError,
    durableTimeoutMs: v.durableAuditTimeoutMs,
  });
  const { observe, receipts, clock } = options;
  const receiptIssuer = options.instance ?? options.component;
  // MCP routes: which caller used each Mcp-Session-Id first (bounded, per kernel).
  const mcpSessions = new McpSessionBindings();

  /**
   * The verifier context of a material snapshot, built once per snapshot (a reload makes a new
   * one): `{ ...common, trust, policy }` per request costs microseconds in V8.
   */
  const contexts = new WeakMap<TrustplaneMaterial, VerifierContext>();
  const contextFor = (material: TrustplaneMaterial): VerifierContext => {
    let context = contexts.get(material);
    if (context === undefined) {
      context = { ...v.common, trust: material.trust, policy: material.policy };
      contexts.set(material, context);
    }
    return context;
  };

  /** The snapshot of this request, or why there is none. */
  const snapshot = (): TrustplaneMaterial | TrustplaneError => {
    let material: TrustplaneMaterial | undefined;
    try {
      material = v.material();
    } catch {
      return new TrustplaneError('internal_error', 'material provider threw');
    }
    if (material === undefined) {
      return new TrustplaneError('policy_unavailable', 'no trust material or policy bundle loaded');
    }
    try {
      checkMaterial(material.trust, material.policy, 'material().');
    } catch (e) {
      return new TrustplaneError('internal_error', (e as Error).message);
    }
    return material;
  };

  const enforce = async (input: EnforcementInput): Promise<Enforcement> => {
    const found = snapshot();
    const material = found instanceof TrustplaneError ? undefined : found;
    let decision: Decision;
    let verdict: McpVerdict | undefined;
    if (input.request instanceof TrustplaneError) decision = denyFrom(input.request, 'parse');
    else if (material === undefined) decision = denyFrom(found as TrustplaneError, 'parse');
    else {
      decision = await verifyRequest(input.request, contextFor(material));
      if (decision.allowed) {
        // MCP routes only: decide each JSON-RPC call on the verified body (after proof and jti).
        const allowed = material.policy.routesById.get(decision.routeId)?.route;
        if (allowed?.mcp !== undefined) {
          const stage = await runMcpStage(
            allowed as typeof allowed & { mcp: NonNullable<typeof allowed.mcp> },
            decision,
            input.request,
            v.maxBodyBytes,
            mcpSessions,
          );
          decision = stage.decision;
          verdict = stage.verdict;
        }
      }
    }
    if (input.onDecision !== undefined) {
      try {
        input.onDecision(decision);
      } catch {
        decision = denyFrom(new TrustplaneError('internal_error', 'onDecision threw'), 'parse', decision);
      }
    }

    const route =
      decision.routeId !== undefined ? material?.policy.routesById.get(decision.routeId)?.route : undefined;
    const mode: EnforcementMode = route?.enforcement ?? 'enforce';
    const facts: RecordFacts = {
      request: input.facts,
      startedMs: input.startedMs,
      policyVersion: material?.policy.policyVersion,
      enforcement: mode,
      mcp: verdict?.calls[0],
    };
    if (!decision.allowed && mode === 'dry-run' && observable(decision)) {
      // A dry-run pass lets the request go on: a body the pipeline did not read yet is read now,
      // and a body that cannot be read (too large, overloaded) is a request-layer deny, enforced.
      const request = input.request;
      if (!(request instanceof TrustplaneError) && !(request instanceof Request) && request.readBody) {
        try {
          await request.readBody();
        } catch (e) {
          const err =
            e instanceof TrustplaneError ? e : new TrustplaneError('internal_error', 'body read failed');
          decision = denyFrom(err, 'parse', decision);
        }
      }
    }
    if (decision.allowed && route?.audit === 'required')
      decision = await recorder.writeRequired(decision, facts);
    else recorder.write(decision, facts);
    if (verdict !== undefined) {
      // One audit record per JSON-RPC call: the other messages of a batch, with its decision.
      for (let i = 1; i < verdict.calls.length; i++)
        recorder.write(decision, { ...facts, mcp: verdict.calls[i] });
    }

    let enforcement: Enforcement;
    let label: EnforcementOutcomeLabel;
    if (decision.allowed) {
      enforcement = {
        outcome: 'allow',
        decision,
        mode,
        receipt: (route?.receipt === true || verdict?.receipt === true) && receipts !== undefined,
        facts,
        // Always the same members (no spread on the hot path): undefined off MCP routes.
        mcp: mode === 'enforce' ? verdict : undefined,
      };
      label = 'allow';
    } else if (mode === 'dry-run' && observable(decision)) {
      enforcement = { outcome: 'pass', decision };
      label = 'would_deny';
    } else {
      // An MCP-stage deny reaches the agent as a JSON-RPC error, except at forward-auth, whose
      // gateway reads any 2xx as an allow.
      const answer =
        decision.stage === 'mcp' && verdict !== undefined && options.component !== 'forward-auth'
          ? mcpDenyAnswer(decision, verdict)
          : denyAnswer(decision);
      enforcement = { outcome: 'deny', decision, answer };
      label = 'deny';
    }
    if (observe !== undefined) {
      try {
        observe({
          outcome: label,
          decision,
          seconds: (performance.now() - input.startedMs) / 1000,
          request: input.facts,
        });
      } catch {
        // Metrics and logs never change a decision.
      }
    }
    return enforcement;
  };

  const issueReceipt = async (allow: AllowEnforcement, response: ReceiptResponse): Promise<string> => {
    if (receipts === undefined) throw new TypeError('no receipt signer configured');
    const { decision, facts } = allow;
    const payload: ReceiptPayload = {
      v: RECEIPT_VERSION,
      adapter: receiptIssuer,
      iat: Math.floor(clock ? clock() : Date.now() / 1000),
      request: {
        transcript_sha256: decision.transcriptSha256,
        method: facts.request.method ?? '',
        authority: decision.authority,
        path: facts.request.path ?? '',
        route_id: decision.routeId,
      },
      identity: {
        iss: decision.issuer,
        sub: decision.subject,
        aud: decision.audience,
        jti: decision.jti,
        trust_domain: decision.trustDomain,
        key_binding: decision.keyBinding,
      },
      decision: 'allow',
      response: { status: response.status, body_sha256: response.bodySha256 },
      ...(facts.policyVersion !== undefined ? { policy_version: facts.policyVersion } : {}),
    };
    const receipt = await receipts.sign(payload);
    recorder.writeEvent({
      ...recorder.event(decision, facts),
      event_type: 'receipt_issued',
      upstream_status: response.status,
      receipt,
    });
    return receipt;
  };

  return { component: options.component, maxBodyBytes: v.maxBodyBytes, enforce, issueReceipt };
}
