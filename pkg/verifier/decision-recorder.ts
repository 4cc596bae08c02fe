import { TrustplaneError } from '../authcore/errors.js';
import { type AuditComponent, type AuditEvent } from '../audit/event.js';
import {
  auditEventFromDecision,
  type AuditMcpCall,
  type AuditRequestInfo,
} from '../audit/event-from-decision.js';
import { type AuditSink } from '../audit/audit-sink.js';
import { denyFrom, type AllowDecision, type Decision } from './decision.js';

/** What a decision's audit event says besides the decision. */
export interface RecordFacts {
  readonly request: AuditRequestInfo;
  /** `performance.now()` when the request arrived (the event's `latency_us`). */
  readonly startedMs: number;
  /** The `policy_version` of the snapshot the decision was made from. */
  readonly policyVersion: string | undefined;
  /** The route's enforcement mode (`dry-run` is written to the event). */
  readonly enforcement: 'enforce' | 'dry-run';
  /** MCP routes: the JSON-RPC call the event records. */
  readonly mcp?: AuditMcpCall | undefined;
}

/** Reports audit failures: the 1st, 10th, 100th, … on stderr (visible without flooding while a sink is down). */
export function defaultAuditErrorReporter(): (error: unknown) => void {
  let failures = 0;
  let nextReport = 1;
  return (error) => {
    failures += 1;
    if (failures === nextReport) {
      nextReport *= 10;
      const why = error instanceof Error ? error.message : String(error);
      console.error(`trustplane: audit write failed (${failures} so far): ${why}`);
    }
  };
}

/**
 * Writes one audit event per decision, for one enforcement point. Best-effort writes are handed to
 * the sink at once and never delay the answer; an allow on an `audit: "required"` route waits for a
 * durable write, bounded by one timeout. Never throws: failures go to `onAuditError`.
 * @internal (the kernel's; not exported by the module entry)
 */
export class DecisionRecorder {
  readonly #component: AuditComponent;
  readonly #instance: string | undefined;
  readonly #sink: AuditSink | undefined;
  readonly #onError: (error: unknown, event: AuditEvent | undefined) => void;
  readonly #durableTimeoutMs: number;

  constructor(options: {
    readonly component: AuditComponent;
    readonly instance: string | undefined;
    readonly sink: AuditSink | undefined;
    readonly onAuditError: ((error: unknown, event: AuditEvent | undefined) => void) | undefined;
    readonly durableTimeoutMs: number;
  }) {
    this.#component = options.component;
    this.#instance = options.instance;
    this.#sink = options.sink;
    this.#onError = options.onAuditError ?? defaultAuditErrorReporter();
    this.#durableTimeoutMs = options.durableTimeoutMs;
  }

  /** The audit event of a decision. */
  event(decision: Decision, facts: RecordFacts): AuditEvent {
    return auditEventFromDecision(decision, {
      component: this.#component,
      ...(this.#instance !== undefined ? { instance: this.#instance } : {}),
      request: facts.request,
      latencyUs: (performance.now() - facts.startedMs) * 1000,
      ...(facts.policyVersion !== undefined ? { policyVersion: facts.policyVersion } : {}),
      ...(facts.enforcement === 'dry-run' ? { enforcement: 'dry-run' as const } : {}),
      ...(facts.mcp !== undefined ? { mcp: facts.mcp } : {}),
    });
  }

  /** Write a decision's event, best effort (never waits, never throws). */
  write(decision: Decision, facts: RecordFacts): void {
    if (this.#sink === undefined) return;
    let event: AuditEvent | undefined;
    try {
      event = this.event(decision, facts);
    } catch (e) {
      this.#failed(e, undefined);
      return;
    }
    this.writeEvent(event);
  }

  /** Write a prepared event (e.g. `receipt_issued`), best effort. */
  writeEvent(event: AuditEvent): void {
    const sink = this.#sink;
    if (sink === undefined) return;
    try {
      const written = sink.write(event);
      if (written instanceof Promise) written.catch((e: unknown) => this.#failed(e, event));
    } catch (e) {
      this.#failed(e, event);
    }
  }

  /**
   * Record an allow on an `audit: "required"` route: it stands only once its event is durable
   * (PostgreSQL commit, file fsync); otherwise the answer is 503 `audit_unavailable`.
   * - A sink without `writeDurable`, or one that says a durable write cannot succeed now
   *   (`durableAvailable === false`): the allow is never recorded; the 503 deny is the decision's
   *   one record.
   * - A durable write that failed with nothing recorded (a file whose fsync failed is rolled back):
   *   the 503 deny is recorded.
   * - A durable write the sink keeps queued (`queued: true`, PostgreSQL went down during the
   *   commit), or one still in flight when the timeout fires: the allow event will be written and
   *   stays the decision's one record (a deny record would count the decision twice).
   * @returns the decision that stands: the allow, or the 503 deny
   */
  async writeRequired(allow: AllowDecision, facts: RecordFacts): Promise<Decision> {
    const deny = denyFrom(
      new TrustplaneError('audit_unavailable', 'the route requires a durable audit write'),
      'policy',
      allow,
    );
    const sink = this.#sink;
    if (sink?.writeDurable === undefined || sink.durableAvailable === false) {
      this.write(deny, facts);
      return deny;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Error('durable audit write timed out');
    try {
      await Promise.race([
        sink.writeDurable(this.event(allow, facts)),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(timedOut), this.#durableTimeoutMs);
        }),
      ]);
      return allow;
    } catch (e) {
      this.#failed(e, undefined);
      const queued = e === timedOut || (e as { queued?: unknown } | null)?.queued === true;
      if (!queued) this.write(deny, facts);
      return deny;
    } finally {
      clearTimeout(timer);
    }
  }

  #failed(error: unknown, event: AuditEvent | undefined): void {
    try {
      this.#onError(error, event);
    } catch {
      // A failing reporter must not break the request either: the decision stands.
    }
  }
}
