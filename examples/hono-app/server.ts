/**
 * A small Hono API protected by `trustplane/middleware/hono`, served by node:http.
 *
 *   node --import tsx examples/hono-app/server.ts
 *
 * Environment:
 *   TRUSTPLANE_TRUST_MATERIAL      signed trust material (JSON file)
 *   TRUSTPLANE_POLICY_BUNDLE       signed policy bundle (JSON file)
 *   TRUSTPLANE_BUNDLE_PUBLIC_KEY   the bundle signer's Ed25519 public key: key text, PEM, JWK, or @file
 *   TRUSTPLANE_PUBLIC_ORIGIN       optional: the origin callers sign, when not the API's base_url
 *   HOST, PORT                     listen address (default 127.0.0.1:3000; PORT=0 picks a free port)
 *
 * Audit events (one JSON line per decision) go to stdout, logs to stderr.
 */
import { readFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Hono } from 'hono';
import { StreamAuditSink } from 'trustplane/audit';
import { MemoryReplayStore, parsePublicKey } from 'trustplane/authcore';
import {
  loadPolicyBundle,
  loadTrustMaterial,
  type LoadedPolicy,
  type LoadedTrustMaterial,
} from 'trustplane/bundle';
import { trustplane, type TrustplaneVariables } from 'trustplane/middleware/hono';

/** Verified bundles the app decides from. */
export interface Material {
  readonly trust: LoadedTrustMaterial;
  readonly policy: LoadedPolicy;
}

function requiredEnv(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set`);
  return value;
}

async function readJson(file: string): Promise<unknown> {
  return JSON.parse(await readFile(file, 'utf8')) as unknown;
}

/** The document's `signed_by.kid` (the loaders match signer keys by kid). */
function signedByKid(doc: unknown): string {
  const signedBy = (doc as { signed_by?: { kid?: unknown } } | null)?.signed_by;
  return typeof signedBy?.kid === 'string' ? signedBy.kid : 'unsigned';
}

/**
 * Load and verify the trust material and policy bundle named by the environment. The configured
 * public key is the trust anchor: it is accepted under whatever kid the document names, as the
 * adapter's `--bundle-public-key` is. Unsigned or tampered documents throw (`unsigned_bundle_rejected`,
 * `bundle_signature_invalid`); there is no development bypass here.
 */
export async function loadMaterial(env: NodeJS.ProcessEnv = process.env): Promise<Material> {
  const keyText = requiredEnv(env, 'TRUSTPLANE_BUNDLE_PUBLIC_KEY');
  const key = await parsePublicKey(
    (keyText.startsWith('@') ? await readFile(keyText.slice(1), 'utf8') : keyText).trim(),
  );
  const trustDoc = await readJson(requiredEnv(env, 'TRUSTPLANE_TRUST_MATERIAL'));
  const policyDoc = await readJson(requiredEnv(env, 'TRUSTPLANE_POLICY_BUNDLE'));
  const trust = await loadTrustMaterial(trustDoc, { signers: [{ kid: signedByKid(trustDoc), key }] });
  const policy = await loadPolicyBundle(policyDoc, { signers: [{ kid: signedByKid(policyDoc), key }] });
  return { trust, policy };
}

/** The orders API: every `/v1/*` request must carry a passport and a request proof. */
export function createApp(material: Material, options: { publicOrigin?: string } = {}) {
  const app = new Hono<{ Variables: TrustplaneVariables }>();
  app.use(
    '/v1/*',
    trustplane({
      trust: material.trust,
      policy: material.policy,
      replayStore: new MemoryReplayStore(), // one process only; share a Redis store across replicas
      audit: new StreamAuditSink(process.stdout),
      ...(options.publicOrigin !== undefined ? { publicOrigin: options.publicOrigin } : {}),
    }),
  );

  // The verified identity, as set by the middleware on allow.
  const caller = ({
    subject,
    issuer,
    trustDomain,
    keyBinding,
    routeId,
  }: TrustplaneVariables['trustplane']) => ({
    subject,
    issuer,
    trustDomain,
    keyBinding,
    routeId,
  });
  app.get('/v1/orders/:id', (c) =>
    c.json({ order: { id: c.req.param('id') }, caller: caller(c.get('trustplane')) }),
  );
  app.post('/v1/orders', async (c) => {
    // The middleware verified these exact bytes; reading the body again is fine.
    const order: unknown = await c.req.json();
    return c.json({ order, caller: caller(c.get('trustplane')) }, 201);
  });
  return app;
}

type FetchHandler = (request: Request) => Response | Promise<Response>;

/** A request body stream for node:http → fetch; bounded by the middleware's `maxBodyBytes`. */
function requestBody(req: IncomingMessage): ReadableStream<Uint8Array> | undefined {
  if (req.method === 'GET' || req.method === 'HEAD') return undefined;
  return Readable.toWeb(req) as ReadableStream<Uint8Array>;
}

const HOST_HEADER = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * Convert one node:http request to a Web `Request`, or answer why it cannot be. The verifier and
 * Hono see the WHATWG-parsed URL, so a target that parsing would change (dot segments, `\`, a
 * fragment) is refused here rather than verified in its normalized form.
 */
function toWebRequest(req: IncomingMessage): Request | 'malformed_request' | 'unsafe_request_path' {
  const target = req.url ?? '';
  const host = req.headers.host ?? 'localhost';
  // Origin-form only (`GET http://other/...` and `OPTIONS *` are refused), and a plain Host.
  if (!target.startsWith('/') || !HOST_HEADER.test(host)) return 'malformed_request';
  let url: URL;
  try {
    url = new URL(`http://${host}${target}`);
  } catch {
    return 'malformed_request';
  }
  if (url.host !== host.toLowerCase() || `${url.pathname}${url.search}` !== target) {
    return 'unsafe_request_path';
  }
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    try {
      headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    } catch {
      return 'malformed_request';
    }
  }
  const body = requestBody(req);
  return new Request(url, {
    method: req.method ?? 'GET',
    headers,
    ...(body !== undefined ? { body, duplex: 'half' } : {}),
  } as RequestInit);
}

async function writeWebResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  res.writeHead(response.status, headers);
  if (response.body === null) res.end();
  else await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), res);
}

/**
 * A minimal node:http server for a fetch handler such as `app.fetch` (what `@hono/node-server`
 * does, without the dependency).
 */
export function createNodeServer(fetch: FetchHandler): http.Server {
  return http.createServer((req, res) => {
    const request = toWebRequest(req);
    if (typeof request === 'string') {
      res.writeHead(400, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ allowed: false, reason: request }));
      return;
    }
    Promise.resolve()
      .then(() => fetch(request))
      .then((response) => writeWebResponse(response, res))
      .catch((error: unknown) => {
        console.error(JSON.stringify({ level: 'error', msg: 'handler failed', error: String(error) }));
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end();
      });
  });
}

/**
 * Load the bundles, build the app and listen on HOST:PORT.
 * @returns the listening server
 */
export async function start(env: NodeJS.ProcessEnv = process.env): Promise<http.Server> {
  const material = await loadMaterial(env);
  const publicOrigin = env.TRUSTPLANE_PUBLIC_ORIGIN;
  const app = createApp(material, publicOrigin ? { publicOrigin } : {});
  const server = createNodeServer(app.fetch);
  const host = env.HOST ?? '127.0.0.1';
  const port = Number(env.PORT ?? 3000);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.address}:${address.port}`;
  console.error(JSON.stringify({ level: 'info', msg: 'listening', url }));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      server.close(() => process.exit(0));
      server.closeIdleConnections();
    });
  }
  return server;
}

const invokedDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === import.meta.filename;

if (invokedDirectly) {
  try {
    await start();
  } catch (error) {
    // One line, no key material: TrustplaneError carries a reason code, a bad config a plain message.
    const reason = (error as { reason?: unknown }).reason;
    const message = error instanceof Error ? error.message : String(error);
    console.error(`orders-api: ${typeof reason === 'string' ? `${reason}: ` : ''}${message}`);
    process.exit(1);
  }
}
