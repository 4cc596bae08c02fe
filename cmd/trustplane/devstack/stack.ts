import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { resolveAdapterConfig, startAdapter, type Adapter } from '../../../pkg/adapter/index.js';
import { generateSigningKey, type SigningKey } from '../../../pkg/authcore/index.js';
import {
  createDevSpiffeCa,
  mintDevSvid,
  startBroker,
  writeSpiffeHelperFiles,
  type RunningBroker,
} from '../../../pkg/broker/index.js';
import { buildPolicyBundle, buildTrustMaterial, signDocument } from '../../../pkg/bundle/index.js';
import {
  BUNDLE_DOCUMENTS,
  configFileBuilder,
  createLogger,
  keyBundleSigner,
  startBundleServer,
  type LogLevel,
} from '../../../pkg/runtime/index.js';

/** Names of the dev world (`trustplane up` / `trustplane demo`). */
export const DEV = Object.freeze({
  trustDomain: 'demo.trustplane.local',
  audience: 'demo-api',
  softwareIssuer: 'https://issuer.demo.trustplane.local/software',
  softwareSubject: 'service:demo-client',
  softwareKid: 'caller-1',
  brokerIssuer: 'https://issuer.demo.trustplane.local/broker',
  brokerKid: 'broker-1',
  workload: 'spiffe://demo.trustplane.local/ns/demo/sa/worker',
  bundleSigner: { issuer: 'https://bundles.demo.trustplane.local', kid: 'bundle-signer-1' },
});

/** What `trustplane up` writes to `<dir>/stack.json` for `trustplane demo` and for people. */
export interface StackInfo {
  readonly pid: number;
  readonly dir: string;
  readonly adapter: string;
  readonly admin: string;
  readonly upstream: string;
  readonly brokerSocket: string;
  readonly trustMaterial: string;
  readonly policyBundle: string;
  /** The stack's bundle server (`trustplane bundle serve` in-process), which the adapter and broker pull from. */
  readonly bundleServer: string;
  readonly bundlePublicKey: string;
  readonly callerKeyFile: string;
  readonly audit: { readonly adapter: string; readonly broker: string };
  readonly logs: string;
  readonly startedAt: string;
}

/** A running dev stack. */
export interface DevStack {
  readonly info: StackInfo;
  close(): Promise<void>;
}

/** Where to listen (port 0 = any free port). */
export interface DevStackOptions {
  readonly dir: string;
  readonly listen?: string;
  readonly adminListen?: string;
  readonly upstreamListen?: string;
  readonly logLevel?: LogLevel;
  /**
   * The policy's `bounded` limit, seconds (default 300, as in production): the stack's bundle
   * server re-signs every third of it, so the stack stays fresh however long it runs.
   */
  readonly maxStalenessSeconds?: number;
}

const jwk = (key: SigningKey, kid: string) => ({ kty: 'OKP', crv: 'Ed25519', x: key.publicKey.x, kid });

function writeSecret(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
}

/**
 * Generate the dev world in `dir`: keys (mode 0600), a dev SPIFFE CA and the workload's SVID as
 * spiffe-helper files, and the signed trust material and policy bundle. Everything is new on each
 * call; nothing is read from or written to the repository.
 */
export async function generateDevWorld(dir: string, now: number, maxStalenessSeconds = 300) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const [signer, caller, broker] = await Promise.all([
    generateSigningKey(),
    generateSigningKey(),
    generateSigningKey(),
  ]);
  const keys = path.join(dir, 'keys');
  mkdirSync(keys, { recursive: true, mode: 0o700 });
  const callerKeyFile = path.join(keys, 'caller.key');
  const brokerKeyFile = path.join(keys, 'broker.key');
  writeSecret(path.join(keys, 'bundle-signer.key'), signer.exportKeyText());
  writeSecret(callerKeyFile, caller.exportKeyText());
  writeSecret(brokerKeyFile, broker.exportKeyText());
  writeFileSync(path.join(keys, 'bundle-signer.pub'), signer.publicKey.x);

  const ca = createDevSpiffeCa({ trustDomain: DEV.trustDomain, nowSeconds: now });
  writeSecret(path.join(keys, 'spiffe-ca.key'), ca.keyPem);
  writeFileSync(path.join(keys, 'spiffe-ca.pem'), ca.certPem);
  const svidDir = path.join(dir, 'svid');
  await writeSpiffeHelperFiles(svidDir, mintDevSvid(ca, { spiffeId: DEV.workload, nowSeconds: now }));

  const trustConfig = {
    trust_domain: DEV.trustDomain,
    issuers: [
      {
        issuer: DEV.softwareIssuer,
        trust_domain: DEV.trustDomain,
        source_type: 'software_jwks',
        keys: [jwk(caller, DEV.softwareKid)],
      },
      {
        issuer: DEV.brokerIssuer,
        trust_domain: DEV.trustDomain,
        source_type: 'spiffe_spire',
        max_key_binding: 'attested_workload',
        keys: [jwk(broker, DEV.brokerKid)],
      },
    ],
  };
  const software = {
    source_type: 'software_jwks',
    issuer: DEV.softwareIssuer,
    trust_domain: DEV.trustDomain,
    subject_exact: DEV.softwareSubject,
  };
  const workloads = {
    source_type: 'spiffe_spire',
    issuer: DEV.brokerIssuer,
    trust_domain: DEV.trustDomain,
    subject_prefix: `spiffe://${DEV.trustDomain}/ns/demo/`,
    provenance_policy: {
      profile: 'trustplane-spiffe-spire-k8s-v1',
      required_posture: 'spiffe_svid_verified',
      required_spiffe_trust_domain: DEV.trustDomain,
    },
  };
  const policyConfig = {
    trust_domain: DEV.trustDomain,
    policy_version: 'demo-1',
    // No base_url: the adapter binds transcripts to the loopback origin callers address.
    apis: [{ api_id: DEV.audience, audience: DEV.audience }],
    route_groups: [
      {
        route_group_id: 'demo',
        api_id: DEV.audience,
        routes: [
          {
            route_id: 'orders.list',
            method: 'GET',
            path_template: '/v1/orders',
            allowed_sources: [software, workloads],
          },
          {
            route_id: 'orders.create',
            method: 'POST',
            path_template: '/v1/orders',
            allowed_sources: [software, workloads],
          },
          {
            route_id: 'payments.create',
            method: 'POST',
            path_template: '/v1/payments',
            required_key_binding: 'attested_workload',
            allowed_sources: [software, workloads],
          },
          {
            // An MCP endpoint with a per-tool policy (docs/mcp.md): the demo API answers tools/call.
            route_id: 'tools.mcp',
            method: 'POST',
            path_template: '/mcp',
            allowed_sources: [software, workloads],
            mcp: {
              methods: ['tools/list', 'tools/call'],
              tools: [
                {
                  name: 'transfer_funds',
                  arguments: [
                    { pointer: '/amount', required: true, type: 'number', min: 0, max: 100 },
                    { pointer: '/to', required: true, pattern: 'acct-[0-9]{1,12}', max_length: 17 },
                  ],
                },
              ],
            },
          },
        ],
      },
    ],
    // Production limits: the stack's bundle server re-signs every third of them.
    defaults: {
      required_key_binding: 'software',
      freshness_class: 'bounded',
      max_staleness_seconds: maxStalenessSeconds,
    },
    revocations: [],
  };
  // The configs the stack's bundle server publishes from (edit them: the change is served at once).
  const configs = path.join(dir, 'config');
  mkdirSync(configs, { recursive: true });
  const trustConfigFile = path.join(configs, 'trust.config.json');
  const policyConfigFile = path.join(configs, 'policy.config.json');
  writeFileSync(trustConfigFile, `${JSON.stringify(trustConfig, null, 2)}\n`);
  writeFileSync(policyConfigFile, `${JSON.stringify(policyConfig, null, 2)}\n`);
  // The first publication, also as files (for `bundle verify`, `verify --policy-bundle`).
  const trust = await signDocument(buildTrustMaterial(trustConfig as never, now), signer, DEV.bundleSigner);
  const policy = await signDocument(buildPolicyBundle(policyConfig as never, now), signer, DEV.bundleSigner);
  const bundles = path.join(dir, 'bundles');
  mkdirSync(bundles, { recursive: true });
  const trustMaterial = path.join(bundles, 'trust.json');
  const policyBundle = path.join(bundles, 'policy.json');
  writeFileSync(trustMaterial, `${JSON.stringify(trust, null, 2)}\n`);
  writeFileSync(policyBundle, `${JSON.stringify(policy, null, 2)}\n`);
  return {
    trustMaterial,
    policyBundle,
    trustConfigFile,
    policyConfigFile,
    signer,
    callerKeyFile,
    brokerKeyFile,
    svidDir,
    bundlePublicKey: signer.publicKey.x,
  };
}

/** The demo upstream: answers with what it received, including the identity the adapter vouched for. */
function startUpstream(listen: string): Promise<Server> {
  const server = createServer((req, res) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (req.url === '/mcp' && size <= 65_536) chunks.push(chunk);
    });
    req.on('end', () => {
      if (req.url === '/mcp') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(mcpAnswer(Buffer.concat(chunks)));
        return;
      }
      const h = req.headers;
      const body = JSON.stringify({
        upstream: 'demo-api',
        method: req.method,
        path: req.url,
        body_bytes: size,
        caller: {
          subject: h['x-trustplane-subject'],
          issuer: h['x-trustplane-issuer'],
          trust_domain: h['x-trustplane-trust-domain'],
          key_binding: h['x-trustplane-key-binding'],
          route_id: h['x-trustplane-route-id'],
          jti: h['x-trustplane-jti'],
        },
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
  });
  const [host, port] = splitListen(listen);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** The demo API as a minimal MCP tool server: answers `tools/call` of `transfer_funds`. */
function mcpAnswer(body: Buffer): string {
  let call: {
    id?: unknown;
    method?: unknown;
    params?: { name?: unknown; arguments?: Record<string, unknown> };
  };
  try {
    call = JSON.parse(body.toString('utf8')) as typeof call;
  } catch {
    call = {};
  }
  const id = typeof call.id === 'string' || typeof call.id === 'number' ? call.id : null;
  if (call.method !== 'tools/call' || call.params?.name !== 'transfer_funds') {
    return JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32601, message: 'method not found' } });
  }
  const { amount, to } = call.params.arguments ?? {};
  const text = `transferred ${String(amount)} to ${String(to)}`;
  return JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }] } });
}

function splitListen(listen: string): [string, number] {
  const m = /^([^:]+):(\d{1,5})$/.exec(listen);
  if (!m) throw new TypeError(`listen address must be host:port, got ${JSON.stringify(listen)}`);
  return [m[1]!, Number(m[2])];
}

const url = (a: AddressInfo) => `http://${a.address}:${a.port}`;

/**
 * Start the whole stack in this process on the embedded defaults: generate the dev world in
 * `dir`, start the demo upstream, the adapter in front of it (memory replay store with a journal,
 * audit to a file) and the broker on a Unix socket (SPIFFE identity from the dev SVID files). Logs
 * go to `<dir>/logs/stack.log`. Writes `<dir>/stack.json`; `close()` stops everything and removes it.
 */
export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const dir = path.resolve(options.dir);
  const now = Math.floor(Date.now() / 1000);
  // A new stack is a new world: state, audit events and logs of an earlier run in this directory
  // belonged to keys that no longer exist, so they are cleared (nothing else in `dir` is touched).
  for (const sub of ['state', 'audit', 'logs']) rmSync(path.join(dir, sub), { recursive: true, force: true });
  const world = await generateDevWorld(dir, now, options.maxStalenessSeconds);
  mkdirSync(path.join(dir, 'logs'), { recursive: true });
  mkdirSync(path.join(dir, 'audit'), { recursive: true });
  mkdirSync(path.join(dir, 'state'), { recursive: true, mode: 0o700 });
  const logsFile = path.join(dir, 'logs', 'stack.log');
  const logStream: WriteStream = createWriteStream(logsFile, { flags: 'a' });
  const log = createLogger(options.logLevel ?? 'info', logStream);
  const auditAdapter = path.join(dir, 'audit', 'adapter.jsonl');
  const auditBroker = path.join(dir, 'audit', 'broker.jsonl');
  const cleanups: (() => unknown)[] = [() => new Promise((r) => logStream.end(r))];
  const close = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  };
  try {
    const upstream = await startUpstream(options.upstreamListen ?? '127.0.0.1:0');
    cleanups.push(() => new Promise((r) => upstream.close(r)));
    // The bundle server: re-signs every third of the limit and on a config change; the adapter and
    // the broker long-poll it, so a stack left running never goes stale.
    const bundleServer = await startBundleServer({
      listen: '127.0.0.1:0',
      signer: keyBundleSigner(world.signer, DEV.bundleSigner),
      build: configFileBuilder({ trustConfig: world.trustConfigFile, policyConfig: world.policyConfigFile }),
      watchFiles: [world.trustConfigFile, world.policyConfigFile],
      log,
    });
    cleanups.push(() => bundleServer.close());
    const trustUrl = `${bundleServer.url}/${BUNDLE_DOCUMENTS.trust_material}`;
    const policyUrl = `${bundleServer.url}/${BUNDLE_DOCUMENTS.policy}`;
    const adapter: Adapter = await startAdapter(
      resolveAdapterConfig({
        flags: {
          listen: options.listen ?? '127.0.0.1:0',
          adminListen: options.adminListen ?? '127.0.0.1:0',
          upstream: url(upstream.address() as AddressInfo),
          trustMaterial: trustUrl,
          policyBundle: policyUrl,
          trustMaterialPublicKeys: [world.bundlePublicKey],
          policyBundlePublicKeys: [world.bundlePublicKey],
          bundleStateDir: path.join(dir, 'state', 'adapter-bundles'),
          replayJournal: path.join(dir, 'state', 'replay.journal'),
          audit: auditAdapter,
          instance: 'demo-adapter',
        },
      }),
      { log },
    );
    cleanups.push(() => adapter.close());
    const broker: RunningBroker = await startBroker(
      {
        socketPath: path.join(dir, 'state', 'broker.sock'),
        issuer: DEV.brokerIssuer,
        issuerKid: DEV.brokerKid,
        issuerKeyText: readFileSync(world.brokerKeyFile, 'utf8'),
        identity: {
          kind: 'spiffe-files',
          certFile: path.join(world.svidDir, 'svid.pem'),
          keyFile: path.join(world.svidDir, 'svid_key.pem'),
          bundleFile: path.join(world.svidDir, 'svid_bundle.pem'),
        },
        trustMaterial: trustUrl,
        policyBundle: policyUrl,
        trustMaterialPublicKeys: [world.bundlePublicKey],
        policyBundlePublicKeys: [world.bundlePublicKey],
        bundleRemote: {
          stateDir: path.join(dir, 'state', 'broker-bundles'),
          waitSeconds: 30,
          pollIntervalMs: 5_000,
          timeoutMs: 10_000,
        },
        audit: auditBroker,
        instance: 'demo-broker',
      },
      { log },
    );
    cleanups.push(() => broker.close());
    const info: StackInfo = {
      pid: process.pid,
      dir,
      adapter: url(adapter.address),
      admin: url(adapter.adminAddress!),
      upstream: url(upstream.address() as AddressInfo),
      brokerSocket: broker.ipc.socketPath,
      trustMaterial: world.trustMaterial,
      policyBundle: world.policyBundle,
      bundleServer: bundleServer.url,
      bundlePublicKey: world.bundlePublicKey,
      callerKeyFile: world.callerKeyFile,
      audit: { adapter: auditAdapter, broker: auditBroker },
      logs: logsFile,
      startedAt: new Date(now * 1000).toISOString(),
    };
    const stackFile = path.join(dir, 'stack.json');
    writeFileSync(stackFile, `${JSON.stringify(info, null, 2)}\n`);
    cleanups.push(() => rmSync(stackFile, { force: true }));
    return { info, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The stack described by `<dir>/stack.json`, if its process is alive and its adapter is ready.
 */
export async function findRunningStack(dir: string): Promise<StackInfo | undefined> {
  const file = path.join(path.resolve(dir), 'stack.json');
  if (!existsSync(file)) return undefined;
  let info: StackInfo;
  try {
    info = JSON.parse(readFileSync(file, 'utf8')) as StackInfo;
    process.kill(info.pid, 0);
  } catch {
    return undefined;
  }
  try {
    const ready = await fetch(`${info.admin}/readyz`, { signal: AbortSignal.timeout(2000) });
    return ready.status === 200 && existsSync(info.brokerSocket) ? info : undefined;
  } catch {
    return undefined;
  }
}
