import type { BrokerIpcResponse } from '../proof/broker-ipc-v1.js';
import { denyResponse } from './broker.js';

/*
 * Load shedding for the broker's TLS listener: the in-flight budget its connections share, the
 * `overloaded` answer, and a rate-limited report of refusals (the broker has no metrics listener:
 * the report becomes a counted log line).
 */

/** Which limit refused: the connection cap or the in-flight cap. */
export type BrokerTlsLimit = 'connections' | 'in_flight';

/** One report of refusals (at most one per limit per {@link OVERLOAD_REPORT_INTERVAL_MS}). */
export interface BrokerTlsOverload {
  readonly limit: BrokerTlsLimit;
  /** The configured cap. */
  readonly max: number;
  /** Refusals since the previous report of this limit. */
  readonly refused: number;
  /** Refusals since the listener started. */
  readonly refusedTotal: number;
}

/** Reports of one limit are at least this far apart (the first refusal is reported at once). */
export const OVERLOAD_REPORT_INTERVAL_MS = 1000;

const MESSAGES: Readonly<Record<BrokerTlsLimit, string>> = {
  connections: 'the broker is at its limit of TLS connections; retry later',
  in_flight: 'the broker is at its limit of requests in flight; retry later',
};

/** The `overloaded` deny (retryable) a shed connection or request is answered with. */
export function overloadedResponse(requestId: string, limit: BrokerTlsLimit): BrokerIpcResponse {
  return denyResponse(requestId, 'overloaded', MESSAGES[limit], { limit });
}

/** The `request_id` of a request line, if it has a usable one (for the answer to a shed request). */
export function requestIdOfLine(line: string): string {
  try {
    const id = (JSON.parse(line) as { request_id?: unknown } | null)?.request_id;
    if (typeof id === 'string' && id.length > 0 && id.length <= 256) return id;
  } catch {
    // not JSON: answered as `unknown`, like any unreadable request
  }
  return 'unknown';
}

/**
 * Requests received and not yet answered, over all the connections of a listener. A request takes
 * a slot when its line arrives (queued behind earlier ones on its connection or not) and gives it
 * back once answered, so the bound covers buffered requests as well as those being decided.
 */
export class InFlightBudget {
  readonly max: number;
  readonly #onRefused: () => void;
  #current = 0;

  /**
   * @param max most requests in flight at once
   * @param onRefused called for every request refused for lack of a slot
   */
  constructor(max: number, onRefused: () => void) {
    this.max = max;
    this.#onRefused = onRefused;
  }

  /** Requests in flight now. */
  get current(): number {
    return this.#current;
  }

  /** Take a slot; false (and counted) when none is free. */
  tryAcquire(): boolean {
    if (this.#current >= this.max) {
      this.#onRefused();
      return false;
    }
    this.#current += 1;
    return true;
  }

  /** Give a slot back. */
  release(): void {
    if (this.#current > 0) this.#current -= 1;
  }
}

/**
 * Counts refusals per limit and reports them at most once per interval per limit: under a flood a
 * log line per refused connection would be a second flood. Every refusal is in some report;
 * `close()` reports what is pending.
 */
export class OverloadReporter {
  readonly #report: ((report: BrokerTlsOverload) => void) | undefined;
  readonly #max: Readonly<Record<BrokerTlsLimit, number>>;
  readonly #pending: Record<BrokerTlsLimit, number> = { connections: 0, in_flight: 0 };
  readonly #total: Record<BrokerTlsLimit, number> = { connections: 0, in_flight: 0 };
  readonly #last: Record<BrokerTlsLimit, number> = { connections: -Infinity, in_flight: -Infinity };
  readonly #timers: Partial<Record<BrokerTlsLimit, NodeJS.Timeout>> = {};

  constructor(
    max: Readonly<Record<BrokerTlsLimit, number>>,
    report: ((report: BrokerTlsOverload) => void) | undefined,
  ) {
    this.#max = max;
    this.#report = report;
  }

  /** Refusals since start, per limit. */
  total(limit: BrokerTlsLimit): number {
    return this.#total[limit];
  }

  /** Count one refusal. */
  count(limit: BrokerTlsLimit): void {
    this.#total[limit] += 1;
    this.#pending[limit] += 1;
    const wait = this.#last[limit] + OVERLOAD_REPORT_INTERVAL_MS - performance.now();
    if (wait <= 0) this.#flush(limit);
    else if (this.#timers[limit] === undefined) {
      const timer = setTimeout(() => this.#flush(limit), wait);
      timer.unref();
      this.#timers[limit] = timer;
    }
  }

  /** Report what is pending and stop the timers. */
  close(): void {
    this.#flush('connections');
    this.#flush('in_flight');
  }

  #flush(limit: BrokerTlsLimit): void {
    clearTimeout(this.#timers[limit]);
    delete this.#timers[limit];
    const refused = this.#pending[limit];
    if (refused === 0) return;
    this.#pending[limit] = 0;
    this.#last[limit] = performance.now();
    try {
      this.#report?.({ limit, max: this.#max[limit], refused, refusedTotal: this.#total[limit] });
    } catch {
      // A throwing listener must not stop the shedding.
    }
  }
}
