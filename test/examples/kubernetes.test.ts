import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../pkg/authcore/index.js';
import { issuancePolicySchema } from '../../pkg/broker/index.js';
import { buildPolicyBundle, buildTrustMaterial, type PolicyBundleConfig } from '../../pkg/bundle/index.js';
import {
  DIR,
  adapter,
  adapterFlags,
  api,
  app,
  broker,
  brokerFlags,
  client,
  clientApp,
  containersOf,
  deployments,
  envOf,
  find,
  helpFlags,
  labelsMatch,
  manifests,
  podSpec,
  port,
  str,
  volumeFor,
  type K8s,
} from './manifests.js';

// examples/kubernetes: every manifest parsed as the API server reads YAML (1.1), then the security
// properties the README promises, checked on the documents themselves.

describe('examples/kubernetes: the manifests', () => {
  it('every document parses as YAML 1.1 and is a named object in namespace orders', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(9);
    for (const { file, doc } of manifests) {
      expect(typeof doc.apiVersion, file).toBe('string');
      expect(typeof doc.kind, file).toBe('string');
      expect(doc.metadata?.name, file).toMatch(/^[a-z0-9-]+$/);
      if (doc.kind !== 'Namespace') expect(doc.metadata.namespace, `${file} ${doc.kind}`).toBe('orders');
    }
    const ns = find('Namespace', 'orders');
    expect(ns.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });

  it('every container: non-root, read-only root filesystem, no privilege escalation, drop ALL, seccomp RuntimeDefault', () => {
    expect(deployments).toHaveLength(2);
    for (const d of deployments) {
      const pod = podSpec(d);
      expect(pod.securityContext.runAsNonRoot, d.metadata.name).toBe(true);
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      expect(pod.securityContext.seccompProfile).toEqual({ type: 'RuntimeDefault' });
      expect(pod.automountServiceAccountToken).toBe(false);
      for (const flag of ['hostNetwork', 'hostPID', 'hostIPC']) expect(pod[flag], flag).not.toBe(true);
      for (const v of pod.volumes as K8s[])
        expect(v.hostPath, `${d.metadata.name} ${v.name}`).toBeUndefined();
      for (const c of containersOf(d)) {
        const where = `${d.metadata.name}/${c.name}`;
        const sc = c.securityContext ?? {};
        expect(sc.runAsNonRoot, where).toBe(true);
        expect(sc.readOnlyRootFilesystem, where).toBe(true);
        expect(sc.allowPrivilegeEscalation, where).toBe(false);
        expect(sc.privileged, where).not.toBe(true);
        expect(sc.capabilities?.drop, where).toEqual(['ALL']);
        expect(sc.capabilities?.add, where).toBeUndefined();
        expect(sc.seccompProfile ?? pod.securityContext.seccompProfile, where).toEqual({
          type: 'RuntimeDefault',
        });
        expect(sc.runAsUser ?? pod.securityContext.runAsUser, where).toBe(pod.securityContext.runAsUser);
      }
    }
  });
});

describe('examples/kubernetes: the orders API cannot be reached around the adapter', () => {
  it('the app listens on loopback only, declares no port, and is the adapter upstream', () => {
    expect(envOf(app, 'HOST')).toBe('127.0.0.1');
    expect(app.ports ?? []).toEqual([]);
    expect(adapterFlags.get('--upstream')).toBe(`http://127.0.0.1:${envOf(app, 'PORT')}`);
  });

  it('the Service exposes only the adapter port', () => {
    const svc = find('Service', 'orders-api');
    expect(labelsMatch(svc.spec.selector, api.spec.template.metadata.labels)).toBe(true);
    const targets = (svc.spec.ports as K8s[]).map((p) => port(adapter, p.targetPort ?? p.port));
    expect(targets).toEqual([8080]);
    expect(str(adapterFlags.get('--listen'))).toBe('0.0.0.0:8080');
    const upstreamPort = Number(new URL(str(adapterFlags.get('--upstream'))).port);
    expect(targets).not.toContain(upstreamPort);
    expect(targets).not.toContain(9090);
  });

  it('the NetworkPolicy selects the pod and admits only 8080, and 9090 from the monitoring namespace', () => {
    const policies = manifests
      .filter((m) => m.doc.kind === 'NetworkPolicy')
      .map((m) => m.doc)
      .filter((p) => labelsMatch(p.spec.podSelector.matchLabels ?? {}, api.spec.template.metadata.labels));
    expect(policies.map((p) => p.metadata.name)).toEqual(['orders-api-ingress']);
    const [policy] = policies;
    expect(policy!.spec.podSelector.matchLabels).toEqual(api.spec.selector.matchLabels);
    expect(policy!.spec.policyTypes).toContain('Ingress');
    const rules = policy!.spec.ingress as K8s[];
    // Every rule names its ports (a rule without ports would open every port, the upstream's too).
    for (const rule of rules) expect(rule.ports ?? [], JSON.stringify(rule)).not.toHaveLength(0);
    const allowed = rules.flatMap((r) => (r.ports as K8s[]).map((p) => port(adapter, p.port)));
    expect(allowed.sort()).toEqual([8080, 9090]);
    const admin = rules.find((r) => (r.ports as K8s[]).some((p) => port(adapter, p.port) === 9090))!;
    expect(admin.from).toHaveLength(1);
    expect(admin.from[0].namespaceSelector.matchLabels).toEqual({
      'kubernetes.io/metadata.name': 'monitoring',
    });
    expect(admin.ports).toHaveLength(1);
  });

  it('probes: readiness on /readyz and liveness on /healthz, both on the admin port 9090', () => {
    expect(str(adapterFlags.get('--admin-listen'))).toBe('0.0.0.0:9090');
    expect(adapter.readinessProbe?.httpGet.path).toBe('/readyz');
    expect(port(adapter, adapter.readinessProbe?.httpGet.port)).toBe(9090);
    expect(adapter.livenessProbe?.httpGet.path).toBe('/healthz');
    expect(port(adapter, adapter.livenessProbe?.httpGet.port)).toBe(9090);
  });

  it('one enforcement point on the memory replay store; more replicas would need Redis', () => {
    const store = adapterFlags.get('--replay-store') ?? 'memory';
    if (api.spec.replicas > 1 || api.spec.strategy?.type !== 'Recreate') expect(store).toBe('redis');
    else expect(store).toBe('memory');
    // The journal is on a writable volume (the root filesystem is read-only).
    const { volume, mount } = volumeFor(api, adapter, str(adapterFlags.get('--replay-journal')));
    expect(volume.emptyDir).toBeDefined();
    expect(mount.readOnly).not.toBe(true);
  });
});

describe('examples/kubernetes: the CLI flags exist', () => {
  let adapterHelp: Set<string>;
  let brokerHelp: Set<string>;
  beforeAll(() => {
    adapterHelp = helpFlags(['adapter']);
    brokerHelp = helpFlags(['broker', 'serve']);
  });

  it('the adapter container runs the image ENTRYPOINT (trustplane-adapter) with flags `adapter --help` lists', () => {
    expect(adapterHelp.has('--upstream')).toBe(true);
    expect(adapter.command).toBeUndefined();
    expect(readFileSync('examples/docker/Dockerfile', 'utf8')).toContain(
      'ENTRYPOINT ["node", "dist/cmd/trustplane-adapter/main.js"]',
    );
    expect([...adapterFlags.keys()].filter((f) => !adapterHelp.has(f))).toEqual([]);
    expect((adapter.args ?? []).filter((a) => !a.startsWith('--') && a.startsWith('-'))).toEqual([]);
  });

  it('the broker container runs `trustplane broker serve` with flags `broker serve --help` lists', () => {
    expect(brokerHelp.has('--identity')).toBe(true);
    expect(broker.command).toEqual(['node', '/app/dist/cmd/trustplane/main.js']);
    expect(broker.args?.slice(0, 2)).toEqual(['broker', 'serve']);
    expect([...brokerFlags.keys()].filter((f) => !brokerHelp.has(f))).toEqual([]);
    expect(brokerFlags.get('--identity')).toBe('workload-api');
  });

  it('every file an adapter or broker flag names is on a mounted volume of the right kind', () => {
    const fileOf = (v: string | true | undefined) => str(v).replace(/^@/, '');
    for (const flag of ['--trust-material', '--policy-bundle']) {
      expect(volumeFor(api, adapter, fileOf(adapterFlags.get(flag))).volume.configMap?.name).toBe(
        'trustplane-bundles',
      );
      expect(volumeFor(client, broker, fileOf(brokerFlags.get(flag))).volume.configMap?.name).toBe(
        'trustplane-bundles',
      );
    }
    const adapterKey = volumeFor(api, adapter, fileOf(adapterFlags.get('--bundle-public-key'))).volume;
    expect(adapterKey.configMap ?? adapterKey.secret).toBeDefined();
    expect(str(brokerFlags.get('--issuance'))).toMatch(/^\//);
    expect(volumeFor(client, broker, str(brokerFlags.get('--issuance'))).volume.configMap?.name).toBe(
      'orders-client-broker-issuance',
    );
  });
});

describe('examples/kubernetes: the caller and its broker sidecar', () => {
  it('SPIFFE_ENDPOINT_SOCKET points into the SPIFFE CSI driver volume, mounted read-only', () => {
    const endpoint = envOf(broker, 'SPIFFE_ENDPOINT_SOCKET');
    expect(endpoint).toBe('unix:///spiffe-workload-api/spire-agent.sock');
    const { volume, mount } = volumeFor(client, broker, new URL(endpoint!).pathname);
    expect(volume.csi).toEqual({ driver: 'csi.spiffe.io', readOnly: true });
    expect(mount.readOnly).toBe(true);
    // Only the broker talks to the SPIRE agent.
    expect((clientApp.volumeMounts ?? []).map((m) => m.name)).not.toContain(mount.name);
  });

  it('the broker socket is in an emptyDir shared with the app container only', () => {
    const socket = str(brokerFlags.get('--socket'));
    expect(envOf(clientApp, 'TRUSTPLANE_BROKER_SOCKET')).toBe(socket);
    const fromBroker = volumeFor(client, broker, socket);
    const fromApp = volumeFor(client, clientApp, socket);
    expect(fromBroker.volume.name).toBe(fromApp.volume.name);
    expect(fromBroker.volume.emptyDir).toBeDefined();
    expect(fromBroker.mount.mountPath).toBe(fromApp.mount.mountPath);
  });

  it('the broker key comes from a Secret mounted in the broker container only, not world-readable', () => {
    const keyFile = str(brokerFlags.get('--private-key'));
    expect(keyFile.startsWith('@')).toBe(true);
    const { volume, mount } = volumeFor(client, broker, keyFile.slice(1));
    expect(volume.secret?.secretName).toBe('orders-client-broker-key');
    expect(mount.readOnly).toBe(true);
    expect(volume.secret.defaultMode & 0o007).toBe(0);
    expect((clientApp.volumeMounts ?? []).map((m) => m.name)).not.toContain(volume.name);
    expect(podSpec(client).securityContext.fsGroup).toBe(podSpec(client).securityContext.runAsGroup);
  });

  it('the client pod accepts no connections and may only reach the adapter port and DNS', () => {
    const policy = find('NetworkPolicy', 'orders-client');
    expect(labelsMatch(policy.spec.podSelector.matchLabels, client.spec.template.metadata.labels)).toBe(true);
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy.spec.ingress).toEqual([]);
    const ports = (policy.spec.egress as K8s[]).flatMap((r) => (r.ports as K8s[]).map((p) => p.port));
    expect(ports.sort()).toEqual([53, 53, 8080]);
  });
});

describe('examples/kubernetes: bundles, issuance and URLs agree', () => {
  const trustConfig = JSON.parse(readFileSync(`${DIR}/bundles/trust.config.json`, 'utf8')) as {
    issuers: { issuer: string; keys: { kid: string; x: string }[] }[];
  };
  const policyConfig = JSON.parse(
    readFileSync(`${DIR}/bundles/policy.config.json`, 'utf8'),
  ) as PolicyBundleConfig;

  it('the bundle configs build, and name the broker issuer and kid of the broker args', async () => {
    const key = await generateSigningKey();
    const withKey = JSON.parse(
      JSON.stringify(trustConfig).replace('REPLACE_WITH_BROKER_PUBLIC_KEY', key.publicKey.x),
    ) as Parameters<typeof buildTrustMaterial>[0];
    const now = Math.floor(Date.now() / 1000);
    const trust = buildTrustMaterial(withKey, now);
    const policy = buildPolicyBundle(policyConfig, now);
    const issuer = trust.issuers.find((i) => i.issuer === brokerFlags.get('--issuer'));
    expect(issuer?.source_type).toBe('spiffe_spire');
    expect(issuer?.keys.map((k) => k.kid)).toContain(brokerFlags.get('--kid'));
    expect(policy.apis.map((a) => a.audience)).toEqual(['orders-api']);
  });

  it('the issuance grants name routes of the policy, for the SPIFFE ID of the client service account', () => {
    const issuanceText = find('ConfigMap', 'orders-client-broker-issuance').data['issuance.json'] as string;
    const issuance = issuancePolicySchema.parse(JSON.parse(issuanceText));
    const routes = policyConfig.route_groups.flatMap((g) => g.routes);
    for (const grant of issuance.grants ?? []) {
      expect(grant.subject_exact).toBe(
        `spiffe://example.org/ns/${client.metadata.namespace}/sa/${podSpec(client).serviceAccountName}`,
      );
      expect(grant.audiences).toEqual(['orders-api']);
      for (const id of grant.routes) {
        const route = routes.find((r) => r.route_id === id);
        expect(route, id).toBeDefined();
        const sources = route!.allowed_sources;
        expect(
          sources.some(
            (s) =>
              s.issuer === brokerFlags.get('--issuer') &&
              (s.subject_exact === grant.subject_exact ||
                (s.subject_prefix !== undefined && grant.subject_exact!.startsWith(s.subject_prefix))),
          ),
          id,
        ).toBe(true);
      }
    }
  });

  it("the client's API URL has the policy base_url's origin, which the Service's DNS name serves", () => {
    const base = new URL(policyConfig.apis[0]!.base_url!);
    const used = new URL(envOf(clientApp, 'ORDERS_API_URL')!);
    expect(used.origin).toBe(base.origin);
    const svc = find('Service', 'orders-api');
    expect(base.hostname).toBe(`${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`);
    expect(Number(base.port || 80)).toBe((svc.spec.ports as K8s[])[0]!.port);
  });

  it('the README creates every ConfigMap and Secret the pods mount that the manifests do not define', () => {
    const readme = readFileSync(`${DIR}/README.md`, 'utf8');
    expect(readme).toContain('../../SECURITY.md');
    const defined = new Set(manifests.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`));
    for (const d of deployments) {
      for (const v of podSpec(d).volumes as K8s[]) {
        if (v.configMap && !defined.has(`ConfigMap/${v.configMap.name}`)) {
          expect(readme).toMatch(new RegExp(`kubectl[^\\n]* create configmap ${v.configMap.name}\\b`));
        }
        if (v.secret)
          expect(readme).toMatch(
            new RegExp(`kubectl[^\\n]* create secret generic ${v.secret.secretName}\\b`),
          );
      }
    }
  });
});
