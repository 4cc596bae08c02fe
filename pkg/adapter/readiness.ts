import { HEALTHY, unhealthy, type ComponentHealth } from '../authcore/component-health.js';
import type { ReplayStore } from '../authcore/replay-store.js';

/** What `/readyz` answers: ready only when every check is `ok`. */
export interface Readiness {
  readonly ready: boolean;
  /** One entry per component: `ok` or the reason it cannot serve (docs/operations.md). */
  readonly checks: Record<string, string>;
  /** Each bundle's age, limit and time left (`freshnessJson`), added by the adapter. */
  readonly bundles?: Readonly<Record<string, Readonly<Record<string, number | string>>>>;
}

/** How long one component may take to answer before it counts as `unavailable`. */
const CHECK_TIMEOUT_MS = 1_000;

async function bounded(check: () => ComponentHealth | Promise<ComponentHealth>): Promise<ComponentHealth> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(check),
      new Promise<ComponentHealth>((resolve) => {
        timer = setTimeout(() => resolve(unhealthy('unavailable')), CHECK_TIMEOUT_MS);
      }),
    ]);
  } catch {
    return unhealthy('unavailable');
  } finally {
    clearTimeout(timer);
  }
}

/** A replay store's readiness: its `health` when it has one, else whether `ping` answers. */
export async function replayHealth(store: ReplayStore): Promise<ComponentHealth> {
  if (store.health) return store.health();
  if (store.ping) await store.ping();
  return HEALTHY;
}

/** Evaluate every component's check (each bounded in time, a throw counts as `unavailable`). */
export async function readiness(parts: {
  readonly draining: boolean;
  readonly bundles: () => ComponentHealth;
  readonly replayStore: () => Promise<ComponentHealth>;
  readonly audit?: (() => ComponentHealth | Promise<ComponentHealth>) | undefined;
}): Promise<Readiness> {
  const named: [string, () => ComponentHealth | Promise<ComponentHealth>][] = [
    ['bundles', parts.bundles],
    ['replay_store', parts.replayStore],
  ];
  if (parts.audit) named.push(['audit', parts.audit]);
  const results = await Promise.all(named.map(([, check]) => bounded(check)));
  const checks: Record<string, string> = {};
  named.forEach(([name], i) => {
    const r = results[i]!;
    checks[name] = r.ok ? 'ok' : (r.reason ?? 'unavailable');
  });
  if (parts.draining) checks.shutdown = 'draining';
  return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
}
