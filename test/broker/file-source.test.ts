import { createPublicKey } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  SvidError,
  SvidFileSource,
  bundlesFromPem,
  type SvidFileSourceOptions,
  type SvidSnapshot,
} from '../../pkg/broker/spiffe/index.js';
import { generateKey, mintCa, mintLeaf, mintSpiffeChain, type SpiffeChain } from '../helpers/x509.js';

const TD = 'example.org';
const NOT_BEFORE = Date.UTC(2024, 0, 1) / 1000;
const NOT_AFTER = Date.UTC(2034, 0, 1) / 1000;
const NOW = Date.UTC(2025, 5, 1) / 1000;
const validity = { notBefore: NOT_BEFORE, notAfter: NOT_AFTER } as const;

// One trust domain; every SVID below is issued by this root's intermediate.
const first = mintSpiffeChain({
  trustDomain: TD,
  spiffeId: 'spiffe://example.org/ns/a/sa/first',
  ...validity,
});
const intermediate = first.intermediate!;

function nextSvid(
  spiffeId: string,
  options: { notAfter?: number } = {},
): { chainPem: string; keyPem: string } {
  const leaf = mintLeaf({ issuer: intermediate, uris: [spiffeId], ...validity, ...options });
  return { chainPem: leaf.pem + intermediate.pem, keyPem: leaf.key.pkcs8Pem };
}

/** Poll `check` until it holds or the deadline passes (no fixed sleeps). */
async function waitFor(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function refused(fn: () => unknown): SvidError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SvidError);
    return err as SvidError;
  }
  throw new Error('expected an SvidError');
}

async function rejected(promise: Promise<unknown>): Promise<SvidError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(SvidError);
    return err as SvidError;
  }
  throw new Error('expected an SvidError');
}

let dir: string;
let now: number;
let sources: SvidFileSource[];
let updates: SvidSnapshot[];
let errors: Error[];

const files = () => ({
  certFile: path.join(dir, 'svid.pem'),
  keyFile: path.join(dir, 'svid_key.pem'),
  bundleFile: path.join(dir, 'svid_bundle.pem'),
});

/** spiffe-helper style: write a temporary file next to the target, then rename it into place. */
function writeAtomic(name: string, content: string): void {
  const tmp = path.join(dir, `.${name}.${Math.random().toString(36).slice(2)}.tmp`);
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path.join(dir, name));
}

function writeSvid(chain: Pick<SpiffeChain, 'chainPem' | 'bundlePem'> & { keyPem: string }): void {
  writeAtomic('svid.pem', chain.chainPem);
  writeAtomic('svid_key.pem', chain.keyPem);
  writeAtomic('svid_bundle.pem', chain.bundlePem);
}

async function openSource(overrides: Partial<SvidFileSourceOptions> = {}): Promise<SvidFileSource> {
  const source = await SvidFileSource.open({
    ...files(),
    clock: () => now,
    pollIntervalMs: 200,
    debounceMs: 20,
    onUpdate: (s) => updates.push(s),
    onError: (e) => errors.push(e),
    ...overrides,
  });
  sources.push(source);
  return source;
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tp-svid-files-'));
  now = NOW;
  sources = [];
  updates = [];
  errors = [];
  writeSvid({ chainPem: first.chainPem, keyPem: first.leafKey.pkcs8Pem, bundlePem: first.bundlePem });
});

afterEach(async () => {
  await Promise.all(sources.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe('SvidFileSource.open', () => {
  it('loads and verifies the three files', async () => {
    const source = await openSource();
    const { svid, privateKey, bundles } = source.current();
    expect(svid.spiffeId).toBe('spiffe://example.org/ns/a/sa/first');
    expect(svid.trustDomain).toBe(TD);
    expect(svid.chain).toHaveLength(3);
    expect(createPublicKey(privateKey).export({ format: 'jwk' })).toEqual(
      svid.leaf.publicKey.export({ format: 'jwk' }),
    );
    expect(bundles.get(TD)?.[0]?.fingerprint256).toBe(first.root.x509.fingerprint256);
    expect(updates).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('accepts a SEC1 "EC PRIVATE KEY" key file', async () => {
    writeAtomic('svid_key.pem', first.leafKey.sec1Pem);
    const source = await openSource();
    expect(source.current().svid.path).toBe('/ns/a/sa/first');
  });

  it('pinnedBundles replace the bundle file for their trust domain (a root only in the file does not count)', async () => {
    const other = mintSpiffeChain({ trustDomain: TD, spiffeId: 'spiffe://example.org/x', ...validity });
    const ignored: string[] = [];
    // The pinned root signs the SVID, the bundle file holds another one: the SVID verifies, the
    // file's root is dropped and reported once, by trust domain.
    writeSvid({ chainPem: other.chainPem, keyPem: other.leafKey.pkcs8Pem, bundlePem: first.bundlePem });
    const source = await openSource({
      pinnedBundles: bundlesFromPem(TD, other.bundlePem),
      onIgnoredBundleFile: (td) => ignored.push(td),
    });
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/x');
    expect(
      source
        .current()
        .bundles.get(TD)
        ?.map((c) => c.fingerprint256),
    ).toEqual([other.root.x509.fingerprint256]);
    expect(ignored).toEqual([TD]);
    // The other way round: the root that signs the SVID is only in the file -> refused.
    const err = await rejected(openSource({ pinnedBundles: bundlesFromPem(TD, first.bundlePem) }));
    expect(err.reason).toBe('svid_untrusted_chain');
  });

  it('pinnedBundles for other trust domains leave the bundle file in force (and report nothing)', async () => {
    const elsewhere = mintSpiffeChain({ trustDomain: 'other.org', ...validity });
    const ignored: string[] = [];
    const source = await openSource({
      pinnedBundles: bundlesFromPem('other.org', elsewhere.bundlePem),
      onIgnoredBundleFile: (td) => ignored.push(td),
    });
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/ns/a/sa/first');
    expect([...source.current().bundles.keys()].sort()).toEqual(['example.org', 'other.org']);
    expect(ignored).toEqual([]);
  });

  it('a bundle file equal to the pins is not reported; a pinnedBundles function is read at every load', async () => {
    const rotatedRoot = mintSpiffeChain({ trustDomain: TD, spiffeId: 'spiffe://example.org/y', ...validity });
    let pins = bundlesFromPem(TD, first.bundlePem);
    const ignored: string[] = [];
    const source = await openSource({
      pinnedBundles: () => pins,
      onIgnoredBundleFile: (td) => ignored.push(td),
    });
    expect(ignored).toEqual([]);
    // A CA rotation: the new root is published in the pins (trust material reload), then the SVID rotates.
    pins = bundlesFromPem(TD, first.bundlePem + rotatedRoot.bundlePem);
    writeSvid({
      chainPem: rotatedRoot.chainPem,
      keyPem: rotatedRoot.leafKey.pkcs8Pem,
      bundlePem: first.bundlePem + rotatedRoot.bundlePem,
    });
    await waitFor(() => source.current().svid.spiffeId === 'spiffe://example.org/y', 'the rotation');
    expect(ignored).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('missing file -> svid_source_unreadable (no path or content in the message)', async () => {
    rmSync(files().keyFile);
    const err = await rejected(openSource());
    expect(err.reason).toBe('svid_source_unreadable');
    expect(err.message).toBe('cannot open the key file (ENOENT)');
  });

  it('key that does not match the leaf -> svid_key_mismatch', async () => {
    writeAtomic('svid_key.pem', generateKey().pkcs8Pem);
    const err = await rejected(openSource());
    expect(err.reason).toBe('svid_key_mismatch');
    expect(err.message).not.toContain('PRIVATE KEY');
  });

  it.each([
    ['a certificate', () => first.leaf.pem],
    ['garbage', () => 'not a key'],
    ['a truncated key', () => first.leafKey.pkcs8Pem.slice(0, 80) + '\n-----END PRIVATE KEY-----\n'],
  ])('key file with %s -> svid_malformed', async (_label, content) => {
    writeAtomic('svid_key.pem', content());
    const err = await rejected(openSource());
    expect(err.reason).toBe('svid_malformed');
    expect(err.message).not.toMatch(/[A-Za-z0-9+/]{40}/);
  });

  it('certificate file with garbage -> svid_malformed', async () => {
    writeAtomic('svid.pem', 'garbage');
    expect((await rejected(openSource())).reason).toBe('svid_malformed');
  });

  it('bundle file for another root -> svid_untrusted_chain', async () => {
    writeAtomic('svid_bundle.pem', mintCa({ uris: ['spiffe://example.org'], ...validity }).pem);
    expect((await rejected(openSource())).reason).toBe('svid_untrusted_chain');
  });

  it('SVID already expired at open -> svid_expired', async () => {
    now = NOT_AFTER + 1;
    expect((await rejected(openSource())).reason).toBe('svid_expired');
  });

  it('bad options throw eagerly', async () => {
    await expect(
      SvidFileSource.open({ ...files(), clock: undefined as unknown as () => number }),
    ).rejects.toThrow(TypeError);
    await expect(SvidFileSource.open({ ...files(), certFile: '', clock: () => now })).rejects.toThrow(
      TypeError,
    );
    await expect(SvidFileSource.open({ ...files(), clock: () => now, pollIntervalMs: 1 })).rejects.toThrow(
      RangeError,
    );
    await expect(
      SvidFileSource.open({
        ...files(),
        clock: () => now,
        pinnedBundles: [] as unknown as ReadonlyMap<string, never>,
      }),
    ).rejects.toThrow(TypeError);
  });
});

describe('SvidFileSource rotation', () => {
  it('a spiffe-helper style rotation (write temp, rename) switches current() without restart', async () => {
    const source = await openSource();
    const next = nextSvid('spiffe://example.org/ns/a/sa/second');
    writeAtomic('svid.pem', next.chainPem);
    writeAtomic('svid_key.pem', next.keyPem);
    await waitFor(() => source.current().svid.spiffeId === 'spiffe://example.org/ns/a/sa/second', 'rotation');
    expect(updates.at(-1)?.svid.spiffeId).toBe('spiffe://example.org/ns/a/sa/second');
    expect(createPublicKey(source.current().privateKey).export({ format: 'jwk' })).toEqual(
      source.current().svid.leaf.publicKey.export({ format: 'jwk' }),
    );
  });

  it('fs.watch alone picks up a rotation (polling effectively off)', async () => {
    const source = await openSource({ pollIntervalMs: 600_000 });
    const next = nextSvid('spiffe://example.org/watched');
    writeAtomic('svid_key.pem', next.keyPem);
    writeAtomic('svid.pem', next.chainPem);
    await waitFor(() => source.current().svid.spiffeId === 'spiffe://example.org/watched', 'watch rotation');
  });

  it('polling alone picks up a rotation (watch disabled)', async () => {
    const source = await openSource({ watch: false, pollIntervalMs: 30 });
    const next = nextSvid('spiffe://example.org/polled');
    writeAtomic('svid_key.pem', next.keyPem);
    writeAtomic('svid.pem', next.chainPem);
    await waitFor(() => source.current().svid.spiffeId === 'spiffe://example.org/polled', 'poll rotation');
  });

  it('a broken rotation (key not matching the new certificate) keeps the last good SVID and reports svid_key_mismatch', async () => {
    const source = await openSource();
    const next = nextSvid('spiffe://example.org/broken');
    writeAtomic('svid.pem', next.chainPem); // the key file is NOT rotated
    await waitFor(() => errors.length > 0, 'an error report');
    expect(errors[0]).toBeInstanceOf(SvidError);
    expect((errors[0] as SvidError).reason).toBe('svid_key_mismatch');
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/ns/a/sa/first');
    expect(updates).toEqual([]);

    // The same broken contents are reported once, not on every poll.
    await waitFor(() => errors.length === 1, 'no repeated report', 100);

    // Completing the rotation heals it.
    writeAtomic('svid_key.pem', next.keyPem);
    await waitFor(() => source.current().svid.spiffeId === 'spiffe://example.org/broken', 'recovery');
  });

  it('a garbage certificate file keeps the last good SVID and reports svid_malformed', async () => {
    const source = await openSource();
    writeAtomic('svid.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await waitFor(() => errors.length > 0, 'an error report');
    expect((errors[0] as SvidError).reason).toBe('svid_malformed');
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/ns/a/sa/first');
  });

  it('a rotation to an SVID from an untrusted CA is refused (svid_untrusted_chain)', async () => {
    const source = await openSource();
    const rogue = mintSpiffeChain({ trustDomain: TD, spiffeId: 'spiffe://example.org/admin', ...validity });
    writeAtomic('svid.pem', rogue.chainPem);
    writeAtomic('svid_key.pem', rogue.leafKey.pkcs8Pem);
    await waitFor(
      () => errors.some((e) => (e as SvidError).reason === 'svid_untrusted_chain'),
      'an error report',
    );
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/ns/a/sa/first');
  });

  it('reload() forces a reload; on failure it rejects, keeps the last good SVID and does not call onError', async () => {
    const source = await openSource({ watch: false, pollIntervalMs: 600_000 });
    writeAtomic('svid_key.pem', generateKey().pkcs8Pem);
    const err = await rejected(source.reload());
    expect(err.reason).toBe('svid_key_mismatch');
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/ns/a/sa/first');
    expect(errors).toEqual([]);

    const next = nextSvid('spiffe://example.org/forced');
    writeAtomic('svid.pem', next.chainPem);
    writeAtomic('svid_key.pem', next.keyPem);
    expect((await source.reload()).svid.spiffeId).toBe('spiffe://example.org/forced');
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/forced');
  });

  it('reload() after close() is refused', async () => {
    const source = await openSource();
    await source.close();
    await expect(source.reload()).rejects.toThrow('closed');
  });
});

describe('SvidFileSource expiry', () => {
  it('current() throws svid_expired once the last good SVID has expired', async () => {
    const short = nextSvid('spiffe://example.org/short', { notAfter: NOW + 60 });
    writeAtomic('svid.pem', short.chainPem);
    writeAtomic('svid_key.pem', short.keyPem);
    const source = await openSource({ watch: false, pollIntervalMs: 600_000 });
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/short');
    now = NOW + 60;
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/short');
    now = NOW + 61;
    const err = refused(() => source.current());
    expect(err.reason).toBe('svid_expired');
    expect(err.message).toBe('the last good X.509-SVID has expired');
  });

  it('an expired SVID is never handed out; a renewed chain valid at the new time heals', async () => {
    const source = await openSource({ pollIntervalMs: 600_000 });
    now = NOT_AFTER + 10;
    expect(refused(() => source.current()).reason).toBe('svid_expired');
    const renewed = mintSpiffeChain({
      trustDomain: TD,
      spiffeId: 'spiffe://example.org/renewed',
      notBefore: NOT_BEFORE,
      notAfter: NOT_AFTER + 86_400,
    });
    writeSvid({ chainPem: renewed.chainPem, keyPem: renewed.leafKey.pkcs8Pem, bundlePem: renewed.bundlePem });
    await waitFor(() => {
      try {
        return source.current().svid.spiffeId === 'spiffe://example.org/renewed';
      } catch {
        return false;
      }
    }, 'renewal');
  });

  it('a rotation to an SVID that is already expired is refused (svid_expired) and reported', async () => {
    const source = await openSource();
    const stale = nextSvid('spiffe://example.org/stale', { notAfter: NOW - 1 });
    writeAtomic('svid_key.pem', stale.keyPem);
    writeAtomic('svid.pem', stale.chainPem);
    await waitFor(() => errors.some((e) => (e as SvidError).reason === 'svid_expired'), 'expired report');
    expect(source.current().svid.spiffeId).toBe('spiffe://example.org/ns/a/sa/first');
  });

  it('current() throws svid_not_yet_valid if the clock goes back before notBefore', async () => {
    const source = await openSource({ watch: false, pollIntervalMs: 600_000 });
    now = NOT_BEFORE - 10;
    expect(refused(() => source.current()).reason).toBe('svid_not_yet_valid');
    now = NOW;
    expect(source.current().svid.trustDomain).toBe(TD);
  });

  it('the expiry is the earliest notAfter of the chain, not only the leaf', async () => {
    const shortInt = mintCa({ issuer: first.root, ...validity, notAfter: NOW + 30 });
    const leaf = mintLeaf({ issuer: shortInt, uris: ['spiffe://example.org/x'], ...validity });
    writeSvid({ chainPem: leaf.pem + shortInt.pem, keyPem: leaf.key.pkcs8Pem, bundlePem: first.bundlePem });
    const source = await openSource({ watch: false, pollIntervalMs: 600_000 });
    expect(source.current().svid.expiresAt).toBe(NOW + 30);
    now = NOW + 31;
    expect(refused(() => source.current()).reason).toBe('svid_expired');
  });
});
