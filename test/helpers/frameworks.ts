import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AdapterConfigInput } from '../../pkg/adapter/index.js';
import { startTestAdapter, type TestAdapter } from './adapter.js';
import type { World } from './fixture.js';
import { startNginx, type NginxServer } from './nginx.js';

/** A node:http server on 127.0.0.1:0. */
export async function listen(handler: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

/** `http://127.0.0.1:<port>` of a listening server. */
export function baseOf(server: http.Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * Serve a fetch handler (a Hono app's `fetch`) over node:http: the raw request target goes into
 * the Request URL unchanged, every header line is kept, the body is passed for non-GET/HEAD.
 */
export function serveFetch(
  fetchHandler: (request: Request) => Response | Promise<Response>,
): Promise<http.Server> {
  return listen((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = new Headers();
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      const body =
        chunks.length > 0 && req.method !== 'GET' && req.method !== 'HEAD'
          ? Buffer.concat(chunks)
          : undefined;
      const request = new Request(`http://${req.headers.host}${req.url}`, {
        method: req.method ?? 'GET',
        headers,
        ...(body ? { body: new Uint8Array(body) } : {}),
      });
      void Promise.resolve(fetchHandler(request)).then(async (r) => {
        const out: Record<string, string> = {};
        r.headers.forEach((value, name) => (out[name] = value));
        res.writeHead(r.status, out);
        res.end(Buffer.from(await r.arrayBuffer()));
      });
    });
  });
}

/** Close servers, dropping their keep-alive connections. */
export async function closeServers(servers: readonly http.Server[]): Promise<void> {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

/**
 * A forward-auth adapter (`forwardAuthGateway: nginx`) behind a real nginx running
 * examples/nginx/trustplane-server.conf, in front of `upstreamPort`.
 */
export async function startNginxForwardAuth(
  world: World,
  upstreamPort: number,
  config: Partial<AdapterConfigInput> = {},
  /** Also serve the example's server block on this port over HTTP/2 (h2c, prior knowledge). */
  http2Port?: number,
): Promise<{ forwardAuth: TestAdapter; nginx: NginxServer }> {
  const forwardAuth = await startTestAdapter(world, {
    mode: 'forward-auth',
    forwardAuthGateway: 'nginx',
    ...config,
  });
  const conf = readFileSync(new URL('../../examples/nginx/trustplane-server.conf', import.meta.url), 'utf8')
    .replaceAll('__FORWARD_AUTH__', `127.0.0.1:${forwardAuth.adapter.address.port}`)
    .replaceAll('__UPSTREAM__', `127.0.0.1:${upstreamPort}`)
    .replace(
      'listen __LISTEN__;',
      http2Port === undefined
        ? 'listen __LISTEN__;'
        : `listen __LISTEN__;\n    listen 127.0.0.1:${http2Port} http2;`,
    );
  return { forwardAuth, nginx: await startNginx(conf) };
}
