import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse } from 'yaml';

// Traefik is not installable here. This is its ForwardAuth middleware as its source defines it
// (traefik/traefik v3, pkg/middlewares/auth/forward.go: ServeHTTP, writeHeader,
// filterForwardRequestHeaders, readBodyBytes), followed by a `headers` middleware's
// customRequestHeaders and a load-balancer service with passHostHeader, driven by a dynamic
// configuration file. Only what decides what the auth endpoint and the upstream see is modelled.

/** The `forwardAuth` block of a dynamic configuration. */
export interface ForwardAuthConfig {
  readonly address: string;
  readonly trustForwardHeader?: boolean;
  readonly authRequestHeaders?: readonly string[];
  readonly authResponseHeaders?: readonly string[];
  readonly forwardBody?: boolean;
  readonly maxBodySize?: number;
}

/** The parts of examples/traefik/dynamic.yml the model uses. */
export interface TraefikDynamicConfig {
  readonly router: { readonly middlewares: readonly string[]; readonly service: string };
  readonly forwardAuth: ForwardAuthConfig;
  /** `headers.customRequestHeaders` of the router's other middlewares, in chain order. */
  readonly customRequestHeaders: Readonly<Record<string, string>>;
  readonly passHostHeader: boolean;
}

interface DynamicFile {
  http: {
    routers: Record<string, { middlewares: string[]; service: string }>;
    middlewares: Record<
      string,
      { forwardAuth?: ForwardAuthConfig; headers?: { customRequestHeaders?: Record<string, string> } }
    >;
    services: Record<string, { loadBalancer: { passHostHeader?: boolean } }>;
  };
}

/** Read a dynamic configuration file: its one router, its ForwardAuth and headers middlewares. */
export function readTraefikConfig(file: string): TraefikDynamicConfig {
  const doc = parse(readFileSync(file, 'utf8')) as DynamicFile;
  const [router] = Object.values(doc.http.routers);
  if (router === undefined) throw new Error('no router');
  const chain = router.middlewares.map((name) => doc.http.middlewares[name]!);
  const forwardAuth = chain.find((m) => m.forwardAuth !== undefined)?.forwardAuth;
  if (forwardAuth === undefined) throw new Error('no forwardAuth middleware in the router chain');
  const customRequestHeaders: Record<string, string> = {};
  for (const m of chain) Object.assign(customRequestHeaders, m.headers?.customRequestHeaders ?? {});
  return {
    router,
    forwardAuth,
    customRequestHeaders,
    passHostHeader: doc.http.services[router.service]!.loadBalancer.passHostHeader !== false,
  };
}

// forward.go hopHeaders (Proxy-Authorization is forwarded on purpose).
const HOP_HEADERS = ['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/** Header lines as Go's http.Header holds them: canonical-insensitive name → values in order. */
type Lines = Map<string, string[]>;

function linesOf(req: IncomingMessage): Lines {
  const lines: Lines = new Map();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    // Go's server moves Host to req.Host and Content-Length to req.ContentLength; the client
    // transport writes neither from the header map.
    if (name === 'host' || name === 'content-length') continue;
    lines.set(name, [...(lines.get(name) ?? []), req.rawHeaders[i + 1]!]);
  }
  return lines;
}

function toOutgoing(lines: Lines): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, values] of lines) out[name] = values.length === 1 ? values[0]! : values;
  return out;
}

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(
  url: URL,
  method: string,
  target: string,
  headers: OutgoingHttpHeaders,
  body: Buffer | undefined,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; raw: string[]; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      { host: url.hostname, port: url.port, method, path: target, headers, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            raw: res.rawHeaders,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error('timed out')));
    r.on('error', reject);
    r.end(body);
  });
}

/** What the model sent to the auth endpoint, for assertions. */
export interface AuthRequestSeen {
  readonly method: string;
  readonly target: string;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer | undefined;
}

/** A running model of Traefik with the router of a dynamic configuration. */
export interface TraefikModel {
  readonly base: string;
  /** The auth requests sent so far. */
  readonly authRequests: AuthRequestSeen[];
  close(): Promise<void>;
}

/**
 * Serve `config`'s router on 127.0.0.1: ForwardAuth to `config.forwardAuth.address` (rewritten to
 * `authBase`), then the headers middleware, then the service at `upstreamBase`.
 */
export async function startTraefikModel(
  config: TraefikDynamicConfig,
  authBase: string,
  upstreamBase: string,
): Promise<TraefikModel> {
  const fa = config.forwardAuth;
  const address = new URL(fa.address);
  const auth = new URL(authBase);
  const upstream = new URL(upstreamBase);
  const trust = fa.trustForwardHeader === true;
  const authRequests: AuthRequestSeen[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? 'GET';
    const requestUri = req.url ?? '/';
    const clientIp = req.socket.remoteAddress ?? '';
    const client = linesOf(req);
    const raw = await readAll(req);
    // ServeHTTP: the body, when forwardBody is set (io.EOF at once: no body).
    let body: Buffer | undefined;
    if (fa.forwardBody === true) {
      const max = fa.maxBodySize ?? -1;
      if (max >= 0 && raw.length > max) {
        res.writeHead(401);
        res.end();
        return;
      }
      body = raw.length > 0 ? raw : undefined;
    }
    // writeHeader: copy, drop the Connection-named and hop-by-hop headers, filter, then set.
    const forward: Lines = new Map(client);
    for (const named of (client.get('connection') ?? []).flatMap((v) => v.split(',')))
      forward.delete(named.trim().toLowerCase());
    for (const h of HOP_HEADERS) forward.delete(h);
    let filtered: Lines = forward;
    if ((fa.authRequestHeaders ?? []).length > 0) {
      filtered = new Map();
      for (const name of fa.authRequestHeaders!) {
        const values = forward.get(name.toLowerCase());
        if (values !== undefined && values.length > 0) filtered.set(name.toLowerCase(), [...values]);
      }
    }
    const first = (name: string) => client.get(name)?.[0] ?? '';
    const prior = client.get('x-forwarded-for');
    filtered.set('x-forwarded-for', [
      trust && prior !== undefined ? `${prior.join(', ')}, ${clientIp}` : clientIp,
    ]);
    filtered.set('x-forwarded-method', [
      trust && first('x-forwarded-method') ? first('x-forwarded-method') : method,
    ]);
    filtered.set('x-forwarded-proto', [
      trust && first('x-forwarded-proto') ? first('x-forwarded-proto') : 'http',
    ]);
    if (trust && first('x-forwarded-port')) filtered.set('x-forwarded-port', [first('x-forwarded-port')]);
    filtered.set('x-forwarded-host', [
      trust && first('x-forwarded-host') ? first('x-forwarded-host') : (req.headers.host ?? ''),
    ]);
    filtered.set('x-forwarded-uri', [
      trust && first('x-forwarded-uri') ? first('x-forwarded-uri') : requestUri,
    ]);

    const authTarget = `${address.pathname}${address.search}`;
    const authHeaders = toOutgoing(filtered);
    // Go's client sends a GET's body of unknown length chunked (Node would not, for a GET).
    if (body !== undefined) authHeaders['transfer-encoding'] = 'chunked';
    authRequests.push({ method: 'GET', target: authTarget, headers: { ...authHeaders }, body });
    const answer = await send(auth, 'GET', authTarget, authHeaders, body);
    if (answer.status < 200 || answer.status >= 300) {
      const out: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(answer.headers)) if (!HOP_HEADERS.includes(k)) out[k] = v;
      delete out['content-length'];
      res.writeHead(answer.status, out);
      res.end(answer.body);
      return;
    }
    // authResponseHeaders: deleted from the request, then the endpoint's values copied.
    const onward: Lines = new Map(client);
    for (const name of fa.authResponseHeaders ?? []) {
      const key = name.toLowerCase();
      onward.delete(key);
      const values: string[] = [];
      for (let i = 0; i < answer.raw.length; i += 2)
        if (answer.raw[i]!.toLowerCase() === key) values.push(answer.raw[i + 1]!);
      if (values.length > 0) onward.set(key, values);
    }
    // The headers middleware: an empty value removes the header, another sets it.
    for (const [name, value] of Object.entries(config.customRequestHeaders)) {
      if (value === '') onward.delete(name.toLowerCase());
      else onward.set(name.toLowerCase(), [value]);
    }
    for (const h of HOP_HEADERS) onward.delete(h);
    const upstreamHeaders = toOutgoing(onward);
    upstreamHeaders.host = config.passHostHeader ? (req.headers.host ?? '') : upstream.host;
    if (raw.length > 0) upstreamHeaders['content-length'] = String(raw.length);
    const result = await send(
      upstream,
      method,
      requestUri,
      upstreamHeaders,
      raw.length > 0 ? raw : undefined,
    );
    const out: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(result.headers)) if (!HOP_HEADERS.includes(k)) out[k] = v;
    delete out['content-length'];
    res.writeHead(result.status, out);
    res.end(result.body);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    authRequests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
