import { request, type Agent, type IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import { MemoryAuditSink } from '../../pkg/audit/index.js';
import { resolveAdapterConfig, startAdapter, type AdapterConfigInput } from '../../pkg/adapter/index.js';
import { createLogger } from '../../pkg/runtime/logger.js';
import { writeWorld, type TestAdapter } from './adapter.js';
import type { World } from './fixture.js';
import { parsePrometheus, type Sample } from './prometheus.js';

/** Resolve after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` every 25 ms until it is true; throw after `ms` (default 10 s). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Scrape an admin listener's `/metrics` (bounded by 10 s). */
export async function scrape(admin: string): Promise<Sample[]> {
  const res = await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(10_000) });
  return parsePrometheus(await res.text());
}

/** The status of an admin listener's `/readyz` (0 when it does not answer within 5 s). */
export async function readyStatus(admin: string): Promise<number> {
  try {
    const res = await fetch(`${admin}/readyz`, { signal: AbortSignal.timeout(5_000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** What came back for one request: a whole HTTP response, or a connection-level error. */
export type Outcome =
  | {
      readonly kind: 'response';
      readonly status: number;
      /** `X-TrustPlane-Reason` of a deny (undefined on an allow). */
      readonly reason: string | undefined;
      readonly headers: IncomingHttpHeaders;
      readonly body: string;
    }
  | { readonly kind: 'error'; readonly code: string };

/** One request as {@link send} sends it (the raw target is sent exactly as given). */
export interface SendSpec {
  readonly method: string;
  readonly target: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

/**
 * Send one request and settle with its {@link Outcome}; never rejects. `agent: false` (default)
 * opens a connection of its own, so a request never lands on a keep-alive socket the server is
 * closing; pass a keep-alive agent to reuse connections.
 */
export function send(
  base: string,
  spec: SendSpec,
  options: { agent?: Agent | false; timeoutMs?: number } = {},
): Promise<Outcome> {
  const u = new URL(base);
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      resolve(o);
    };
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method: spec.method,
        path: spec.target,
        headers: spec.headers,
        agent: options.agent ?? false,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const reason = res.headers['x-trustplane-reason'];
          done({
            kind: 'response',
            status: res.statusCode ?? 0,
            reason: typeof reason === 'string' ? reason : undefined,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
        res.on('error', (e: NodeJS.ErrnoException) => done({ kind: 'error', code: e.code ?? e.message }));
        res.on('aborted', () => done({ kind: 'error', code: 'ABORTED' }));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => done({ kind: 'error', code: e.code ?? e.message }));
    req.end(spec.body);
  });
}

/**
 * The wire form of a signed request (the fixture's `signed`) for {@link send}, with an
 * `X-Request-Id` so that the request can be found in the audit records and at the upstream.
 */
export function signedSpec(
  s: { url: string; method: string; headers: Readonly<Record<string, string>> },
  requestId: string,
  body?: string,
): SendSpec {
  const u = new URL(s.url);
  return {
    method: s.method,
    target: `${u.pathname}${u.search}`,
    headers: { ...s.headers, 'x-request-id': requestId },
    ...(body !== undefined ? { body } : {}),
  };
}

/**
 * Start an in-process adapter on loopback like `startTestAdapter`, with the clock given (epoch
 * seconds), a memory audit sink and silent logs.
 */
export async function startAdapterWithClock(
  world: World,
  clock: () => number,
  config: Partial<AdapterConfigInput> = {},
  files = writeWorld(world),
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
  const adapter = await startAdapter(resolved, { clock, audit, log: createLogger('silent') });
  return {
    adapter,
    audit,
    base: `http://127.0.0.1:${adapter.address.port}`,
    admin: `http://127.0.0.1:${adapter.adminAddress!.port}`,
    files,
  };
}
