import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { splitConcatenatedDer } from '../../pkg/broker/spiffe/concatenated-der.js';
import { parseWorkloadEndpoint } from '../../pkg/broker/spiffe/workload-api-endpoint.js';
import { WorkloadApiError } from '../../pkg/broker/spiffe/workload-api-error.js';
import { WORKLOAD_API_MAX_CHAIN_CERTS } from '../../pkg/broker/spiffe/workload-api-limits.js';
import {
  WorkloadApiX509Source,
  type WorkloadApiX509SourceOptions,
} from '../../pkg/broker/spiffe/workload-api-source.js';
import { parseX509SvidResponse, type X509SvidUpdate } from '../../pkg/broker/spiffe/workload-api-update.js';
import { WORKLOAD_API_PROTO, loadWorkloadApiDefinition } from '../../pkg/broker/spiffe/workload-proto.js';
import {
  SECURITY_HEADER_MISSING,
  WorkloadApiTestServer,
  concatDer,
  x509SvidResponse,
} from '../helpers/workload-api-server.js';
import { mintSpiffeChain, type SpiffeChain } from '../helpers/x509.js';

const FAST_BACKOFF = { initialMs: 20, maxMs: 200 } as const;

// Real certificates, minted once at module scope (the it.each tables below need them at collection).
/** Leaf + intermediate; the root is the bundle. */
const web: SpiffeChain = mintSpiffeChain({
  trustDomain: 'example.org',
  spiffeId: 'spiffe://example.org/web',
});
/** Same trust domain and root, a new leaf under a new intermediate. */
const rotated: SpiffeChain = mintSpiffeChain({
  trustDomain: 'example.org',
  spiffeId: 'spiffe://example.org/web',
  root: web.root,
});
/** A second identity, no intermediate. */
const db: SpiffeChain = mintSpiffeChain({
  trustDomain: 'example.org',
  spiffeId: 'spiffe://example.org/db',
  intermediate: false,
});
/** A federated trust domain. */
const partner: SpiffeChain = mintSpiffeChain({ trustDomain: 'partner.test' });

const servers: WorkloadApiTestServer[] = [];
const sources: WorkloadApiX509Source[] = [];
const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
  for (const s of sources.splice(0)) s.close();
  for (const s of servers.splice(0)) await s.close();
  for (const c of cleanups.splice(0)) await c();
});

async function startServer(
  ...args: Parameters<typeof WorkloadApiTestServer.start>
): Promise<WorkloadApiTestServer> {
  const server = await WorkloadApiTestServer.start(...args);
  servers.push(server);
  return server;
}

async function connect(options: WorkloadApiX509SourceOptions): Promise<WorkloadApiX509Source> {
  const source = await WorkloadApiX509Source.connect({
    backoff: FAST_BACKOFF,
    initialTimeoutMs: 5000,
    ...options,
  });
  sources.push(source);
  return source;
}

/** Poll `check` until it returns true or the deadline passes (then fail with `what`). */
async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function rejection(p: Promise<unknown>): Promise<WorkloadApiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof WorkloadApiError) return e;
    throw e;
  }
  throw new Error('expected a WorkloadApiError rejection');
}

function thrown(fn: () => unknown): WorkloadApiError {
  try {
    fn();
  } catch (e) {
    if (e instanceof WorkloadApiError) return e;
    throw e;
  }
  throw new Error('expected a WorkloadApiError');
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('workload.proto', () => {
  it('has the published shape: no package, /SpiffeWorkloadAPI/FetchX509SVID server stream', () => {
    expect(WORKLOAD_API_PROTO).not.toMatch(/^\s*package\s/m);
    const { service, fetchX509Svid } = loadWorkloadApiDefinition();
    expect(fetchX509Svid.path).toBe('/SpiffeWorkloadAPI/FetchX509SVID');
    expect(fetchX509Svid.requestStream).toBe(false);
    expect(fetchX509Svid.responseStream).toBe(true);
    expect(Object.keys(service).sort()).toEqual(
      ['FetchJWTBundles', 'FetchJWTSVID', 'FetchX509Bundles', 'FetchX509SVID', 'ValidateJWTSVID'].sort(),
    );
    expect(service['FetchX509Bundles']?.path).toBe('/SpiffeWorkloadAPI/FetchX509Bundles');
  });

  it('encodes X509SVIDResponse with the published field numbers', () => {
    const { fetchX509Svid } = loadWorkloadApiDefinition();
    const wire = fetchX509Svid.responseSerialize({
      svids: [
        {
          spiffe_id: 'a',
          x509_svid: Buffer.from([1]),
          x509_svid_key: Buffer.from([2]),
          bundle: Buffer.from([3]),
          hint: 'h',
        },
      ],
      crl: [Buffer.from([4])],
      federated_bundles: { t: Buffer.from([5]) },
    });
    // svids = 1 (X509SVID: spiffe_id 1, x509_svid 2, x509_svid_key 3, bundle 4, hint 5), crl = 2,
    // federated_bundles = 3 (map entry: key 1, value 2).
    expect(wire.toString('hex')).toBe(
      '0a0f' + '0a0161' + '120101' + '1a0102' + '220103' + '2a0168' + '120104' + '1a06' + '0a0174' + '120105',
    );
    const back = fetchX509Svid.responseDeserialize(wire) as { svids: { hint: string; bundle: Buffer }[] };
    expect(back.svids[0]?.hint).toBe('h');
    expect(Buffer.isBuffer(back.svids[0]?.bundle)).toBe(true);
  });
});

describe('WorkloadApiX509Source over a Unix socket', () => {
  it('connect gets the SVID: SPIFFE ID, chain split per certificate, key bytes, bundle, federated bundles', async () => {
    const server = await startServer({
      initial: x509SvidResponse([{ chain: web, hint: 'internal' }, { chain: db }], {
        'spiffe://partner.test': [partner.root.der],
      }),
    });
    const updates: X509SvidUpdate[] = [];
    const source = await connect({
      endpoint: server.endpoint,
      onUpdate: (u) => updates.push(u),
      now: () => 1_700_000_000,
    });

    const update = source.current();
    expect(update.svids).toHaveLength(2);
    const svid = source.currentSvid();
    expect(svid).toBe(update.svids[0]);
    expect(svid.spiffeId).toBe('spiffe://example.org/web');
    expect(svid.hint).toBe('internal');
    expect(svid.chainDer).toHaveLength(2);
    expect(svid.chainDer.map(hex)).toEqual([hex(web.leaf.der), hex(web.intermediate!.der)]);
    expect(hex(svid.keyPkcs8Der)).toBe(hex(web.leafKey.pkcs8Der));
    expect(svid.bundleDer.map(hex)).toEqual([hex(web.root.der)]);

    const second = update.svids[1]!;
    expect(second.spiffeId).toBe('spiffe://example.org/db');
    expect(second.chainDer).toHaveLength(1);
    expect(source.currentSvid({ hint: 'internal' })).toBe(svid);

    expect([...update.federatedBundles.keys()]).toEqual(['partner.test']);
    expect(update.federatedBundles.get('partner.test')!.map(hex)).toEqual([hex(partner.root.der)]);
    expect(update.receivedAt).toBe(1_700_000_000);
    expect(updates).toEqual([update]);
    expect(server.calls).toBe(1);
    expect(server.rejected).toBe(0);
  });

  it('the update is immutable and never shows the private key when logged or serialized', async () => {
    const server = await startServer({
      initial: x509SvidResponse([{ chain: web }], { 'partner.test': [partner.root.der] }),
    });
    const source = await connect({ endpoint: server.endpoint });
    const update = source.current();
    const svid = update.svids[0]!;
    expect(Object.isFrozen(update)).toBe(true);
    expect(Object.isFrozen(update.svids)).toBe(true);
    expect(Object.isFrozen(svid)).toBe(true);
    expect(Object.isFrozen(svid.chainDer)).toBe(true);
    expect(() => (update.federatedBundles as Map<string, readonly Uint8Array[]>).set('x', [])).toThrow(
      TypeError,
    );
    expect(() =>
      (update.federatedBundles as Map<string, readonly Uint8Array[]>).delete('partner.test'),
    ).toThrow(TypeError);
    expect(update.federatedBundles.size).toBe(1);

    const keyHex = hex(svid.keyPkcs8Der);
    const keyList = Array.from(svid.keyPkcs8Der.subarray(0, 16)).join(', ');
    for (const text of [
      JSON.stringify(update),
      JSON.stringify(svid),
      inspect(update, { depth: 10 }),
      inspect({ ...svid }),
    ]) {
      expect(text).not.toContain(keyHex);
      expect(text).not.toContain(keyList);
    }
    expect(Object.keys(svid)).not.toContain('keyPkcs8Der');
  });

  it('a rotation pushed on the stream reaches current() and onUpdate', async () => {
    const server = await startServer({ initial: x509SvidResponse([{ chain: web }]) });
    const updates: X509SvidUpdate[] = [];
    const source = await connect({ endpoint: server.endpoint, onUpdate: (u) => updates.push(u) });
    expect(hex(source.currentSvid().chainDer[0]!)).toBe(hex(web.leaf.der));

    await waitFor('the stream to be registered', () => server.openStreams === 1);
    expect(server.push(x509SvidResponse([{ chain: rotated }]))).toBe(1);
    await waitFor('the rotation', () => updates.length === 2);

    const now = source.current();
    expect(now).toBe(updates[1]);
    expect(hex(now.svids[0]!.chainDer[0]!)).toBe(hex(rotated.leaf.der));
    expect(hex(now.svids[0]!.keyPkcs8Der)).toBe(hex(rotated.leafKey.pkcs8Der));
    // Still one connection and one call: the rotation came down the same stream.
    expect(server.connections).toBe(1);
    expect(server.calls).toBe(1);
  });

  it('a bad response is reported and ignored: the last good update stays current', async () => {
    const server = await startServer({ initial: x509SvidResponse([{ chain: web }]) });
    const errors: WorkloadApiError[] = [];
    const updates: X509SvidUpdate[] = [];
    const source = await connect({
      endpoint: server.endpoint,
      onError: (e) => errors.push(e),
      onUpdate: (u) => updates.push(u),
    });
    const first = source.current();
    await waitFor('the stream to be registered', () => server.openStreams === 1);

    server.push({ svids: [] });
    await waitFor('the empty response to be reported', () => errors.length === 1);
    expect(errors[0]).toMatchObject({ reason: 'workload_api_bad_response' });
    expect(source.current()).toBe(first);

    const broken = x509SvidResponse([{ chain: rotated }]);
    server.push({
      svids: [
        { ...broken.svids![0]!, x509_svid: Buffer.concat([concatDer(rotated.chainDer), Buffer.from([0])]) },
      ],
    });
    await waitFor('the trailing-garbage response to be reported', () => errors.length === 2);
    expect(errors[1]).toMatchObject({ reason: 'workload_api_bad_response', details: { field: 'x509_svid' } });
    expect(source.current()).toBe(first);
    expect(updates).toHaveLength(1);

    // The stream is still usable.
    server.push(x509SvidResponse([{ chain: rotated }]));
    await waitFor('the good rotation', () => updates.length === 2);
    expect(hex(source.currentSvid().chainDer[0]!)).toBe(hex(rotated.leaf.der));
  });

  it('the server enforces the security header: a raw call without it is INVALID_ARGUMENT; ours is accepted', async () => {
    const server = await startServer({ initial: x509SvidResponse([{ chain: web }]) });
    const { fetchX509Svid } = loadWorkloadApiDefinition();
    const raw = new grpc.Client(server.endpoint, grpc.credentials.createInsecure());
    cleanups.push(() => raw.close());

    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = raw.makeServerStreamRequest(
        fetchX509Svid.path,
        fetchX509Svid.requestSerialize,
        fetchX509Svid.responseDeserialize,
        {},
        new grpc.Metadata(),
        {},
      );
      call.on('data', () => {});
      call.on('error', () => {});
      call.on('status', resolve);
    });
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toBe(SECURITY_HEADER_MISSING);
    expect(server.rejected).toBe(1);
    expect(server.calls).toBe(0);

    // Wrong value: also rejected.
    const md = new grpc.Metadata();
    md.set('workload.spiffe.io', 'yes');
    const status2 = await new Promise<grpc.StatusObject>((resolve) => {
      const call = raw.makeServerStreamRequest(
        fetchX509Svid.path,
        fetchX509Svid.requestSerialize,
        fetchX509Svid.responseDeserialize,
        {},
        md,
        {},
      );
      call.on('data', () => {});
      call.on('error', () => {});
      call.on('status', resolve);
    });
    expect(status2.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(server.rejected).toBe(2);

    await connect({ endpoint: server.endpoint });
    expect(server.calls).toBe(1);
    expect(server.rejected).toBe(2);
  });

  it('server restart: the client keeps the last update, reconnects and receives the new server SVID', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-wlapi-restart-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const socketPath = path.join(dir, 'agent.sock');
    const first = await startServer({ socketPath, initial: x509SvidResponse([{ chain: web }]) });
    const errors: WorkloadApiError[] = [];
    const updates: X509SvidUpdate[] = [];
    const source = await connect({
      endpoint: `unix://${socketPath}`,
      onError: (e) => errors.push(e),
      onUpdate: (u) => updates.push(u),
    });
    const before = source.current();

    await first.close();
    await waitFor('the stream failure to be reported', () => errors.length >= 1);
    expect(errors[0]!.reason).toBe('workload_api_unavailable');
    expect(source.current()).toBe(before); // served meanwhile

    const second = await startServer({ socketPath, initial: x509SvidResponse([{ chain: db }]) });
    await waitFor('the new server SVID', () => updates.length === 2);
    expect(source.currentSvid().spiffeId).toBe('spiffe://example.org/db');
    expect(hex(source.currentSvid().keyPkcs8Der)).toBe(hex(db.leafKey.pkcs8Der));
    expect(second.calls).toBe(1);
    expect(second.connections).toBe(1);
  });

  it('a stream the server ends cleanly is reopened (onError told)', async () => {
    const server = await startServer({ initial: x509SvidResponse([{ chain: web }]) });
    const errors: WorkloadApiError[] = [];
    const updates: X509SvidUpdate[] = [];
    await connect({
      endpoint: server.endpoint,
      onError: (e) => errors.push(e),
      onUpdate: (u) => updates.push(u),
    });
    await waitFor('the stream to be registered', () => server.openStreams === 1);
    server.endStreams();
    await waitFor('a second call', () => server.calls === 2 && updates.length === 2);
    expect(errors.map((e) => e.reason)).toEqual(['workload_api_unavailable']);
    expect(errors[0]!.details).toMatchObject({ grpcStatus: 'OK' });
  });

  it('works over tcp://127.0.0.1:<port>', async () => {
    const server = await startServer({ transport: 'tcp', initial: x509SvidResponse([{ chain: web }]) });
    expect(server.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const source = await connect({ endpoint: server.endpoint });
    expect(source.currentSvid().spiffeId).toBe('spiffe://example.org/web');
  });

  it('reads SPIFFE_ENDPOINT_SOCKET when no endpoint is given', async () => {
    const server = await startServer({ initial: x509SvidResponse([{ chain: web }]) });
    const saved = process.env['SPIFFE_ENDPOINT_SOCKET'];
    process.env['SPIFFE_ENDPOINT_SOCKET'] = server.endpoint;
    cleanups.push(() => {
      if (saved === undefined) delete process.env['SPIFFE_ENDPOINT_SOCKET'];
      else process.env['SPIFFE_ENDPOINT_SOCKET'] = saved;
    });
    const source = await connect({});
    expect(source.currentSvid().spiffeId).toBe('spiffe://example.org/web');
  });

  it('close() cancels the stream, stops reconnecting and makes current() fail with workload_api_closed', async () => {
    const server = await startServer({ initial: x509SvidResponse([{ chain: web }]) });
    const errors: WorkloadApiError[] = [];
    const source = await connect({ endpoint: server.endpoint, onError: (e) => errors.push(e) });
    await waitFor('the stream to be registered', () => server.openStreams === 1);
    source.close();
    source.close(); // idempotent
    expect(source.closed).toBe(true);
    expect(thrown(() => source.current())).toMatchObject({ reason: 'workload_api_closed' });
    await waitFor('the server to see the cancellation', () => server.openStreams === 0);
    // No reconnect after close: the call count stays put across several backoff periods.
    const calls = server.calls;
    await new Promise((r) => setTimeout(r, FAST_BACKOFF.maxMs * 2));
    expect(server.calls).toBe(calls);
    expect(errors).toEqual([]);
  });
});

describe('connect failures', () => {
  it('a server that never answers: workload_api_unavailable after initialTimeoutMs', async () => {
    const server = await startServer({ initial: null });
    const started = Date.now();
    const err = await rejection(
      WorkloadApiX509Source.connect({
        endpoint: server.endpoint,
        initialTimeoutMs: 300,
        backoff: FAST_BACKOFF,
      }),
    );
    expect(err.reason).toBe('workload_api_unavailable');
    expect(err.details).toMatchObject({ timeoutMs: 300 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(server.calls).toBe(1);
    await waitFor('the abandoned stream to be cancelled', () => server.openStreams === 0);
  });

  it('no socket at the path: workload_api_unavailable after retrying within the timeout', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-wlapi-none-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const errors: WorkloadApiError[] = [];
    const err = await rejection(
      WorkloadApiX509Source.connect({
        endpoint: `unix://${path.join(dir, 'agent.sock')}`,
        initialTimeoutMs: 300,
        backoff: FAST_BACKOFF,
        onError: (e) => errors.push(e),
      }),
    );
    expect(err.reason).toBe('workload_api_unavailable');
    expect(errors.length).toBeGreaterThanOrEqual(2); // it retried
    expect(errors.every((e) => e.reason === 'workload_api_unavailable')).toBe(true);
  });

  it('the agent starting late is found within the timeout', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tp-wlapi-late-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const socketPath = path.join(dir, 'agent.sock');
    const pending = connect({ endpoint: `unix://${socketPath}` });
    await new Promise((r) => setTimeout(r, 100));
    await startServer({ socketPath, initial: x509SvidResponse([{ chain: web }]) });
    const source = await pending;
    expect(source.currentSvid().spiffeId).toBe('spiffe://example.org/web');
  });

  it('PERMISSION_DENIED (no identity issued): workload_api_no_identity', async () => {
    const server = await startServer({
      initial: null,
      failWith: { code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' },
    });
    const err = await rejection(
      WorkloadApiX509Source.connect({
        endpoint: server.endpoint,
        initialTimeoutMs: 300,
        backoff: FAST_BACKOFF,
      }),
    );
    expect(err.reason).toBe('workload_api_no_identity');
    expect(err.details).toMatchObject({ lastError: 'workload_api_no_identity' });
    expect(server.calls).toBeGreaterThanOrEqual(2); // retried: SPIRE says this until the entry syncs
  });

  it('INVALID_ARGUMENT: workload_api_rejected at once, without retrying', async () => {
    const server = await startServer({
      initial: null,
      failWith: { code: grpc.status.INVALID_ARGUMENT, details: 'nope' },
    });
    const started = Date.now();
    const err = await rejection(
      WorkloadApiX509Source.connect({
        endpoint: server.endpoint,
        initialTimeoutMs: 5000,
        backoff: FAST_BACKOFF,
      }),
    );
    expect(err.reason).toBe('workload_api_rejected');
    expect(err.details).toMatchObject({ grpcStatus: 'INVALID_ARGUMENT', serverMessage: 'nope' });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(server.calls).toBe(1);
  });

  it('only bad responses: the timeout reports workload_api_bad_response', async () => {
    const server = await startServer({ initial: { svids: [] } });
    const err = await rejection(
      WorkloadApiX509Source.connect({
        endpoint: server.endpoint,
        initialTimeoutMs: 300,
        backoff: FAST_BACKOFF,
      }),
    );
    expect(err.reason).toBe('workload_api_bad_response');
  });

  it('no endpoint: workload_api_no_endpoint', async () => {
    const saved = process.env['SPIFFE_ENDPOINT_SOCKET'];
    delete process.env['SPIFFE_ENDPOINT_SOCKET'];
    cleanups.push(() => {
      if (saved !== undefined) process.env['SPIFFE_ENDPOINT_SOCKET'] = saved;
    });
    expect(await rejection(WorkloadApiX509Source.connect())).toMatchObject({
      reason: 'workload_api_no_endpoint',
    });
    expect(await rejection(WorkloadApiX509Source.connect({ endpoint: '' }))).toMatchObject({
      reason: 'workload_api_no_endpoint',
    });
  });

  it('bad endpoint strings: workload_api_bad_endpoint from connect()', async () => {
    for (const endpoint of [
      '/run/agent.sock',
      'unix://run/agent.sock',
      'http://127.0.0.1:1',
      'tcp://localhost:8081',
    ]) {
      expect(await rejection(WorkloadApiX509Source.connect({ endpoint })), endpoint).toMatchObject({
        reason: 'workload_api_bad_endpoint',
      });
    }
  });

  it('malformed options are caller errors (TypeError/RangeError), not WorkloadApiError', async () => {
    await expect(
      WorkloadApiX509Source.connect({ endpoint: 'unix:///x', initialTimeoutMs: 0 }),
    ).rejects.toThrow(RangeError);
    await expect(
      WorkloadApiX509Source.connect({ endpoint: 'unix:///x', backoff: { initialMs: 500, maxMs: 100 } }),
    ).rejects.toThrow(RangeError);
    await expect(
      WorkloadApiX509Source.connect({ endpoint: 'unix:///x', onUpdate: 'no' as unknown as () => void }),
    ).rejects.toThrow(TypeError);
  });
});

describe('parseWorkloadEndpoint', () => {
  it.each([
    ['unix:///run/spire/agent.sock', { kind: 'unix', path: '/run/spire/agent.sock' }],
    ['unix:/run/spire/agent.sock', { kind: 'unix', path: '/run/spire/agent.sock' }],
    ['UNIX:///tmp/a.sock', { kind: 'unix', path: '/tmp/a.sock' }],
    ['unix:///tmp/my%20dir/a.sock', { kind: 'unix', path: '/tmp/my dir/a.sock' }],
    ['tcp://127.0.0.1:8081', { kind: 'tcp', host: '127.0.0.1', port: 8081 }],
    ['tcp://[::1]:8081', { kind: 'tcp', host: '::1', port: 8081 }],
  ])('accepts %s', (endpoint, expected) => {
    expect(parseWorkloadEndpoint(endpoint)).toEqual(expected);
  });

  it.each([
    ['', 'empty'],
    ['/run/agent.sock', 'bare path'],
    ['run/agent.sock', 'relative bare path'],
    ['unix:', 'no path'],
    ['unix://', 'no path after authority marker'],
    ['unix:relative/agent.sock', 'relative path'],
    ['unix://run/agent.sock', 'authority (a classic typo for unix:///run/...)'],
    ['unix://localhost/run/agent.sock', 'authority'],
    ['unix:///run/agent.sock?x=1', 'query'],
    ['unix:///run/agent.sock#frag', 'fragment'],
    ['unix:///run/', 'directory'],
    ['unix:///run/%ZZ', 'bad percent-encoding'],
    ['unix:///run/a%00b', 'NUL'],
    [`unix:///${'a'.repeat(200)}`, 'path too long for sun_path'],
    [' unix:///run/agent.sock', 'leading space'],
    ['unix:///run/agent.sock\n', 'trailing newline'],
    ['unix:///run/age\tnt.sock', 'tab'],
    ['tcp://localhost:8081', 'host name'],
    ['tcp://example.org:8081', 'host name'],
    ['tcp://127.1:8081', 'shorthand IPv4'],
    ['tcp://127.0.0.1', 'no port'],
    ['tcp://127.0.0.1:0', 'port 0'],
    ['tcp://127.0.0.1:65536', 'port too large'],
    ['tcp://127.0.0.1:8081/', 'path'],
    ['tcp://127.0.0.1:8081/agent', 'path'],
    ['tcp://user@127.0.0.1:8081', 'user info'],
    ['tcp://127.0.0.1:8081?x', 'query'],
    ['tcp:127.0.0.1:8081', 'opaque tcp'],
    ['http://127.0.0.1:8081', 'other scheme'],
    ['dns:///agent:8081', 'other scheme'],
  ])('rejects %j (%s) with workload_api_bad_endpoint', (endpoint) => {
    expect(thrown(() => parseWorkloadEndpoint(endpoint)).reason).toBe('workload_api_bad_endpoint');
  });
});

describe('splitConcatenatedDer', () => {
  it('splits a chain into its certificates, as copies', () => {
    const joined = concatDer([...web.chainDer, web.root.der]);
    const parts = splitConcatenatedDer(joined);
    expect(parts.map(hex)).toEqual([hex(web.leaf.der), hex(web.intermediate!.der), hex(web.root.der)]);
    expect(parts[0]!.buffer).not.toBe(joined.buffer);
  });

  it('accepts short-form and multi-octet lengths', () => {
    expect(splitConcatenatedDer(Uint8Array.of(0x30, 0x00, 0x30, 0x01, 0x05)).map(hex)).toEqual([
      '3000',
      '300105',
    ]);
    const long = new Uint8Array(2 + 2 + 300);
    long.set([0x30, 0x82, 0x01, 0x2c]);
    expect(splitConcatenatedDer(long)[0]).toHaveLength(304);
  });

  it.each<[string, Uint8Array]>([
    ['empty', new Uint8Array(0)],
    ['trailing garbage byte', Buffer.concat([Buffer.from(web.leaf.der), Buffer.from([0x00])])],
    ['trailing partial SEQUENCE', Buffer.concat([Buffer.from(web.leaf.der), Buffer.from([0x30])])],
    [
      'trailing SEQUENCE longer than the input',
      Buffer.concat([Buffer.from(web.leaf.der), Buffer.from([0x30, 0x05, 0x01])]),
    ],
    ['truncated certificate', Buffer.from(web.leaf.der).subarray(0, web.leaf.der.length - 1)],
    ['not a SEQUENCE', Uint8Array.of(0x04, 0x00)],
    ['indefinite length', Uint8Array.of(0x30, 0x80, 0x00, 0x00)],
    ['non-minimal long form (fits short form)', Uint8Array.of(0x30, 0x81, 0x05, 1, 2, 3, 4, 5)],
    [
      'non-minimal long form (leading zero octet)',
      Uint8Array.of(0x30, 0x82, 0x00, 0x80, ...new Uint8Array(0x80)),
    ],
    ['length of more than 4 octets', Uint8Array.of(0x30, 0x85, 1, 0, 0, 0, 0)],
    ['length octets missing', Uint8Array.of(0x30, 0x82, 0x01)],
  ])('rejects %s with workload_api_bad_response', (_name, bytes) => {
    expect(thrown(() => splitConcatenatedDer(bytes)).reason).toBe('workload_api_bad_response');
  });

  it('bounds the number of items', () => {
    const many = concatDer(Array.from({ length: WORKLOAD_API_MAX_CHAIN_CERTS + 1 }, () => web.leaf.der));
    const err = thrown(() =>
      splitConcatenatedDer(many, { maxItems: WORKLOAD_API_MAX_CHAIN_CERTS, field: 'x509_svid' }),
    );
    expect(err).toMatchObject({ reason: 'workload_api_bad_response', details: { field: 'x509_svid' } });
  });
});

describe('parseX509SvidResponse', () => {
  const good = (): ReturnType<typeof x509SvidResponse> => x509SvidResponse([{ chain: web }]);
  const withSvid = (patch: Record<string, unknown>): unknown => ({
    ...good(),
    svids: [{ ...good().svids![0]!, ...patch }],
  });

  it.each<[string, unknown]>([
    ['not an object', 'x'],
    ['no svids', { svids: [], crl: [], federated_bundles: {} }],
    ['svids not a list', { svids: {} }],
    ['empty SPIFFE ID', withSvid({ spiffe_id: '' })],
    ['SPIFFE ID with another scheme', withSvid({ spiffe_id: 'https://example.org/web' })],
    ['SPIFFE ID with uppercase trust domain', withSvid({ spiffe_id: 'spiffe://Example.org/web' })],
    ['SPIFFE ID with a dot segment', withSvid({ spiffe_id: 'spiffe://example.org/../web' })],
    ['SPIFFE ID with a trailing slash', withSvid({ spiffe_id: 'spiffe://example.org/web/' })],
    ['empty chain', withSvid({ x509_svid: Buffer.alloc(0) })],
    ['empty key', withSvid({ x509_svid_key: Buffer.alloc(0) })],
    [
      'two DER values as the key',
      withSvid({ x509_svid_key: concatDer([web.leafKey.pkcs8Der, web.leafKey.pkcs8Der]) }),
    ],
    ['empty bundle', withSvid({ bundle: Buffer.alloc(0) })],
    ['chain as a string', withSvid({ x509_svid: 'MII...' })],
    ['over-long hint', withSvid({ hint: 'h'.repeat(2000) })],
    [
      'chain longer than the bound',
      withSvid({ x509_svid: concatDer(Array.from({ length: 17 }, () => web.leaf.der)) }),
    ],
    [
      'federated key not a trust domain',
      { ...good(), federated_bundles: { 'spiffe://Partner.test': concatDer([partner.root.der]) } },
    ],
    [
      'federated key with a path',
      { ...good(), federated_bundles: { 'spiffe://partner.test/x': concatDer([partner.root.der]) } },
    ],
    [
      'federated trust domain twice',
      {
        ...good(),
        federated_bundles: {
          'spiffe://partner.test': concatDer([partner.root.der]),
          'partner.test': concatDer([partner.root.der]),
        },
      },
    ],
    [
      'federated bundle with trailing garbage',
      {
        ...good(),
        federated_bundles: {
          'partner.test': Buffer.concat([concatDer([partner.root.der]), Buffer.from([1])]),
        },
      },
    ],
  ])('rejects %s with workload_api_bad_response', (_name, message) => {
    expect(thrown(() => parseX509SvidResponse(message, 0)).reason).toBe('workload_api_bad_response');
  });

  it('error messages and details never carry the key or certificate bytes', () => {
    const keyHex = hex(web.leafKey.pkcs8Der);
    const err = thrown(() =>
      parseX509SvidResponse(
        withSvid({ x509_svid_key: Buffer.concat([Buffer.from(web.leafKey.pkcs8Der), Buffer.from([7])]) }),
        0,
      ),
    );
    const text = `${err.message} ${JSON.stringify(err.details)} ${inspect(err)}`;
    expect(text).not.toContain(keyHex);
    expect(text).not.toContain(keyHex.slice(0, 32));
    expect(err.details).toMatchObject({ field: 'x509_svid_key' });
  });
});

// A grpc-js detail the reconnect relies on: the agent's socket going away must surface as a stream
// failure rather than a hang. A plain socket that accepts and closes at once stands in for a
// crashing agent.
describe('a socket that is not a gRPC server', () => {
  let dir: string;
  let net: NetServer;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tp-wlapi-raw-'));
    net = createServer((s) => s.destroy());
    await new Promise<void>((r) => net.listen(path.join(dir, 'agent.sock'), r));
  });
  afterAll(async () => {
    await new Promise<void>((r) => net.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('connect fails with workload_api_unavailable within the timeout', async () => {
    const err = await rejection(
      WorkloadApiX509Source.connect({
        endpoint: `unix://${path.join(dir, 'agent.sock')}`,
        initialTimeoutMs: 300,
        backoff: FAST_BACKOFF,
      }),
    );
    expect(err.reason).toBe('workload_api_unavailable');
  });
});
