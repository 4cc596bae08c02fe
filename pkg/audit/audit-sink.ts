import type { ComponentHealth } from '../authcore/component-health.js';
import type { AuditEvent } from './event.js';

/** Where audit events go. `write` must not throw for a healthy sink; failures reject. */
export interface AuditSink {
  write(event: AuditEvent): void | Promise<void>;
  /**
   * Write and resolve only once the event is durable (file fsync, PostgreSQL commit); reject when
   * that cannot happen. Routes with `audit: "required"` use it before allowing. Sinks without it
   * cannot serve such routes.
   */
  writeDurable?(event: AuditEvent): Promise<void>;
  /**
   * False while the sink knows a durable write cannot succeed (PostgreSQL unreachable, events
   * buffered): `audit: "required"` routes are then refused at once without recording an allow.
   */
  readonly durableAvailable?: boolean;
  /**
   * Readiness: false with a reason while the sink cannot keep what it is given as documented
   * (backlog over its limit, spill not writable, destination unreachable).
   */
  health?(): ComponentHealth | Promise<ComponentHealth>;
  /** Flush buffered events. */
  flush?(): Promise<void>;
  close?(): Promise<void>;
}

/** Keeps events in memory (tests, embedding). */
export class MemoryAuditSink implements AuditSink {
  readonly events: AuditEvent[] = [];
  write(event: AuditEvent): void {
    this.events.push(event);
  }
}
