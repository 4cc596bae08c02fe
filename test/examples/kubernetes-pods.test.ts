import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../pkg/authcore/index.js';
import { BrokerIpcClient } from '../../pkg/broker/index.js';
import {
  buildPolicyBundle,
  buildTrustMaterial,
  signDocument,
  type PolicyBundleConfig,
  type TrustMaterialConfig,
} from '../../pkg/bundle/index.js';
import { ProtectedClient, brokerPassports } from '../../pkg/client/index.js';
import { startUpstream, type Upstream } from '../helpers/adapter.js';
import { freePort } from '../helpers/redis.js';
import { WorkloadApiTestServer, x509SvidResponse } from '../helpers/workload-api-server.js';
import { mintSpiffeChain } from '../helpers/x509.js';
import { eventually } from './helpers.js';
import {
  DIR,
  adapter,
  adapterFlags,
  broker,
  brokerFlags,
  client,
  clientApp,
  envOf,
  find,
  podSpec,
  port,
  str,
  type Container,
} from './manifests.js';

// The two pods of examples/kubernetes, run here as processes with the manifests' own commands,
// arguments, environment and probes: every absolute path is moved under a temp dir standing for
// the container filesystems, the listeners move to loopback ports, a local SPIFFE Workload API
// server stands for the SPIRE agent, and the bundles are built from bundles/*.config.json. A
// ProtectedClient configured as the client app is (ORDERS_API_URL, TRUSTPLANE_BROKER_SOCKET) then
// calls the API through the broker and the adapter.

const SPIFFE_ID = `spiffe://example.org/ns/${client.metadata.namespace}/sa/${podSpec(client).serviceAccountName}`;

let root: string;
let upstream: Upstream;
let workloadApi: WorkloadApiTestServer;
const children: { name: string; child: ChildProcess; stderr: () => string; exited: Promise<unknown> }[] = [];
let adapterBase: string;
let adapterAdmin: string;

/** A container path, as it lies under the temp root. */
const local = (p: string) => path.join(root, p);

/** Start a container's process: its command (the image ENTRYPOINT when absent) and arguments. */
function startContainer(
  name: string,
  c: Container,
  args: string[],
  env: Record<string, string>,
): (typeof children)[number] {
  // The image: WORKDIR /app holds dist/; ENTRYPOINT ["node", "dist/cmd/trustplane-adapter/main.js"].
  const command = c.command ?? ['node', 'dist/cmd/trustplane-adapter/main.js'];
  expect(command[0]).toBe('node');
  const script = path.resolve(command[1]!.replace(/^\/app\//, ''));
  const child = spawn(process.execPath, [script, ...command.slice(2), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-20_000)));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const started = { name, child, stderr: () => stderr, exited };
  children.push(started);
  return started;
}

/** The container's env from the manifest, with `fieldRef`s given and overrides applied. */
function envFor(c: Container, overrides: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = `${c.name}-pod`;
  }
  return { ...env, ...overrides };
}

/** Args with `$(VAR)` expanded (as the kubelet does), absolute paths moved under the temp root. */
function localArgs(args: readonly string[], env: Record<string, string>, swap: Record<string, string>) {
  return args.map((a) => {
    const expanded = a.replace(/\$\((\w+)\)/g, (_m, v: string) => env[v] ?? '');
    if (swap[expanded] !== undefined) return swap[expanded];
    if (expanded.startsWith('@/')) return `@${local(expanded.slice(1))}`;
    if (expanded.startsWith('/')) return local(expanded);
    return expanded;
  });
}

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'tp-k8s-'));
  for (const c of [adapter, broker, clientApp]) {
    for (const m of c.volumeMounts ?? []) mkdirSync(local(m.mountPath), { recursive: true, mode: 0o700 });
  }

  // Keys and signed bundles, from the example's configs.
  const [bundleSigner, brokerKey] = await Promise.all([generateSigningKey(), generateSigningKey()]);
  const now = Math.floor(Date.now() / 1000);
  const trustConfig = JSON.parse(
    readFileSync(`${DIR}/bundles/trust.config.json`, 'utf8').replace(
      'REPLACE_WITH_BROKER_PUBLIC_KEY',
      brokerKey.publicKey.x,
    ),
  ) as TrustMaterialConfig;
  const policyConfig = JSON.parse(
    readFileSync(`${DIR}/bundles/policy.config.json`, 'utf8'),
  ) as PolicyBundleConfig;
  const signedBy = { issuer: 'https://bundles.example', kid: 'bundle-1' };
  const trust = await signDocument(buildTrustMaterial(trustConfig, now), bundleSigner, signedBy);
  const policy = await signDocument(buildPolicyBundle(policyConfig, now), bundleSigner, signedBy);
  const write = (p: string, text: string, mode = 0o644) => {
    writeFileSync(local(p), text, { mode });
    chmodSync(local(p), mode);
  };
  write(str(adapterFlags.get('--trust-material')), JSON.stringify(trust));
  write(str(adapterFlags.get('--policy-bundle')), JSON.stringify(policy));
  write(str(adapterFlags.get('--bundle-public-key')).slice(1), `${bundleSigner.publicKey.x}\n`);
  write(str(brokerFlags.get('--private-key')).slice(1), `${brokerKey.exportKeyText()}\n`, 0o440);
  const issuance = find('ConfigMap', 'orders-client-broker-issuance').data as Record<string, string>;
  write(str(brokerFlags.get('--issuance')), issuance['issuance.json']!);
  // Both pods mount the same ConfigMaps: one copy serves both.
  expect(brokerFlags.get('--trust-material')).toBe(adapterFlags.get('--trust-material'));
  expect(brokerFlags.get('--policy-bundle')).toBe(adapterFlags.get('--policy-bundle'));
  expect(brokerFlags.get('--bundle-public-key')).toBe(adapterFlags.get('--bundle-public-key'));

  // The SPIRE agent: a Workload API server on the socket SPIFFE_ENDPOINT_SOCKET names.
  const endpoint = new URL(envOf(broker, 'SPIFFE_ENDPOINT_SOCKET')!);
  const chain = mintSpiffeChain({ trustDomain: 'example.org', spiffeId: SPIFFE_ID });
  workloadApi = await WorkloadApiTestServer.start({
    initial: x509SvidResponse([{ chain }]),
    socketPath: local(endpoint.pathname),
  });

  // The orders-api pod: the adapter in front of an upstream standing for the app.
  upstream = await startUpstream();
  const [listen, admin] = [await freePort(), await freePort()];
  const adapterEnv = envFor(adapter, {});
  startContainer(
    'adapter',
    adapter,
    localArgs(adapter.args ?? [], adapterEnv, {
      [str(adapterFlags.get('--upstream'))]: upstream.url,
      [str(adapterFlags.get('--listen'))]: `127.0.0.1:${listen}`,
      [str(adapterFlags.get('--admin-listen'))]: `127.0.0.1:${admin}`,
    }),
    adapterEnv,
  );
  adapterBase = `http://127.0.0.1:${listen}`;
  adapterAdmin = `http://127.0.0.1:${admin}`;

  // The orders-client pod's broker.
  const brokerEnv = envFor(broker, { SPIFFE_ENDPOINT_SOCKET: `unix://${local(endpoint.pathname)}` });
  startContainer('broker', broker, localArgs(broker.args ?? [], brokerEnv, {}), brokerEnv);

  // Readiness, by the manifests' own probes.
  const readinessPath = adapter.readinessProbe!.httpGet.path as string;
  await eventually(async () => {
    const failed = children.find((c) => c.child.exitCode !== null);
    if (failed) throw new Error(`${failed.name} exited: ${failed.stderr()}`);
    try {
      const r = await fetch(`${adapterAdmin}${readinessPath}`, { signal: AbortSignal.timeout(1_000) });
      return r.status === 200 ? true : undefined;
    } catch {
      return undefined;
    }
  }, 20_000);
  const probe = broker.readinessProbe!.exec.command as string[];
  const socket = str(brokerFlags.get('--socket'));
  const brokerReady = () => {
    const [cmd, ...probeArgs] = probe.map((a) => a.replaceAll(socket, local(socket)));
    expect(cmd).toBe('node');
    return spawnSync(process.execPath, probeArgs, { timeout: 5_000 }).status === 0;
  };
  await eventually(() => {
    const failed = children.find((c) => c.child.exitCode !== null);
    if (failed) throw new Error(`${failed.name} exited: ${failed.stderr()}`);
    return brokerReady() ? true : undefined;
  }, 20_000);
}, 60_000);

afterAll(async () => {
  for (const c of children) {
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGTERM');
    const timer = setTimeout(() => c.child.kill('SIGKILL'), 5_000);
    await c.exited;
    clearTimeout(timer);
  }
  await workloadApi?.close();
  await upstream?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** The client app: ProtectedClient on ORDERS_API_URL with the pod's broker; requests go to the local adapter. */
function ordersClient(sent: { url: string; init: RequestInit }[] = []) {
  const baseUrl = envOf(clientApp, 'ORDERS_API_URL')!;
  const origin = new URL(baseUrl).origin;
  return new ProtectedClient({
    baseUrl,
    audience: 'orders-api',
    passports: brokerPassports({
      broker: new BrokerIpcClient({ socketPath: local(envOf(clientApp, 'TRUSTPLANE_BROKER_SOCKET')!) }),
      keyBinding: { requested: 'attested_workload', acceptable: ['attested_workload'] },
    }),
    // Cluster DNS stand-in: the Service name resolves to the adapter's loopback port.
    fetch: (input, init) => {
      const url = String(input instanceof Request ? input.url : input).replace(origin, adapterBase);
      sent.push({ url, init: init ?? {} });
      return fetch(url, init);
    },
  });
}

describe('examples/kubernetes: the pods, run as processes with the manifests’ commands', () => {
  it('the adapter is ready by its readiness probe, alive by its liveness probe, and serves metrics', async () => {
    const live = await fetch(`${adapterAdmin}${adapter.livenessProbe!.httpGet.path as string}`);
    expect(live.status).toBe(200);
    expect(port(adapter, adapter.livenessProbe!.httpGet.port)).toBe(9090);
    const metrics = await (await fetch(`${adapterAdmin}/metrics`)).text();
    expect(metrics).toContain('trustplane_bundle_age_seconds');
  });

  it('the client gets attested_workload passports from the broker; the adapter admits them; the app sees the SPIFFE ID', async () => {
    const before = upstream.requests.length;
    const orders = ordersClient();
    const got = await orders.request({ method: 'GET', path: '/orders/ord_1', routeId: 'orders.get' });
    expect(got.status).toBe(200);
    const created = await orders.request({
      method: 'POST',
      path: '/orders',
      routeId: 'orders.create',
      headers: { 'content-type': 'application/json' },
      body: '{"sku":"A-1"}',
    });
    expect(created.status).toBe(200);
    const seen = upstream.requests.slice(before);
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/orders/ord_1', 'POST /v1/orders']);
    for (const [r, route] of [
      [seen[0]!, 'orders.get'],
      [seen[1]!, 'orders.create'],
    ] as const) {
      expect(r.headers['x-trustplane-subject']).toBe(SPIFFE_ID);
      expect(r.headers['x-trustplane-issuer']).toBe(brokerFlags.get('--issuer'));
      expect(r.headers['x-trustplane-key-binding']).toBe('attested_workload');
      expect(r.headers['x-trustplane-route-id']).toBe(route);
      expect(r.headers.authorization).toBeUndefined();
    }
    expect(seen[1]!.body.toString()).toBe('{"sku":"A-1"}');
  });

  it('attack: replay: a request the client sent, sent again, is 401 jti_replay and never reaches the app', async () => {
    const sent: { url: string; init: RequestInit }[] = [];
    const res = await ordersClient(sent).request({
      method: 'POST',
      path: '/orders',
      routeId: 'orders.create',
      headers: { 'content-type': 'application/json' },
      body: '{"sku":"B-2"}',
    });
    expect(res.status).toBe(200);
    const before = upstream.requests.length;
    const replay = await fetch(sent[0]!.url, sent[0]!.init);
    expect(replay.status).toBe(401);
    expect(await replay.json()).toEqual({ allowed: false, reason: 'jti_replay' });
    expect(upstream.requests.length).toBe(before);
  });

  it('without a passport the adapter answers 401 missing_passport and the app sees nothing', async () => {
    const before = upstream.requests.length;
    const res = await fetch(`${adapterBase}/v1/orders/ord_1`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ allowed: false, reason: 'missing_passport' });
    expect(upstream.requests.length).toBe(before);
  });
});
