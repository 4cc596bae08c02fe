/**
 * What a component (replay store, audit sink, bundle set) knows about whether it can serve.
 * Readiness (`/readyz`) shows one check per component: `ok`, or the stable `reason` below.
 */
export interface ComponentHealth {
  /** True when the component can serve requests as configured. */
  readonly ok: boolean;
  /**
   * Why not, as a stable snake_case word listed in docs/operations.md (for example
   * `unavailable`, `out_of_memory`, `amnesia`, `eviction_policy`, `journal_write_failed`,
   * `backlog_over_limit`, `spill_failed`, `expired`). Absent when `ok`.
   */
  readonly reason?: string;
}

/** The healthy answer. */
export const HEALTHY: ComponentHealth = Object.freeze({ ok: true });

/** An unhealthy answer with its reason. */
export function unhealthy(reason: string): ComponentHealth {
  return { ok: false, reason };
}
