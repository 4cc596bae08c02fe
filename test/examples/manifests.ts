import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CLI } from './helpers.js';

// examples/kubernetes, loaded as the API server reads it (YAML 1.1), with small accessors.

export const DIR = 'examples/kubernetes';

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are untyped JSON here. */
export type K8s = Record<string, any>;
/* eslint-enable @typescript-eslint/no-explicit-any */

/** The container fields the tests read. */
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: K8s }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: K8s;
  readinessProbe?: K8s;
  livenessProbe?: K8s;
}

/** Every document of every examples/kubernetes/*.yaml; any YAML error or warning throws. */
export function loadManifests(): { file: string; doc: K8s }[] {
  const out: { file: string; doc: K8s }[] = [];
  for (const file of readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f))) {
    const text = readFileSync(path.join(DIR, file), 'utf8');
    for (const doc of parseAllDocuments(text, { version: '1.1', uniqueKeys: true, strict: true })) {
      if (!('errors' in doc)) throw new Error(`${file}: not a YAML document stream`);
      const problems = [...doc.errors, ...doc.warnings];
      if (problems.length > 0) throw new Error(`${file}: ${problems.map((e) => e.message).join('; ')}`);
      const value = doc.toJS() as K8s | null;
      if (value !== null) out.push({ file, doc: value });
    }
  }
  return out;
}

/** The `--flags` a built CLI command's --help lists. */
export function helpFlags(args: string[]): Set<string> {
  const help = execFileSync(process.execPath, [CLI, ...args, '--help'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return new Set([...help.matchAll(/^\s+(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]!));
}

/** `--flag value` / `--flag=value` pairs of a container's args (a flag followed by a flag has no value). */
export function flagsOf(args: readonly string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    if (eq > 0) out.set(arg.slice(0, eq), arg.slice(eq + 1));
    else if (args[i + 1] !== undefined && !args[i + 1]!.startsWith('--')) out.set(arg, args[++i]!);
    else out.set(arg, true);
  }
  return out;
}

/** A flag's value (throws for a missing flag or a bare switch). */
export function str(value: string | true | undefined): string {
  if (typeof value !== 'string') throw new Error('expected a flag value');
  return value;
}

export const manifests = loadManifests();

/** The one object of this kind and name (throws unless exactly one). */
export function find(kind: string, name: string): K8s {
  const found = manifests.filter((m) => m.doc.kind === kind && m.doc.metadata?.name === name);
  if (found.length !== 1) throw new Error(`${kind}/${name}: ${found.length} documents`);
  return found[0]!.doc;
}

export const deployments = manifests.filter((m) => m.doc.kind === 'Deployment').map((m) => m.doc);
export const podSpec = (d: K8s): K8s => d.spec.template.spec;
export const containersOf = (d: K8s): Container[] => [
  ...((podSpec(d).initContainers ?? []) as Container[]),
  ...(podSpec(d).containers as Container[]),
];
export function container(d: K8s, name: string): Container {
  const c = containersOf(d).find((x) => x.name === name);
  if (!c) throw new Error(`${d.metadata.name}: no container ${name}`);
  return c;
}
export const envOf = (c: Container, name: string): string | undefined =>
  c.env?.find((e) => e.name === name)?.value;
export const labelsMatch = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The volume a container path is on, and the mount (the longest mount path that contains it). */
export function volumeFor(d: K8s, c: Container, file: string): { volume: K8s; mount: K8s } {
  const mount = (c.volumeMounts ?? [])
    .filter((m) => file === m.mountPath || file.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) throw new Error(`${c.name}: ${file} is on no volume`);
  const volume = (podSpec(d).volumes as K8s[]).find((v) => v.name === mount.name);
  if (!volume) throw new Error(`${c.name}: volume ${mount.name} is not declared`);
  return { volume, mount };
}

/** A container port by name or number. */
export function port(c: Container, nameOrNumber: string | number): number {
  if (typeof nameOrNumber === 'number') return nameOrNumber;
  const p = c.ports?.find((x) => x.name === nameOrNumber);
  if (!p) throw new Error(`${c.name}: no port named ${nameOrNumber}`);
  return p.containerPort;
}

export const api = find('Deployment', 'orders-api');
export const client = find('Deployment', 'orders-client');
export const app = container(api, 'app');
export const adapter = container(api, 'trustplane-adapter');
export const broker = container(client, 'trustplane-broker');
export const clientApp = container(client, 'app');
export const adapterFlags = flagsOf(adapter.args ?? []);
export const brokerFlags = flagsOf(broker.args ?? []);
