import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { DEFAULT_EXT_AUTHZ_GRPC_LISTEN } from '../../pkg/adapter/ext-authz-grpc.js';
import { adapterConfigSchema } from '../../pkg/adapter/index.js';
import { flagsOf } from './manifests.js';

// examples/envoy/envoy.yaml and examples/istio/*.yaml: Envoy and Istio cannot run here, so the
// fields that decide what is enforced are checked on the documents: the ext_authz filter talks gRPC
// v3 to the adapter's port, sends the body as bytes and whole, denies when the adapter cannot
// answer, and nothing keeps the identity headers the adapter sets from reaching the upstream.

/* eslint-disable @typescript-eslint/no-explicit-any -- Envoy and Kubernetes objects are untyped JSON here. */
type Doc = Record<string, any>;
/* eslint-enable @typescript-eslint/no-explicit-any */

function load(file: string): Doc[] {
  const text = readFileSync(file, 'utf8');
  return parseAllDocuments(text, { version: '1.1', uniqueKeys: true, strict: true }).map((d) => {
    if (!('errors' in d)) throw new Error(`${file}: not a YAML document stream`);
    const problems = [...d.errors, ...d.warnings];
    if (problems.length > 0) throw new Error(`${file}: ${problems.map((e) => e.message).join('; ')}`);
    return d.toJS() as Doc;
  });
}

const GRPC_PORT = Number(DEFAULT_EXT_AUTHZ_GRPC_LISTEN.split(':').at(-1));
const EXT_AUTHZ_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const ADAPTER_FLAGS = new Set(
  [...readFileSync('cmd/trustplane/commands/adapter.ts', 'utf8').matchAll(/'(--[a-z0-9-]+)[ ']/g)].map(
    (m) => m[1]!,
  ),
);
/** The adapter's default body limit: Envoy must not buffer more than the adapter binds. */
const MAX_BODY = adapterConfigSchema.shape.maxBodyBytes.parse(undefined);

describe('examples/envoy/envoy.yaml', () => {
  const [bootstrap] = load('examples/envoy/envoy.yaml') as [Doc];
  const listeners = bootstrap.static_resources.listeners as Doc[];
  const clusters = bootstrap.static_resources.clusters as Doc[];
  const hcm = listeners[0]!.filter_chains[0].filters.find(
    (f: Doc) => f.name === 'envoy.filters.network.http_connection_manager',
  ) as Doc;
  const filters = hcm.typed_config.http_filters as Doc[];
  const extAuthz = filters.find((f) => f.name === 'envoy.filters.http.ext_authz')!;
  const config = extAuthz.typed_config as Doc;
  const cluster = (name: string) => clusters.find((c) => c.name === name)!;
  const ports = (c: Doc) =>
    (c.load_assignment.endpoints as Doc[]).flatMap((e) =>
      (e.lb_endpoints as Doc[]).map((l) => l.endpoint.address.socket_address.port_value as number),
    );

  it('is a v3 bootstrap: one listener, http_connection_manager, ext_authz before the router', () => {
    expect(listeners).toHaveLength(1);
    expect(hcm.typed_config['@type']).toBe(
      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    );
    expect(config['@type']).toBe(EXT_AUTHZ_TYPE);
    expect(filters.at(-1)!.name).toBe('envoy.filters.http.router');
    expect(filters.indexOf(extAuthz)).toBeLessThan(filters.length - 1);
  });

  it('calls the adapter over gRPC v3 on its default ext_authz port, HTTP/2', () => {
    expect(config.transport_api_version).toBe('V3');
    const target = config.grpc_service.envoy_grpc.cluster_name as string;
    const adapter = cluster(target);
    expect(ports(adapter)).toEqual([GRPC_PORT]);
    expect(
      adapter.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']
        .explicit_http_config.http2_protocol_options,
    ).toBeDefined();
    expect(config.grpc_service.timeout).toMatch(/^\d+(\.\d+)?s$/);
  });

  it('sends the whole body as bytes, never a partial one, and denies when the adapter cannot answer', () => {
    expect(config.with_request_body).toEqual({
      max_request_bytes: expect.any(Number),
      allow_partial_message: false,
      pack_as_bytes: true,
    });
    expect(config.with_request_body.max_request_bytes).toBeLessThanOrEqual(MAX_BODY);
    expect(config.failure_mode_allow).toBe(false);
    // Repeated header lines stay visible (a repeated Authorization is refused, not merged).
    expect(config.encode_raw_headers).toBe(true);
  });

  it('lets the identity headers the adapter sets reach the upstream (nothing filters or forbids them)', () => {
    // gRPC OkHttpResponse headers are applied as sent, unless mutation rules forbid them.
    const rules = config.decoder_header_mutation_rules as Doc | undefined;
    if (rules !== undefined) {
      expect(rules.disallow_all?.value ?? rules.disallow_all).not.toBe(true);
      expect(JSON.stringify(rules.disallow_expression ?? '')).not.toMatch(/trustplane/i);
    }
    // Every request header goes to the check (passport, proof, covered headers).
    expect(config.allowed_headers).toBeUndefined();
    // The route sends everything through the filter to the upstream cluster.
    const routes = hcm.typed_config.route_config.virtual_hosts.flatMap((v: Doc) => v.routes) as Doc[];
    expect(routes.length).toBeGreaterThan(0);
    for (const r of routes) {
      expect(cluster(r.route.cluster), r.route.cluster).toBeDefined();
      expect(r.typed_per_filter_config?.['envoy.filters.http.ext_authz']?.disabled).not.toBe(true);
    }
  });
});

describe('examples/istio', () => {
  const docs = readdirSync('examples/istio')
    .filter((f) => /\.ya?ml$/.test(f))
    .flatMap((f) => load(path.join('examples/istio', f)).filter((d) => d !== null));
  const find = (kind: string) => docs.filter((d) => d.kind === kind);
  const mesh = docs.find((d) => d.kind === 'IstioOperator' || d.meshConfig !== undefined)!;
  const meshConfig = (mesh.spec?.meshConfig ?? mesh.meshConfig) as Doc;
  const provider = (meshConfig.extensionProviders as Doc[]).find((p) => p.envoyExtAuthzGrpc !== undefined)!;
  const grpc = provider.envoyExtAuthzGrpc as Doc;
  const [service] = find('Service') as [Doc];
  const [deployment] = find('Deployment') as [Doc];
  const container = (deployment.spec.template.spec.containers as Doc[]).find((c) =>
    (c.args as string[] | undefined)?.includes('ext-authz-grpc'),
  )!;
  const flags = flagsOf(container.args as string[]);

  it('an AuthorizationPolicy with action CUSTOM names the envoyExtAuthzGrpc provider', () => {
    const policies = find('AuthorizationPolicy');
    expect(policies.length).toBeGreaterThan(0);
    for (const p of policies) {
      expect(p.spec.action).toBe('CUSTOM');
      expect(p.spec.provider.name).toBe(provider.name);
    }
  });

  it('the provider points at the adapter Service, on the adapter default ext_authz port', () => {
    expect(grpc.service).toBe(`${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`);
    expect(grpc.port).toBe(GRPC_PORT);
    const port = (service.spec.ports as Doc[]).find((p) => p.port === GRPC_PORT)!;
    expect(port.appProtocol ?? port.name).toMatch(/^grpc/);
    const containerPort = (container.ports as Doc[]).find(
      (p) => p.name === port.targetPort || p.containerPort === port.targetPort,
    )!;
    expect(containerPort.containerPort).toBe(GRPC_PORT);
    expect(flags.get('--mode')).toBe('ext-authz-grpc');
    expect(flags.get('--ext-authz-grpc-listen')).toBe(`0.0.0.0:${GRPC_PORT}`);
    for (const flag of flags.keys()) expect(ADAPTER_FLAGS.has(flag), flag).toBe(true);
    // The Deployment's pods are the Service's.
    for (const [k, v] of Object.entries(service.spec.selector as Record<string, string>)) {
      expect(deployment.spec.template.metadata.labels[k]).toBe(v);
    }
  });

  it('sends the body whole and as bytes, and fails closed', () => {
    expect(grpc.includeRequestBodyInCheck).toEqual({
      maxRequestBytes: expect.any(Number),
      allowPartialMessage: false,
      packAsBytes: true,
    });
    expect(grpc.includeRequestBodyInCheck.maxRequestBytes).toBeLessThanOrEqual(MAX_BODY);
    expect(grpc.failOpen).toBe(false);
  });

  it('the adapter is ready only when its gRPC health service says SERVING', () => {
    expect(container.readinessProbe.grpc.port).toBe(GRPC_PORT);
  });
});
