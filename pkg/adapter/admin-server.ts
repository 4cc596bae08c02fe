import { createServer, type Server } from 'node:http';

/** The admin listener: `/healthz`, `/readyz`, `/metrics`. */
export function createAdminServer(deps: {
  readonly metrics: { readonly registry: { metrics(): Promise<string>; readonly contentType: string } };
  readonly ready: () => Promise<{ ready: boolean; checks: Record<string, string> }>;
}): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'method not allowed' });
    if (path === '/healthz') return json(200, { status: 'ok' });
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
