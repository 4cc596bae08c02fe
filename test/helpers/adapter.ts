import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  resolveAdapterConfig,
  startAdapter,
  type Adapter,
  type AdapterConfigInput,
} from '../../pkg/adapter/index.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { NOW, type World } from './fixture.js';

/** One request as the upstream saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A real upstream HTTP server on loopback that records what reaches it. */
export interface Upstream {
  url: string;
  port: number;
  requests: SeenRequest[];
  server: Server;
  close(): Promise<void>;
}

/** Start a recording upstream; the default handler echoes the identity it saw as JSON. */
export async function startUpstream(
  handler?: (seen: SeenRequest, res: ServerResponse) => void,
): Promise<Upstream> {
  const requests: SeenRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(seen);
      if (handler) return handler(seen, res);
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-upstream': 'yes',
        connection: 'keep-alive',
      });
      res.end(
        JSON.stringify({ subject: req.headers['x-trustplane-subject'] ?? null, bytes: seen.body.length }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Write a world's signed trust material and policy bundle into a fresh temp dir. */
export function writeWorld(world: World, dir = mkdtempSync(path.join(tmpdir(), 'tp-adapter-'))) {
  const trustMaterial = path.join(dir, 'trust.json');
  const policyBundle = path.join(dir, 'policy.json');
  writeFileSync(trustMaterial, JSON.stringify(world.trustDoc));
  writeFileSync(policyBundle, JSON.stringify(world.policyDoc));
  return { dir, trustMaterial, policyBundle, signerKey: world.bundleSigner.publicKey.x };
}

/** A test adapter with its audit sink. */
export interface TestAdapter {
  adapter: Adapter;
  audit: MemoryAuditSink;
  base: string;
  admin: string;
  files: ReturnType<typeof writeWorld>;
}

/** Start an adapter on loopback for a world (frozen clock, memory audit, silent logs). */
export async function startTestAdapter(
  world: World,
  config: Partial<AdapterConfigInput> = {},
  files = writeWorld(world),
  log = createLogger('silent'),
): Promise<TestAdapter> {
  const audit = new MemoryAuditSink();
  const resolved = resolveAdapterConfig({
    flags: {
      listen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      trustMaterial: files.trustMaterial,
      policyBundle: files.policyBundle,
      trustMaterialPublicKeys: [files.signerKey],
      policyBundlePublicKeys: [files.signerKey],
      replayJournal: path.join(files.dir, 'replay.journal'),
      reloadIntervalMs: 0,
      shutdownTimeoutMs: 2_000,
      ...config,
    },
  });
  const adapter = await startAdapter(resolved, {
    clock: () => NOW,
    audit,
    log,
  });
  return {
    adapter,
    audit,
    base: `http://127.0.0.1:${adapter.address.port}`,
    admin: `http://127.0.0.1:${adapter.adminAddress!.port}`,
    files,
  };
}

/** A raw HTTP response. */
export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Send a request with the raw target exactly as given (no URL normalization). */
export function rawSend(
  base: string,
  spec: {
    method: string;
    target: string;
    headers?: Record<string, string | string[]>;
    body?: string | Buffer;
  },
): Promise<RawResponse> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method: spec.method,
        path: spec.target,
        headers: spec.headers ?? {},
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(spec.body);
  });
}

/** Send a signed request (as produced by the fixture's `signed`) to an adapter. */
export function sendSigned(
  base: string,
  s: { url: string; method: string; headers: Readonly<Record<string, string>> },
  override: { target?: string; body?: string; headers?: Record<string, string | null> } = {},
  body?: string,
): Promise<RawResponse> {
  const u = new URL(s.url);
  // As a real client does: Host is the authority of the URL it signed.
  const headers: Record<string, string> = { host: u.host, ...s.headers };
  for (const [k, v] of Object.entries(override.headers ?? {})) {
    if (v === null) delete headers[k];
    else headers[k] = v;
  }
  const payload = override.body ?? body;
  return rawSend(base, {
    method: s.method,
    target: override.target ?? `${u.pathname}${u.search}`,
    headers,
    ...(payload !== undefined ? { body: payload } : {}),
  });
}

/** A world whose policy has one route that accepts unverified bodies (for gateways without the body). */
export function withNotesRoute(doc: Record<string, unknown>): void {
  const groups = doc.route_groups as { routes: Record<string, unknown>[] }[];
  groups[0]!.routes.push({
    route_id: 'orders.notes',
    method: 'POST',
    path_template: '/v1/orders/{order_id}/notes',
    allow_unverified_body: true,
    allowed_sources: [
      {
        source_type: 'software_jwks',
        issuer: 'https://issuer.example/software-jwks',
        trust_domain: 'example.local',
        subject_exact: 'service:orders-client',
      },
    ],
  });
}
