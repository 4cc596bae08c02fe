import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_serverAuth,
  type Extension,
} from '@peculiar/asn1-x509';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_DEV_CA_TTL_SECONDS,
  createDevSpiffeCa,
  loadDevSpiffeCa,
  type DevCa,
} from '../../pkg/broker/dev-spiffe-ca.js';
import { DEFAULT_DEV_SVID_TTL_SECONDS, mintDevSvid } from '../../pkg/broker/dev-svid.js';
import { writeSpiffeHelperFiles } from '../../pkg/broker/spiffe-helper-files.js';
import {
  SpiffeIdError,
  SvidError,
  SvidFileSource,
  assertKeyMatchesLeaf,
  bundlesFromPem,
  parsePemCertificates,
  verifyX509Svid,
} from '../../pkg/broker/spiffe/index.js';
import { OPENSSL, mintCa } from '../helpers/x509.js';

const TD = 'demo.local';
const ID = 'spiffe://demo.local/ns/demo/sa/broker';
const NOW = Date.UTC(2025, 5, 1) / 1000;

const ca = createDevSpiffeCa({ trustDomain: TD, nowSeconds: NOW });
const svid = mintDevSvid(ca, { spiffeId: ID, nowSeconds: NOW });
const leafDer = parsePemCertificates(svid.chainPem, 'chain', 8)[0] as Uint8Array;

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tp-dev-svid-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function realNow(): number {
  return Math.floor(Date.now() / 1000);
}

function extensionsOf(der: Uint8Array): Map<string, Extension> {
  const cert = AsnConvert.parse(der, Certificate);
  return new Map((cert.tbsCertificate.extensions ?? []).map((e) => [e.extnID, e]));
}

function ext(exts: Map<string, Extension>, oid: string): Extension {
  const e = exts.get(oid);
  if (e === undefined) throw new Error(`extension ${oid} missing`);
  return e;
}

/** Hex of a Uint8Array or an asn1-schema OctetString (which holds its bytes in `buffer`). */
function bytesOf(value: Uint8Array | { readonly buffer: ArrayBuffer }): string {
  const bytes = value instanceof Uint8Array ? value : new Uint8Array(value.buffer);
  expect(bytes.byteLength).toBeGreaterThan(0);
  return Buffer.from(bytes).toString('hex');
}

function openssl(args: readonly string[], cwd: string): string {
  return execFileSync(OPENSSL, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('createDevSpiffeCa', () => {
  it('mints a self-signed v3 SPIFFE root with the documented profile', () => {
    const x509 = new X509Certificate(ca.certDer);
    expect(x509.ca).toBe(true);
    expect(x509.subject).toBe('O=TrustPlane dev\nCN=demo.local dev root');
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.subjectAltName).toBe('URI:spiffe://demo.local');
    expect(x509.checkIssued(x509)).toBe(true);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(ca.trustDomain).toBe(TD);
    expect(ca.notAfter).toBe(NOW + DEFAULT_DEV_CA_TTL_SECONDS);
    expect(Date.parse(x509.validTo) / 1000).toBe(ca.notAfter);
    expect(Date.parse(x509.validFrom) / 1000).toBe(NOW - 60);
    expect(ca.certPem).toBe(x509.toString());
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(Object.isFrozen(ca)).toBe(true);

    const asn = AsnConvert.parse(ca.certDer, Certificate);
    expect(asn.tbsCertificate.version).toBe(Version.v3);
    // ecdsa-with-SHA256 without parameters, inside and outside the TBS.
    expect(asn.signatureAlgorithm.algorithm).toBe('1.2.840.10045.4.3.2');
    expect(asn.signatureAlgorithm.parameters).toBeUndefined();
    expect(asn.tbsCertificate.signature.parameters).toBeUndefined();
    const serial = new Uint8Array(asn.tbsCertificate.serialNumber);
    expect(serial.byteLength).toBe(16);
    expect((serial[0] ?? 0) & 0x80).toBe(0);
    expect(serial[0]).not.toBe(0);

    const exts = extensionsOf(ca.certDer);
    expect([...exts.keys()].sort()).toEqual(
      [id_ce_basicConstraints, id_ce_keyUsage, id_ce_subjectAltName, id_ce_subjectKeyIdentifier].sort(),
    );
    const bc = ext(exts, id_ce_basicConstraints);
    expect(bc.critical).toBe(true);
    expect(AsnConvert.parse(bc.extnValue, BasicConstraints).cA).toBe(true);
    const ku = ext(exts, id_ce_keyUsage);
    expect(ku.critical).toBe(true);
    expect(AsnConvert.parse(ku.extnValue, KeyUsage).toNumber()).toBe(
      KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign,
    );
    expect(
      AsnConvert.parse(ext(exts, id_ce_subjectKeyIdentifier).extnValue, SubjectKeyIdentifier).byteLength,
    ).toBe(20);
  });

  it('draws a fresh key and serial every time', () => {
    const other = createDevSpiffeCa({ trustDomain: TD, nowSeconds: NOW });
    const a = new X509Certificate(ca.certDer);
    const b = new X509Certificate(other.certDer);
    expect(b.serialNumber).not.toBe(a.serialNumber);
    expect(other.keyPem).not.toBe(ca.keyPem);
  });

  it('honours ttlSeconds and drops fractions of the clock', () => {
    const short = createDevSpiffeCa({ trustDomain: TD, nowSeconds: NOW + 0.9, ttlSeconds: 3600 });
    expect(short.notAfter).toBe(NOW + 3600);
  });

  it('falls back to a generic CN when the trust domain would exceed 64 characters', () => {
    const long = `${'a'.repeat(70)}.example`;
    const longCa = createDevSpiffeCa({ trustDomain: long, nowSeconds: NOW });
    const x509 = new X509Certificate(longCa.certDer);
    expect(x509.subject).toBe('O=TrustPlane dev\nCN=TrustPlane dev root');
    expect(x509.subjectAltName).toBe(`URI:spiffe://${long}`);
  });

  it('refuses bad options eagerly', () => {
    expect(() => createDevSpiffeCa({ trustDomain: 'Demo.Local', nowSeconds: NOW })).toThrow(TypeError);
    expect(() => createDevSpiffeCa({ trustDomain: 'spiffe://demo.local', nowSeconds: NOW })).toThrow(
      TypeError,
    );
    expect(() => createDevSpiffeCa({ trustDomain: '', nowSeconds: NOW })).toThrow(TypeError);
    expect(() => createDevSpiffeCa({ trustDomain: TD, nowSeconds: Number.NaN })).toThrow(TypeError);
    expect(() => createDevSpiffeCa({ trustDomain: TD, nowSeconds: NOW, ttlSeconds: 0 })).toThrow(RangeError);
    expect(() => createDevSpiffeCa({ trustDomain: TD, nowSeconds: NOW, ttlSeconds: 1.5 })).toThrow(
      RangeError,
    );
    expect(() =>
      createDevSpiffeCa({ trustDomain: TD, nowSeconds: NOW, ttlSeconds: 20 * 365 * 86400 }),
    ).toThrow(RangeError);
  });
});

describe('mintDevSvid', () => {
  it('mints a chain that verifyX509Svid accepts, yielding the SPIFFE ID', () => {
    const bundles = bundlesFromPem(TD, svid.bundlePem);
    const chain = parsePemCertificates(svid.chainPem, 'chain', 8);
    expect(chain).toHaveLength(1);
    const verified = verifyX509Svid(chain, bundles, NOW);
    expect(verified.spiffeId).toBe(ID);
    expect(verified.trustDomain).toBe(TD);
    expect(verified.path).toBe('/ns/demo/sa/broker');
    expect(verified.notBefore).toBe(NOW - 60);
    expect(verified.notAfter).toBe(NOW + DEFAULT_DEV_SVID_TTL_SECONDS);
    expect(verified.expiresAt).toBe(svid.notAfter);
    expect(verified.chain).toHaveLength(2);
    expect(svid.spiffeId).toBe(ID);
    expect(svid.bundlePem).toBe(ca.certPem);
    expect(Object.isFrozen(svid)).toBe(true);
  });

  it('carries the X509-SVID leaf profile', () => {
    const asn = AsnConvert.parse(leafDer, Certificate);
    expect(asn.tbsCertificate.version).toBe(Version.v3);
    expect(asn.signatureAlgorithm.parameters).toBeUndefined();
    const exts = extensionsOf(leafDer);
    const bc = ext(exts, id_ce_basicConstraints);
    expect(bc.critical).toBe(true);
    expect(AsnConvert.parse(bc.extnValue, BasicConstraints).cA).toBe(false);
    const ku = ext(exts, id_ce_keyUsage);
    expect(ku.critical).toBe(true);
    expect(AsnConvert.parse(ku.extnValue, KeyUsage).toNumber()).toBe(KeyUsageFlags.digitalSignature);
    expect([...AsnConvert.parse(ext(exts, id_ce_extKeyUsage).extnValue, ExtendedKeyUsage)]).toEqual([
      id_kp_serverAuth,
      id_kp_clientAuth,
    ]);
    const san = [...AsnConvert.parse(ext(exts, id_ce_subjectAltName).extnValue, SubjectAlternativeName)];
    expect(san).toHaveLength(1);
    expect(san[0]?.uniformResourceIdentifier).toBe(ID);
    const aki = AsnConvert.parse(ext(exts, id_ce_authorityKeyIdentifier).extnValue, AuthorityKeyIdentifier);
    const caSki = AsnConvert.parse(
      ext(extensionsOf(ca.certDer), id_ce_subjectKeyIdentifier).extnValue,
      SubjectKeyIdentifier,
    );
    expect(aki.keyIdentifier).toBeDefined();
    expect(bytesOf(aki.keyIdentifier as SubjectKeyIdentifier)).toBe(bytesOf(caSki));
    const ski = AsnConvert.parse(ext(exts, id_ce_subjectKeyIdentifier).extnValue, SubjectKeyIdentifier);
    expect(ski.byteLength).toBe(20);
    expect(bytesOf(ski)).not.toBe(bytesOf(caSki));
  });

  it('is accepted by node:crypto: verify, checkIssued, and the PKCS#8 key matches the leaf', () => {
    const leaf = new X509Certificate(leafDer);
    const root = new X509Certificate(ca.certDer);
    expect(leaf.ca).toBe(false);
    expect(leaf.subjectAltName).toBe(`URI:${ID}`);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(svid.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(() => assertKeyMatchesLeaf(leaf, createPrivateKey(svid.keyPem))).not.toThrow();
  });

  it('is parsed by `openssl x509 -text` and verified by `openssl verify` (real clock)', () => {
    const dir = tempDir();
    const now = realNow();
    const liveCa = createDevSpiffeCa({ trustDomain: TD, nowSeconds: now });
    const live = mintDevSvid(liveCa, { spiffeId: ID, nowSeconds: now });
    writeFileSync(path.join(dir, 'root.pem'), liveCa.certPem);
    writeFileSync(path.join(dir, 'leaf.pem'), live.chainPem);

    const rootText = openssl(['x509', '-noout', '-text', '-in', 'root.pem'], dir);
    expect(rootText).toContain('Version: 3 (0x2)');
    expect(rootText).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(rootText).toMatch(/Basic Constraints: critical\s+CA:TRUE/);
    expect(rootText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(rootText).toContain('URI:spiffe://demo.local');

    const leafText = openssl(['x509', '-noout', '-text', '-in', 'leaf.pem'], dir);
    expect(leafText).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(leafText).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(leafText).toContain('TLS Web Server Authentication, TLS Web Client Authentication');
    expect(leafText).toContain(`URI:${ID}`);
    expect(leafText).toContain('Authority Key Identifier');

    expect(openssl(['verify', '-CAfile', 'root.pem', 'leaf.pem'], dir).trim()).toBe('leaf.pem: OK');
    // RFC 5280 strictness, and both TLS roles the broker's SVID is used for.
    expect(openssl(['verify', '-x509_strict', '-CAfile', 'root.pem', 'leaf.pem'], dir).trim()).toBe(
      'leaf.pem: OK',
    );
    for (const purpose of ['sslserver', 'sslclient']) {
      expect(openssl(['verify', '-purpose', purpose, '-CAfile', 'root.pem', 'leaf.pem'], dir).trim()).toBe(
        'leaf.pem: OK',
      );
    }
  });

  it('never outlives its CA', () => {
    const shortCa = createDevSpiffeCa({ trustDomain: TD, nowSeconds: NOW, ttlSeconds: 600 });
    const s = mintDevSvid(shortCa, { spiffeId: ID, nowSeconds: NOW });
    expect(s.notAfter).toBe(shortCa.notAfter);
    const chain = parsePemCertificates(s.chainPem, 'chain', 8);
    expect(verifyX509Svid(chain, bundlesFromPem(TD, s.bundlePem), NOW).notAfter).toBe(NOW + 600);
  });

  it('honours ttlSeconds', () => {
    const s = mintDevSvid(ca, { spiffeId: ID, nowSeconds: NOW, ttlSeconds: 300 });
    expect(s.notAfter).toBe(NOW + 300);
  });

  it('refuses a SPIFFE ID without a path', () => {
    expect(() => mintDevSvid(ca, { spiffeId: 'spiffe://demo.local', nowSeconds: NOW })).toThrow(RangeError);
  });

  it("refuses a SPIFFE ID of another trust domain than the CA's", () => {
    expect(() => mintDevSvid(ca, { spiffeId: 'spiffe://other.local/broker', nowSeconds: NOW })).toThrow(
      RangeError,
    );
  });

  it.each([
    ['spiffe://demo.local/ns/../broker', 'spiffe_id_dot_segment'],
    ['spiffe://demo.local/./broker', 'spiffe_id_dot_segment'],
    ['spiffe://demo.local/broker/', 'spiffe_id_trailing_slash'],
    ['spiffe://demo.local//broker', 'spiffe_id_empty_segment'],
    ['https://demo.local/broker', 'spiffe_id_bad_scheme'],
    ['spiffe://Demo.local/broker', 'spiffe_id_bad_trust_domain_char'],
    ['spiffe://demo.local/bro%2Fker', 'spiffe_id_bad_path_segment_char'],
    ['', 'spiffe_id_empty'],
  ])('refuses the malformed SPIFFE ID %j (%s)', (spiffeId, code) => {
    const err = thrown(() => mintDevSvid(ca, { spiffeId, nowSeconds: NOW }));
    expect(err).toBeInstanceOf(SpiffeIdError);
    expect((err as SpiffeIdError).reason).toBe(code);
  });

  it('mints an SVID that verifyX509Svid refuses as expired at the current time', () => {
    const longAgo = realNow() - 60 * 86_400;
    const oldCa = createDevSpiffeCa({ trustDomain: TD, nowSeconds: longAgo });
    const old = mintDevSvid(oldCa, { spiffeId: ID, nowSeconds: longAgo });
    const chain = parsePemCertificates(old.chainPem, 'chain', 8);
    const bundles = bundlesFromPem(TD, old.bundlePem);
    expect(verifyX509Svid(chain, bundles, longAgo).spiffeId).toBe(ID);
    const err = thrown(() => verifyX509Svid(chain, bundles, realNow()));
    expect(err).toBeInstanceOf(SvidError);
    expect((err as SvidError).reason).toBe('svid_expired');
  });

  it('refuses to sign with a CA that has expired, or is not yet valid, at nowSeconds', () => {
    const expired = thrown(() => mintDevSvid(ca, { spiffeId: ID, nowSeconds: ca.notAfter + 1 }));
    expect(expired).toMatchObject({ reason: 'svid_expired' });
    const early = thrown(() => mintDevSvid(ca, { spiffeId: ID, nowSeconds: NOW - 3600 }));
    expect(early).toMatchObject({ reason: 'svid_not_yet_valid' });
  });

  it('refuses a DevCa whose key does not belong to its certificate', () => {
    const other = createDevSpiffeCa({ trustDomain: TD, nowSeconds: NOW });
    const forged: DevCa = { ...ca, keyPem: other.keyPem };
    const err = thrown(() => mintDevSvid(forged, { spiffeId: ID, nowSeconds: NOW }));
    expect(err).toBeInstanceOf(SvidError);
    expect((err as SvidError).reason).toBe('svid_key_mismatch');
  });

  it('refuses bad options eagerly', () => {
    expect(() => mintDevSvid(ca, { spiffeId: ID, nowSeconds: Number.POSITIVE_INFINITY })).toThrow(TypeError);
    expect(() => mintDevSvid(ca, { spiffeId: ID, nowSeconds: NOW, ttlSeconds: -1 })).toThrow(RangeError);
    expect(() => mintDevSvid({} as DevCa, { spiffeId: ID, nowSeconds: NOW })).toThrow(TypeError);
  });
});

describe('writeSpiffeHelperFiles', () => {
  it('writes the three spiffe-helper files that SvidFileSource opens', async () => {
    const dir = path.join(tempDir(), 'svid');
    const files = await writeSpiffeHelperFiles(dir, svid);
    expect(files).toEqual({
      certFile: path.join(dir, 'svid.pem'),
      keyFile: path.join(dir, 'svid_key.pem'),
      bundleFile: path.join(dir, 'svid_bundle.pem'),
    });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(files.keyFile).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual(['svid.pem', 'svid_bundle.pem', 'svid_key.pem']);

    const source = await SvidFileSource.open({ ...files, clock: () => NOW, watch: false });
    try {
      expect(source.current().svid.spiffeId).toBe(ID);
    } finally {
      await source.close();
    }
  });

  it('replaces existing files atomically (a rotation is picked up by reload)', async () => {
    const dir = tempDir();
    const files = await writeSpiffeHelperFiles(dir, svid);
    const source = await SvidFileSource.open({ ...files, clock: () => NOW, watch: false });
    try {
      const rotatedId = 'spiffe://demo.local/ns/demo/sa/rotated';
      await writeSpiffeHelperFiles(dir, mintDevSvid(ca, { spiffeId: rotatedId, nowSeconds: NOW }));
      expect((await source.reload()).svid.spiffeId).toBe(rotatedId);
      // No temporary file is left behind.
      expect(readdirSync(dir).sort()).toEqual(['svid.pem', 'svid_bundle.pem', 'svid_key.pem']);
      expect(statSync(files.keyFile).mode & 0o777).toBe(0o600);
    } finally {
      await source.close();
    }
  });

  it('refuses a missing PEM before touching the disk', async () => {
    const dir = path.join(tempDir(), 'never');
    await expect(writeSpiffeHelperFiles(dir, { ...svid, keyPem: '' })).rejects.toThrow(TypeError);
    await expect(writeSpiffeHelperFiles('', svid)).rejects.toThrow(TypeError);
    expect(() => statSync(dir)).toThrow();
  });
});

describe('loadDevSpiffeCa', () => {
  it('round-trips a CA and keeps minting SVIDs that chain to the original bundle', () => {
    const loaded = loadDevSpiffeCa({ certPem: ca.certPem, keyPem: ca.keyPem });
    expect(loaded.certPem).toBe(ca.certPem);
    expect(bytesOf(loaded.certDer)).toBe(bytesOf(ca.certDer));
    expect(loaded.keyPem).toBe(ca.keyPem);
    expect(loaded.trustDomain).toBe(TD);
    expect(loaded.notAfter).toBe(ca.notAfter);

    const s = mintDevSvid(loaded, { spiffeId: ID, nowSeconds: NOW + 3600 });
    const chain = parsePemCertificates(s.chainPem, 'chain', 8);
    expect(verifyX509Svid(chain, bundlesFromPem(TD, ca.certPem), NOW + 3600).spiffeId).toBe(ID);
    expect(new X509Certificate(chain[0] as Uint8Array).checkIssued(new X509Certificate(ca.certDer))).toBe(
      true,
    );
  });

  it('accepts a SEC1 key and re-encodes it as PKCS#8', () => {
    const sec1 = createPrivateKey(ca.keyPem).export({ type: 'sec1', format: 'pem' }).toString();
    const loaded = loadDevSpiffeCa({ certPem: ca.certPem, keyPem: sec1 });
    expect(loaded.keyPem).toBe(ca.keyPem);
  });

  it('loads a SPIFFE root minted by openssl and signs leaves under it', () => {
    const root = mintCa({ uris: ['spiffe://example.org'], notBefore: NOW - 3600, notAfter: NOW + 86_400 });
    const loaded = loadDevSpiffeCa({ certPem: root.pem, keyPem: root.key.pkcs8Pem });
    expect(loaded.trustDomain).toBe('example.org');
    const s = mintDevSvid(loaded, { spiffeId: 'spiffe://example.org/api', nowSeconds: NOW });
    const chain = parsePemCertificates(s.chainPem, 'chain', 8);
    expect(verifyX509Svid(chain, bundlesFromPem('example.org', root.pem), NOW).spiffeId).toBe(
      'spiffe://example.org/api',
    );
  });

  it('refuses a key that does not belong to the certificate', () => {
    const other = createDevSpiffeCa({ trustDomain: TD, nowSeconds: NOW });
    const err = thrown(() => loadDevSpiffeCa({ certPem: ca.certPem, keyPem: other.keyPem }));
    expect(err).toBeInstanceOf(SvidError);
    expect((err as SvidError).reason).toBe('svid_key_mismatch');
  });

  it.each([
    ['a leaf certificate', () => ({ certPem: svid.chainPem, keyPem: svid.keyPem })],
    ['two certificates', () => ({ certPem: ca.certPem + ca.certPem, keyPem: ca.keyPem })],
    ['no certificate', () => ({ certPem: 'not a certificate', keyPem: ca.keyPem })],
    ['a key that is not PEM', () => ({ certPem: ca.certPem, keyPem: 'secret' })],
    [
      'a public key for a key',
      () => ({
        certPem: ca.certPem,
        keyPem: new X509Certificate(ca.certDer).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      }),
    ],
    [
      'a P-384 key',
      () => ({
        certPem: ca.certPem,
        keyPem: generateKeyPairSync('ec', { namedCurve: 'P-384' })
          .privateKey.export({ type: 'pkcs8', format: 'pem' })
          .toString(),
      }),
    ],
    [
      'a CA without a SPIFFE ID',
      () => {
        const root = mintCa({ notBefore: NOW - 3600, notAfter: NOW + 86_400 });
        return { certPem: root.pem, keyPem: root.key.pkcs8Pem };
      },
    ],
    [
      'a CA whose SPIFFE ID has a path',
      () => {
        const root = mintCa({
          uris: ['spiffe://example.org/ca'],
          notBefore: NOW - 3600,
          notAfter: NOW + 86_400,
        });
        return { certPem: root.pem, keyPem: root.key.pkcs8Pem };
      },
    ],
    [
      'an intermediate (not self-signed)',
      () => {
        const root = mintCa({
          uris: ['spiffe://example.org'],
          notBefore: NOW - 3600,
          notAfter: NOW + 86_400,
        });
        const mid = mintCa({
          issuer: root,
          uris: ['spiffe://example.org'],
          notBefore: NOW - 3600,
          notAfter: NOW + 86_400,
        });
        return { certPem: mid.pem, keyPem: mid.key.pkcs8Pem };
      },
    ],
  ])('refuses %s as svid_malformed', (_name, input) => {
    const err = thrown(() => loadDevSpiffeCa(input()));
    expect(err).toBeInstanceOf(SvidError);
    expect((err as SvidError).reason).toBe('svid_malformed');
    expect((err as SvidError).message).not.toContain('PRIVATE KEY');
  });
});
