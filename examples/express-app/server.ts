/**
 * A small Express 5 API protected by `trustplane/middleware/node`.
 *
 *   node --import tsx examples/express-app/server.ts
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
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express, { type Express } from 'express';
import { StreamAuditSink } from 'trustplane/audit';
import { MemoryReplayStore, parsePublicKey } from 'trustplane/authcore';
import {
  loadPolicyBundle,
  loadTrustMaterial,
  type LoadedPolicy,
  type LoadedTrustMaterial,
} from 'trustplane/bundle';
import { trustplane, type AllowDecision } from 'trustplane/middleware/node';

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

/** The verified identity, as set by the middleware on allow (`req.trustplane`). */
function caller({ subject, issuer, trustDomain, keyBinding, routeId }: AllowDecision) {
  return { subject, issuer, trustDomain, keyBinding, routeId };
}

/** The orders API: every request must carry a passport and a request proof. */
export function createApp(material: Material, options: { publicOrigin?: string } = {}): Express {
  const app = express();
  app.disable('x-powered-by');
  // First: the middleware verifies the raw path exactly as sent and digests the raw body, then
  // hands the same bytes on, so express.json() below still parses them.
  app.use(
    trustplane({
      trust: material.trust,
      policy: material.policy,
      replayStore: new MemoryReplayStore(), // one process only; share a Redis store across replicas
      audit: new StreamAuditSink(process.stdout),
      ...(options.publicOrigin !== undefined ? { publicOrigin: options.publicOrigin } : {}),
    }),
  );
  app.use(express.json({ limit: '1mb' }));

  app.get('/v1/orders/:id', (req, res) => {
    res.json({ order: { id: req.params.id }, caller: caller(req.trustplane!) });
  });
  app.post('/v1/orders', (req, res) => {
    res.status(201).json({ order: req.body as unknown, caller: caller(req.trustplane!) });
  });
  // Errors after an allow (e.g. a verified body that is not JSON): a status, never a stack trace.
  app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const status = (error as { status?: unknown }).status;
    res.status(typeof status === 'number' && status >= 400 && status < 600 ? status : 500).json({
      error: 'request_failed',
    });
  });
  return app;
}

/**
 * Load the bundles, build the app and listen on HOST:PORT.
 * @returns the listening server
 */
export async function start(env: NodeJS.ProcessEnv = process.env): Promise<http.Server> {
  const material = await loadMaterial(env);
  const publicOrigin = env.TRUSTPLANE_PUBLIC_ORIGIN;
  const app = createApp(material, publicOrigin ? { publicOrigin } : {});
  const server = http.createServer(app);
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
