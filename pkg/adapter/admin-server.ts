import { createServer, type Server } from 'node:http';

/** What `/healthz` answers: whether the process should be left running (see {@link createAdminServer}). */
export interface Liveness {
  readonly ok: boolean;
  /** Why not, as a stable snake_case word (`workers_down`); absent when `ok`. */
  readonly reason?: string;
  /** Figures behind the reason (never secrets). */
  readonly details?: Readonly<Record<string, string | number>>;
}

/**
 * The admin listener: `/healthz`, `/readyz`, `/metrics`.
 *
 * `/healthz` is liveness: 200 `{"status":"ok"}` while the process can recover by itself; 503
 * `{"status":"unhealthy","reason":…}` when it cannot and should be restarted (a cluster primary
 * whose worker slot has stayed down past `workerDownHealthLimitMs`). `/readyz` is readiness: 200
 * only when requests can be served now, 503 with the reason of each check otherwise.
 */
export function createAdminServer(deps: {
  readonly metrics: { readonly registry: { metrics(): Promise<string>; readonly contentType: string } };
  readonly ready: () => Promise<{ ready: boolean; checks: Record<string, string> }>;
  /** Liveness (default: always live while the process answers). */
  readonly live?: () => Liveness;
}): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'method not allowed' });
    if (path === '/healthz') {
      let live: Liveness;
      try {
        live = deps.live?.() ?? { ok: true };
      } catch {
        live = { ok: false, reason: 'internal_error' };
      }
      if (live.ok) return json(200, { status: 'ok' });
      return json(503, { status: 'unhealthy', reason: live.reason ?? 'unavailable', ...live.details });
    }
    if (path === '/readyz') {
      deps
        .ready()
        .then((r) => json(r.ready ? 200 : 503, r))
        .catch(() => json(503, { ready: false }));
      return;
    }
    if (path === '/metrics') {
      deps.metrics.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
          res.end(text);
        })
        .catch(() => json(500, { error: 'metrics unavailable' }));
      return;
    }
    json(404, { error: 'not found' });
  });
}
