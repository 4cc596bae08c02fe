import { X509Certificate, createPrivateKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  SvidError,
  assertKeyMatchesLeaf,
  bundlesFromPem,
  bundlesFromSpiffeBundle,
  bundlesFromTrustMaterial,
  mergePinnedBundles,
  mergeTrustBundles,
  parsePemCertificates,
  verifyX509Svid,
  type SpiffeTrustBundles,
  type SvidErrorCode,
} from '../../pkg/broker/spiffe/index.js';
import type { SpiffeBundle, SpiffeBundleKey } from '../../pkg/bundle/index.js';
import {
  generateKey,
  mintCa,
  mintLeaf,
  mintSpiffeChain,
  tamperSignature,
  type MintOptions,
  type MintedCert,
} from '../helpers/x509.js';

const TD = 'example.org';
const NOT_BEFORE = Date.UTC(2024, 0, 1) / 1000;
const NOT_AFTER = Date.UTC(2034, 0, 1) / 1000;
const NOW = Date.UTC(2025, 5, 1) / 1000;
const validity = { notBefore: NOT_BEFORE, notAfter: NOT_AFTER } as const;

// One trust domain with root -> intermediate, reused by most cases.
const main = mintSpiffeChain({
  trustDomain: TD,
  spiffeId: 'spiffe://example.org/ns/prod/sa/api',
  ...validity,
});
const root = main.root;
const intermediate = main.intermediate as MintedCert;
const bundles = bundlesFromPem(TD, main.bundlePem);

function leafUnder(issuer: MintedCert, options: Omit<MintOptions, 'issuer'> = {}): MintedCert {
  return mintLeaf({ uris: ['spiffe://example.org/workload'], ...validity, ...options, issuer });
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

function expectCode(fn: () => unknown, code: SvidErrorCode): SvidError {
  const err = refused(fn);
  expect(err.reason).toBe(code);
  return err;
}

function b64(der: Uint8Array): string {
  return Buffer.from(der).toString('base64');
}

describe('verifyX509Svid: valid SVIDs', () => {
  it('root -> intermediate -> leaf verifies and yields the SPIFFE ID', () => {
    const svid = verifyX509Svid(main.chainDer, bundles, NOW);
    expect(svid.spiffeId).toBe('spiffe://example.org/ns/prod/sa/api');
    expect(svid.trustDomain).toBe(TD);
    expect(svid.path).toBe('/ns/prod/sa/api');
    expect(svid.leaf.raw.equals(main.leaf.x509.raw)).toBe(true);
    expect(svid.notBefore).toBe(NOT_BEFORE);
    expect(svid.notAfter).toBe(NOT_AFTER);
    expect(svid.expiresAt).toBe(NOT_AFTER);
    expect(svid.chain.map((c) => c.fingerprint256)).toEqual([
      main.leaf.x509.fingerprint256,
      intermediate.x509.fingerprint256,
      root.x509.fingerprint256,
    ]);
  });

  it('root -> leaf verifies', () => {
    const direct = mintSpiffeChain({
      trustDomain: TD,
      spiffeId: 'spiffe://example.org/db',
      intermediate: false,
      ...validity,
    });
    const svid = verifyX509Svid(direct.chainDer, bundlesFromPem(TD, direct.bundlePem), NOW);
    expect(svid.spiffeId).toBe('spiffe://example.org/db');
    expect(svid.chain).toHaveLength(2);
  });

  it('accepts the exact notBefore and notAfter instants (RFC 5280 inclusive validity)', () => {
    expect(verifyX509Svid(main.chainDer, bundles, NOT_BEFORE).spiffeId).toBe(
      main.leaf.x509.subjectAltName?.slice(4),
    );
    expect(verifyX509Svid(main.chainDer, bundles, NOT_AFTER).trustDomain).toBe(TD);
  });

  it('accepts a leaf without basicConstraints (cA defaults to false)', () => {
    const leaf = leafUnder(intermediate, { basicConstraints: null });
    expect(verifyX509Svid([leaf.der, intermediate.der], bundles, NOW).spiffeId).toBe(
      'spiffe://example.org/workload',
    );
  });

  it('accepts keyEncipherment and keyAgreement next to digitalSignature, and DNS SANs next to the URI SAN', () => {
    const leaf = leafUnder(intermediate, {
      keyUsage: ['digitalSignature', 'keyEncipherment', 'keyAgreement'],
      dnsNames: ['api.example.org'],
    });
    expect(verifyX509Svid([leaf.der, intermediate.der], bundles, NOW).path).toBe('/workload');
  });

  it('builds the path whatever the order of the intermediates', () => {
    const i2 = mintCa({ issuer: intermediate, ...validity, subject: '/CN=second intermediate' });
    const leaf = leafUnder(i2);
    const svid = verifyX509Svid([leaf.der, intermediate.der, i2.der], bundles, NOW);
    expect(svid.chain.map((c) => c.subject)).toEqual([
      leaf.x509.subject,
      i2.x509.subject,
      intermediate.x509.subject,
      root.x509.subject,
    ]);
  });

  it('expiresAt is the earliest notAfter of the path', () => {
    const shortInt = mintCa({ issuer: root, ...validity, notAfter: NOW + 3600 });
    const leaf = leafUnder(shortInt);
    const svid = verifyX509Svid([leaf.der, shortInt.der], bundles, NOW);
    expect(svid.notAfter).toBe(NOT_AFTER);
    expect(svid.expiresAt).toBe(NOW + 3600);
  });
});

describe('verifyX509Svid: validity window', () => {
  it('expired leaf -> svid_expired', () => {
    const leaf = leafUnder(intermediate, { notAfter: NOW - 1 });
    const err = expectCode(() => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW), 'svid_expired');
    expect(err.message).toBe('leaf certificate has expired');
  });

  it('one second after notAfter -> svid_expired', () => {
    expectCode(() => verifyX509Svid(main.chainDer, bundles, NOT_AFTER + 1), 'svid_expired');
  });

  it('not-yet-valid leaf -> svid_not_yet_valid', () => {
    const leaf = leafUnder(intermediate, { notBefore: NOW + 60 });
    expectCode(() => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW), 'svid_not_yet_valid');
  });

  it('expired intermediate -> svid_expired', () => {
    const oldInt = mintCa({ issuer: root, notBefore: NOT_BEFORE, notAfter: NOW - 10 });
    const leaf = leafUnder(oldInt);
    const err = expectCode(() => verifyX509Svid([leaf.der, oldInt.der], bundles, NOW), 'svid_expired');
    expect(err.message).toBe('intermediate certificate 1 has expired');
  });

  it('not-yet-valid intermediate -> svid_not_yet_valid', () => {
    const futureInt = mintCa({ issuer: root, notBefore: NOW + 10, notAfter: NOT_AFTER });
    const leaf = leafUnder(futureInt);
    expectCode(() => verifyX509Svid([leaf.der, futureInt.der], bundles, NOW), 'svid_not_yet_valid');
  });

  it('expired root -> svid_expired', () => {
    const oldRoot = mintCa({ notBefore: NOT_BEFORE, notAfter: NOW - 10, uris: ['spiffe://example.org'] });
    const leaf = leafUnder(oldRoot);
    const err = expectCode(
      () => verifyX509Svid([leaf.der], bundlesFromPem(TD, oldRoot.pem), NOW),
      'svid_expired',
    );
    expect(err.message).toBe('root certificate has expired');
  });
});

describe('verifyX509Svid: trust domain and chain', () => {
  it('bundle only for another trust domain -> svid_unknown_trust_domain', () => {
    // Even the right root, filed under another trust domain, must not be used.
    const other: SpiffeTrustBundles = new Map([['other.org', [root.x509]]]);
    expectCode(() => verifyX509Svid(main.chainDer, other, NOW), 'svid_unknown_trust_domain');
  });

  it('empty bundle set -> svid_unknown_trust_domain', () => {
    expectCode(() => verifyX509Svid(main.chainDer, new Map(), NOW), 'svid_unknown_trust_domain');
  });

  it('chain to an unknown root -> svid_untrusted_chain', () => {
    const stranger = mintSpiffeChain({ trustDomain: TD, ...validity });
    const err = expectCode(() => verifyX509Svid(stranger.chainDer, bundles, NOW), 'svid_untrusted_chain');
    expect(err.message).toBe('certificate chain does not verify to a root of trust domain "example.org"');
  });

  it('missing intermediate -> svid_untrusted_chain', () => {
    expectCode(() => verifyX509Svid([main.leaf.der], bundles, NOW), 'svid_untrusted_chain');
  });

  it('attack: tampered leaf signature -> svid_untrusted_chain', () => {
    expectCode(
      () => verifyX509Svid([tamperSignature(main.leaf.der), intermediate.der], bundles, NOW),
      'svid_untrusted_chain',
    );
  });

  it('attack: tampered intermediate signature -> svid_untrusted_chain', () => {
    expectCode(
      () => verifyX509Svid([main.leaf.der, tamperSignature(intermediate.der)], bundles, NOW),
      'svid_untrusted_chain',
    );
  });

  it('attack: cross-trust-domain issuance (evil.org CA signs an example.org ID) -> svid_untrusted_chain', () => {
    const evil = mintSpiffeChain({
      trustDomain: 'evil.org',
      spiffeId: 'spiffe://example.org/admin',
      ...validity,
    });
    const both = mergeTrustBundles(bundles, bundlesFromPem('evil.org', evil.bundlePem));
    expect(both.get('evil.org')).toHaveLength(1);
    expectCode(() => verifyX509Svid(evil.chainDer, both, NOW), 'svid_untrusted_chain');
  });

  it('attack: same subject and key id, different key (issuer name match alone is not trust)', () => {
    const lookalike = mintCa({ subject: root.subject, uris: ['spiffe://example.org'], ...validity });
    const fakeInt = mintCa({ issuer: lookalike, subject: intermediate.subject, ...validity });
    const leaf = leafUnder(fakeInt);
    expectCode(() => verifyX509Svid([leaf.der, fakeInt.der], bundles, NOW), 'svid_untrusted_chain');
  });

  it('attack: SHA-1 signature -> svid_untrusted_chain', () => {
    const leaf = leafUnder(intermediate, { digest: 'sha1' });
    expectCode(() => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW), 'svid_untrusted_chain');
  });

  it('a chain that also carries the root itself verifies (the bundle root anchors the path)', () => {
    const svid = verifyX509Svid([...main.chainDer, root.der], bundles, NOW);
    expect(svid.chain).toHaveLength(3);
  });

  it('attack: mutually cross-signed intermediates do not blow up path building', () => {
    const shared = generateKey();
    const seed = mintCa({ subject: '/CN=loop', key: shared, ...validity });
    const loop = Array.from({ length: 7 }, () =>
      mintCa({ subject: '/CN=loop', key: shared, issuer: seed, ...validity }),
    );
    const leaf = leafUnder(seed);
    const started = performance.now();
    expectCode(
      () => verifyX509Svid([leaf.der, ...loop.map((c) => c.der)], bundles, NOW),
      'svid_untrusted_chain',
    );
    // 7! candidate orders without memoization; well under a second with it.
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('pathLenConstraint 0 on the root refuses an intermediate -> svid_untrusted_chain', () => {
    const r0 = mintCa({ basicConstraints: { ca: true, pathLen: 0 }, ...validity });
    const i0 = mintCa({ issuer: r0, ...validity });
    const leaf = leafUnder(i0);
    const err = expectCode(
      () => verifyX509Svid([leaf.der, i0.der], bundlesFromPem(TD, r0.pem), NOW),
      'svid_untrusted_chain',
    );
    expect(err.message).toContain('path length');
    // The same root signing the leaf directly is within its constraint.
    expect(verifyX509Svid([leafUnder(r0).der], bundlesFromPem(TD, r0.pem), NOW).trustDomain).toBe(TD);
  });

  it('URI name constraints of a CA are enforced', () => {
    const nc = mintCa({
      issuer: root,
      ...validity,
      extraExtensions: ['nameConstraints = critical,permitted;URI:example.org'],
    });
    expect(verifyX509Svid([leafUnder(nc).der, nc.der], bundles, NOW).spiffeId).toBe(
      'spiffe://example.org/workload',
    );
    const outside = leafUnder(nc, { uris: ['spiffe://other.org/workload'] });
    const otherBundles: SpiffeTrustBundles = new Map([['other.org', [root.x509]]]);
    const err = expectCode(
      () => verifyX509Svid([outside.der, nc.der], otherBundles, NOW),
      'svid_untrusted_chain',
    );
    expect(err.message).toBe('a URI SAN is outside the permitted name constraints');
  });

  it('unsupported name-constraint forms fail closed -> svid_untrusted_chain', () => {
    const nc = mintCa({
      issuer: root,
      ...validity,
      extraExtensions: ['nameConstraints = critical,permitted;IP:10.0.0.0/255.0.0.0'],
    });
    expectCode(() => verifyX509Svid([leafUnder(nc).der, nc.der], bundles, NOW), 'svid_untrusted_chain');
  });

  it('an unrecognised critical extension on the leaf -> svid_unsupported_extension', () => {
    const leaf = leafUnder(intermediate, { extraExtensions: ['1.3.6.1.4.1.99999.1 = critical,DER:05:00'] });
    expectCode(
      () => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW),
      'svid_unsupported_extension',
    );
  });

  it('an unrecognised critical extension on an intermediate -> svid_unsupported_extension', () => {
    const odd = mintCa({
      issuer: root,
      ...validity,
      extraExtensions: ['1.3.6.1.4.1.99999.1 = critical,DER:05:00'],
    });
    expectCode(
      () => verifyX509Svid([leafUnder(odd).der, odd.der], bundles, NOW),
      'svid_unsupported_extension',
    );
  });

  it('an unrecognised NON-critical extension is ignored', () => {
    const leaf = leafUnder(intermediate, { extraExtensions: ['1.3.6.1.4.1.99999.1 = DER:05:00'] });
    expect(verifyX509Svid([leaf.der, intermediate.der], bundles, NOW).trustDomain).toBe(TD);
  });
});

describe('verifyX509Svid: leaf rules (X509-SVID sections 3.1, 4.1, 4.3, 5.2)', () => {
  it('two URI SANs -> svid_multiple_uri_sans', () => {
    const leaf = leafUnder(intermediate, { uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] });
    expectCode(() => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW), 'svid_multiple_uri_sans');
  });

  it('a SPIFFE URI SAN plus a non-SPIFFE URI SAN -> svid_multiple_uri_sans', () => {
    const leaf = leafUnder(intermediate, { uris: ['spiffe://example.org/a', 'https://example.org/'] });
    expectCode(() => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW), 'svid_multiple_uri_sans');
  });

  it('no URI SAN (DNS only) -> svid_no_uri_san', () => {
    const leaf = leafUnder(intermediate, { uris: [], dnsNames: ['example.org'] });
    expectCode(() => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW), 'svid_no_uri_san');
  });

  it('no SAN extension at all -> svid_no_uri_san', () => {
    const leaf = leafUnder(intermediate, { uris: [] });
    expectCode(() => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW), 'svid_no_uri_san');
  });

  it.each([
    ['a bad character', 'spiffe://example.org/pa$th', 'path segment characters are limited'],
    ['a dot segment', 'spiffe://example.org/ns/../admin', 'path cannot contain dot segments'],
    ['a single-dot segment', 'spiffe://example.org/./admin', 'path cannot contain dot segments'],
    ['a percent-encoded slash', 'spiffe://example.org/a%2Fb', 'path segment characters are limited'],
    ['an uppercase trust domain', 'spiffe://Example.org/a', 'trust domain characters are limited'],
    ['another scheme', 'https://example.org/a', 'scheme is missing or invalid'],
    ['a query', 'spiffe://example.org/a?b=c', 'path segment characters are limited'],
  ])('SPIFFE ID with %s -> svid_invalid_spiffe_id', (_label, uri, message) => {
    const leaf = leafUnder(intermediate, { uris: [uri] });
    const err = expectCode(
      () => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW),
      'svid_invalid_spiffe_id',
    );
    expect(err.message).toContain(message);
  });

  it('SPIFFE ID without a path (the trust domain ID) -> svid_invalid_spiffe_id', () => {
    const leaf = leafUnder(intermediate, { uris: ['spiffe://example.org'] });
    const err = expectCode(
      () => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW),
      'svid_invalid_spiffe_id',
    );
    expect(err.message).toBe('leaf SPIFFE ID must have a non-root path');
  });

  it('leaf with CA=true -> svid_leaf_is_ca', () => {
    const leaf = leafUnder(intermediate, { basicConstraints: { ca: true } });
    expectCode(() => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW), 'svid_leaf_is_ca');
  });

  it.each([
    ['keyCertSign', ['digitalSignature', 'keyCertSign'], "must not have 'keyCertSign'"],
    ['cRLSign', ['digitalSignature', 'cRLSign'], "must not have 'cRLSign'"],
    ['no digitalSignature', ['keyEncipherment'], "must have 'digitalSignature'"],
  ] as const)('leaf keyUsage with %s -> svid_bad_key_usage', (_label, keyUsage, message) => {
    const leaf = leafUnder(intermediate, { keyUsage: [...keyUsage] });
    const err = expectCode(
      () => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW),
      'svid_bad_key_usage',
    );
    expect(err.message).toContain(message);
  });

  it('leaf without a keyUsage extension -> svid_bad_key_usage (the extension is required)', () => {
    const leaf = leafUnder(intermediate, { keyUsage: null });
    expectCode(() => verifyX509Svid([leaf.der, intermediate.der], bundles, NOW), 'svid_bad_key_usage');
  });
});

describe('verifyX509Svid: intermediate rules (X509-SVID section 3.2)', () => {
  it('intermediate without keyCertSign -> svid_intermediate_not_ca', () => {
    const noSign = mintCa({ issuer: root, ...validity, keyUsage: ['cRLSign', 'digitalSignature'] });
    const err = expectCode(
      () => verifyX509Svid([leafUnder(noSign).der, noSign.der], bundles, NOW),
      'svid_intermediate_not_ca',
    );
    expect(err.message).toBe("intermediate certificate 1 must have 'keyCertSign' set as key usage");
  });

  it('intermediate with CA=false -> svid_intermediate_not_ca', () => {
    const notCa = mintCa({ issuer: root, ...validity, basicConstraints: { ca: false } });
    const err = expectCode(
      () => verifyX509Svid([leafUnder(notCa).der, notCa.der], bundles, NOW),
      'svid_intermediate_not_ca',
    );
    expect(err.message).toBe('intermediate certificate 1 must have the CA flag set to true');
  });

  it('intermediate without basicConstraints -> svid_intermediate_not_ca', () => {
    const noBc = mintCa({ issuer: root, ...validity, basicConstraints: null });
    expectCode(
      () => verifyX509Svid([leafUnder(noBc).der, noBc.der], bundles, NOW),
      'svid_intermediate_not_ca',
    );
  });

  it('an extra certificate in the chain that is not a CA is refused even off the path', () => {
    const stray = leafUnder(intermediate, { uris: ['spiffe://example.org/other'] });
    expectCode(
      () => verifyX509Svid([main.leaf.der, intermediate.der, stray.der], bundles, NOW),
      'svid_intermediate_not_ca',
    );
  });
});

describe('verifyX509Svid: malformed input -> svid_malformed', () => {
  it('empty chain', () => {
    expectCode(() => verifyX509Svid([], bundles, NOW), 'svid_malformed');
  });

  it('garbage bytes', () => {
    expectCode(
      () => verifyX509Svid([new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])], bundles, NOW),
      'svid_malformed',
    );
  });

  it('trailing bytes after the leaf DER', () => {
    const padded = new Uint8Array([...main.leaf.der, 0x00]);
    expectCode(() => verifyX509Svid([padded, intermediate.der], bundles, NOW), 'svid_malformed');
  });

  it('more than 8 certificates', () => {
    const long = [main.leaf.der, ...Array.from({ length: 8 }, () => intermediate.der)];
    const err = expectCode(() => verifyX509Svid(long, bundles, NOW), 'svid_malformed');
    expect(err.message).toContain('more than 8');
  });

  it('caller misuse throws TypeError', () => {
    expect(() => verifyX509Svid(main.chainDer, bundles, Number.NaN)).toThrow(TypeError);
    expect(() => verifyX509Svid(main.chainDer, null as unknown as SpiffeTrustBundles, NOW)).toThrow(
      TypeError,
    );
  });
});

describe('trust bundles', () => {
  const [, x, y] = (() => {
    const jwk = root.x509.publicKey.export({ format: 'jwk' });
    return [jwk, String(jwk.x), String(jwk.y)] as const;
  })();
  const x509Key: SpiffeBundleKey = { use: 'x509-svid', kty: 'EC', crv: 'P-256', x, y, x5c: [b64(root.der)] };
  const jwtKey: SpiffeBundleKey = { use: 'jwt-svid', kty: 'EC', crv: 'P-256', kid: 'jwt-1', x, y };

  it('from trust-material spiffe_bundles (jwt-svid keys ignored)', () => {
    const entries: SpiffeBundle[] = [
      { trust_domain: TD, keys: [x509Key, jwtKey], spiffe_sequence: 3 },
      { trust_domain: 'jwt-only.org', keys: [jwtKey] },
    ];
    const set = bundlesFromTrustMaterial(entries);
    expect([...set.keys()]).toEqual([TD]);
    expect(set.get(TD)?.[0]?.fingerprint256).toBe(root.x509.fingerprint256);
    expect(verifyX509Svid(main.chainDer, set, NOW).spiffeId).toBe('spiffe://example.org/ns/prod/sa/api');
  });

  it('from trust material: a bad entry -> svid_bundle_malformed', () => {
    const bad = [{ trust_domain: TD, keys: [{ ...x509Key, x5c: ['AAAA'] }] }] as SpiffeBundle[];
    expectCode(() => bundlesFromTrustMaterial(bad), 'svid_bundle_malformed');
    const twoCerts = [
      { trust_domain: TD, keys: [{ ...x509Key, x5c: [b64(root.der), b64(root.der)] }] },
    ] as SpiffeBundle[];
    expectCode(() => bundlesFromTrustMaterial(twoCerts), 'svid_bundle_malformed');
    const dup = [
      { trust_domain: TD, keys: [x509Key] },
      { trust_domain: TD, keys: [x509Key] },
    ] as SpiffeBundle[];
    expectCode(() => bundlesFromTrustMaterial(dup), 'svid_bundle_malformed');
  });

  it('from a standard SPIFFE bundle JWKS (JSON text and parsed value)', () => {
    const doc = {
      keys: [x509Key, jwtKey, { use: 'wit-svid', kty: 'OKP' }],
      spiffe_sequence: 1,
      spiffe_refresh_hint: 60,
    };
    for (const input of [JSON.stringify(doc), doc]) {
      const set = bundlesFromSpiffeBundle(TD, input);
      expect(set.get(TD)).toHaveLength(1);
      expect(verifyX509Svid(main.chainDer, set, NOW).trustDomain).toBe(TD);
    }
  });

  it.each([
    ['not JSON', '{"keys":'],
    ['no keys member', JSON.stringify({ spiffe_sequence: 1 })],
    ['an unknown top-level member', JSON.stringify({ keys: [x509Key], trust_domain: TD })],
    [
      'two certificates in x5c',
      JSON.stringify({ keys: [{ ...x509Key, x5c: [b64(root.der), b64(root.der)] }] }),
    ],
    [
      'an x509-svid entry without x5c',
      JSON.stringify({ keys: [{ use: 'x509-svid', kty: 'EC', crv: 'P-256', x, y }] }),
    ],
    ['a certificate that does not decode', JSON.stringify({ keys: [{ ...x509Key, x5c: ['MIIB'] }] })],
    ['only jwt-svid keys', JSON.stringify({ keys: [jwtKey] })],
  ])('SPIFFE bundle JWKS with %s -> svid_bundle_malformed', (_label, text) => {
    expectCode(() => bundlesFromSpiffeBundle(TD, text), 'svid_bundle_malformed');
  });

  it('from PEM with several CA certificates (root rotation): both roots are trusted', () => {
    const next = mintSpiffeChain({ trustDomain: TD, ...validity });
    const set = bundlesFromPem(TD, `subject=ignored text\n${root.pem}\n${next.root.pem}`);
    expect(set.get(TD)).toHaveLength(2);
    expect(verifyX509Svid(main.chainDer, set, NOW).trustDomain).toBe(TD);
    expect(verifyX509Svid(next.chainDer, set, NOW).trustDomain).toBe(TD);
  });

  it('attack: a federated root appended to svid_bundle.pem does not vouch for our trust domain', () => {
    const fed = mintSpiffeChain({
      trustDomain: 'partner.org',
      spiffeId: 'spiffe://example.org/admin',
      ...validity,
    });
    const set = bundlesFromPem(TD, root.pem + fed.root.pem);
    expect(set.get(TD)?.map((c) => c.fingerprint256)).toEqual([root.x509.fingerprint256]);
    expectCode(() => verifyX509Svid(fed.chainDer, set, NOW), 'svid_untrusted_chain');
  });

  it.each([
    ['no certificate', 'nothing here'],
    ['a private key block', generateKey().pkcs8Pem],
    ['a truncated block', root.pem.slice(0, 200)],
    ['a non-base64 body', '-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n'],
    ['only a foreign trust domain root', mintCa({ uris: ['spiffe://other.org'], ...validity }).pem],
  ])('PEM bundle with %s -> svid_bundle_malformed', (_label, pem) => {
    expectCode(() => bundlesFromPem(TD, pem), 'svid_bundle_malformed');
  });

  it('bundle functions refuse an invalid trust domain argument (TypeError)', () => {
    expect(() => bundlesFromPem('Example.org', root.pem)).toThrow(TypeError);
    expect(() => bundlesFromSpiffeBundle('', '{}')).toThrow(TypeError);
  });

  it('mergeTrustBundles unions roots per trust domain without duplicates', () => {
    const other = mintCa({ ...validity });
    const merged = mergeTrustBundles(
      bundles,
      bundlesFromPem(TD, root.pem + other.pem),
      bundlesFromPem('b.org', other.pem),
    );
    expect(merged.get(TD)).toHaveLength(2);
    expect(merged.get('b.org')).toHaveLength(1);
  });

  it('mergePinnedBundles: pinned roots are the only roots of their trust domain; the rest is merged', () => {
    const rogue = mintSpiffeChain({
      trustDomain: TD,
      spiffeId: 'spiffe://example.org/ns/prod/sa/admin',
      ...validity,
    });
    const federated = mintCa({ ...validity });
    const { bundles: merged, ignoredTrustDomains } = mergePinnedBundles(
      bundles,
      bundlesFromPem(TD, root.pem + rogue.root.pem),
      bundlesFromPem('b.org', federated.pem),
    );
    expect(merged.get(TD)?.map((c) => c.fingerprint256)).toEqual([root.x509.fingerprint256]);
    expect(merged.get('b.org')).toHaveLength(1);
    expect(ignoredTrustDomains).toEqual([TD]);
    expectCode(() => verifyX509Svid(rogue.chainDer, merged, NOW), 'svid_untrusted_chain');
    expect(verifyX509Svid(main.chainDer, merged, NOW).spiffeId).toBe('spiffe://example.org/ns/prod/sa/api');
    // With nothing pinned, the same sets merge (and the rogue chain verifies: why pins exist).
    const unpinned = mergePinnedBundles(new Map(), bundlesFromPem(TD, root.pem + rogue.root.pem));
    expect(unpinned.ignoredTrustDomains).toEqual([]);
    expect(verifyX509Svid(rogue.chainDer, unpinned.bundles, NOW).trustDomain).toBe(TD);
  });

  it('mergePinnedBundles reports nothing when the unpinned roots are among the pins; an empty pin admits nothing', () => {
    expect(mergePinnedBundles(bundles, bundlesFromPem(TD, root.pem)).ignoredTrustDomains).toEqual([]);
    const none = mergePinnedBundles(new Map([[TD, []]]), bundles);
    expect(none.ignoredTrustDomains).toEqual([TD]);
    expect(none.bundles.get(TD)).toEqual([]);
    expectCode(() => verifyX509Svid(main.chainDer, none.bundles, NOW), 'svid_unknown_trust_domain');
  });

  it('bundle sets are read-only', () => {
    expect((bundles as unknown as { set?: unknown }).set).toBeUndefined();
    expect(Object.isFrozen(bundles.get(TD))).toBe(true);
  });

  it('parsePemCertificates keeps order and refuses more than the bound', () => {
    const ders = parsePemCertificates(main.chainPem, 'certificate file', 8);
    expect(ders.map((d) => new X509Certificate(d).fingerprint256)).toEqual([
      main.leaf.x509.fingerprint256,
      intermediate.x509.fingerprint256,
    ]);
    expectCode(() => parsePemCertificates(main.chainPem, 'certificate file', 1), 'svid_malformed');
  });
});

describe('assertKeyMatchesLeaf', () => {
  it('accepts the leaf key (PKCS#8 and SEC1 PEM)', () => {
    expect(() => assertKeyMatchesLeaf(main.leaf.x509, createPrivateKey(main.leafKey.pkcs8Pem))).not.toThrow();
    expect(() => assertKeyMatchesLeaf(main.leaf.x509, createPrivateKey(main.leafKey.sec1Pem))).not.toThrow();
  });

  it('another key -> svid_key_mismatch, with no key material in the message', () => {
    const other = generateKey();
    const err = expectCode(() => assertKeyMatchesLeaf(main.leaf.x509, other.privateKey), 'svid_key_mismatch');
    expect(err.message).toBe('leaf certificate does not match the private key');
    expect(err.message).not.toMatch(/BEGIN|[A-Za-z0-9+/]{40}/);
  });
});

describe('error messages carry no certificate or key material', () => {
  it('for every refusal above, the message is short and has no base64 runs', () => {
    const cases: (() => unknown)[] = [
      () => verifyX509Svid([tamperSignature(main.leaf.der), intermediate.der], bundles, NOW),
      () => verifyX509Svid([new Uint8Array(100)], bundles, NOW),
      () => bundlesFromPem(TD, generateKey().pkcs8Pem),
    ];
    for (const fn of cases) {
      const err = refused(fn);
      expect(err.message.length).toBeLessThan(200);
      expect(err.message).not.toMatch(/[A-Za-z0-9+/]{40}/);
    }
  });
});
