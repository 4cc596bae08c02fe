import { execFileSync } from 'node:child_process';
import {
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/*
 * Test helper: mints REAL X.509 certificates with the `openssl` CLI (OpenSSL 3.0 has no
 * `x509 -not_before`, so certificates are issued with `openssl ca`, which takes explicit
 * `-startdate`/`-enddate`). Keys are EC P-256, generated with node:crypto (fast) and handed to
 * openssl as PKCS#8 PEM. Every call works in its own temporary directory (its own `openssl ca`
 * database), so concurrent calls never share state; the directory is removed before returning.
 *
 * Everything is synchronous so it can run in `beforeAll` or at module scope of a test file.
 *
 * @example
 * ```ts
 * import { mintSpiffeChain, mintLeaf } from '../helpers/x509.js';
 *
 * const c = mintSpiffeChain({ trustDomain: 'example.org', spiffeId: 'spiffe://example.org/web' });
 * // c.chainDer = [leaf DER, intermediate DER]; c.root.pem is the bundle; c.leafKey.pkcs8Pem the key.
 * const other = mintLeaf({ issuer: c.intermediate!, uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] });
 * ```
 */

/** Path of the OpenSSL CLI used by the helper. */
export const OPENSSL = process.env['OPENSSL_BIN'] ?? '/usr/bin/openssl';

/** An EC P-256 key pair in every encoding a test may need. */
export interface MintedKey {
  /** node:crypto private key. */
  readonly privateKey: KeyObject;
  /** node:crypto public key. */
  readonly publicKey: KeyObject;
  /** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). */
  readonly pkcs8Pem: string;
  /** PKCS#8 DER. */
  readonly pkcs8Der: Uint8Array;
  /** SEC1 PEM (`-----BEGIN EC PRIVATE KEY-----`), the legacy OpenSSL EC encoding. */
  readonly sec1Pem: string;
}

/** A certificate minted by the helper, with the key pair it certifies. */
export interface MintedCert {
  /** PEM of the certificate (one block, trailing newline). */
  readonly pem: string;
  /** DER of the certificate. */
  readonly der: Uint8Array;
  /** node:crypto view of the certificate. */
  readonly x509: X509Certificate;
  /** The key pair whose public key the certificate carries (the signing key, for a CA). */
  readonly key: MintedKey;
  /** The subject as passed to openssl (`/CN=.../O=...`). */
  readonly subject: string;
}

/** Key usage names as OpenSSL spells them in `keyUsage = ...`. */
export type KeyUsageName =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign'
  | 'encipherOnly'
  | 'decipherOnly';

/** Epoch seconds or a Date. */
export type TimeInput = number | Date;

/** Options shared by {@link mintCa} and {@link mintLeaf}. */
export interface MintOptions {
  /** OpenSSL `-subj` form, e.g. `/C=US/O=SPIFFE/CN=leaf`. Default depends on the function. */
  readonly subject?: string;
  /** URI SANs (zero, one or several). Values are written verbatim (any character is allowed). */
  readonly uris?: readonly string[];
  /** DNS SANs. */
  readonly dnsNames?: readonly string[];
  /**
   * basicConstraints (always written critical). `null` omits the extension.
   * Default: `{ ca: true }` for {@link mintCa}, `{ ca: false }` for {@link mintLeaf}.
   */
  readonly basicConstraints?: { readonly ca: boolean; readonly pathLen?: number } | null;
  /**
   * keyUsage (written critical). `null` omits the extension.
   * Default: `['keyCertSign', 'cRLSign']` for a CA, `['digitalSignature']` for a leaf.
   */
  readonly keyUsage?: readonly KeyUsageName[] | null;
  /** extKeyUsage, e.g. `['serverAuth', 'clientAuth']`. Default: none for a CA, both for a leaf. */
  readonly extKeyUsage?: readonly string[] | null;
  /** notBefore (epoch seconds or Date). Default: now - 1 h. */
  readonly notBefore?: TimeInput;
  /** notAfter (epoch seconds or Date). Default: now + 24 h. */
  readonly notAfter?: TimeInput;
  /** The issuing CA. Omitted: self-signed (only meaningful for {@link mintCa}). */
  readonly issuer?: MintedCert;
  /** Reuse an existing key pair (e.g. to mint a rotated cert for the same key). Default: a fresh key. */
  readonly key?: MintedKey;
  /**
   * Extra raw OpenSSL extension lines for the `[ext]` section, written verbatim, e.g.
   * `'nameConstraints = critical,permitted;URI:example.org'` or `'1.2.3.4 = critical,DER:05:00'`.
   */
  readonly extraExtensions?: readonly string[];
  /** Signature digest (`openssl ca -md`). Default: sha256. */
  readonly digest?: 'sha1' | 'sha256' | 'sha384' | 'sha512';
}

/** Generate a fresh EC P-256 key pair (node:crypto; no openssl call). */
export function generateKey(): MintedKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return keyFromPrivate(privateKey);
}

/** Wrap an existing private key (PEM of any encoding node:crypto reads, or a KeyObject). */
export function keyFromPrivate(input: KeyObject | string): MintedKey {
  const privateKey = typeof input === 'string' ? createPrivateKey(input) : input;
  return {
    privateKey,
    publicKey: createPublicKey(privateKey),
    pkcs8Pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    pkcs8Der: new Uint8Array(privateKey.export({ type: 'pkcs8', format: 'der' })),
    sec1Pem: privateKey.export({ type: 'sec1', format: 'pem' }).toString(),
  };
}

/** Mint a CA certificate: a self-signed root (no `issuer`) or an intermediate (`issuer` given). */
export function mintCa(options: MintOptions = {}): MintedCert {
  return mint(options, {
    subject:
      options.issuer === undefined
        ? '/O=TrustPlane Test/CN=Test Root CA'
        : '/O=TrustPlane Test/CN=Test Intermediate CA',
    basicConstraints: { ca: true },
    keyUsage: ['keyCertSign', 'cRLSign'],
    extKeyUsage: null,
  });
}

/** Mint an end-entity certificate signed by `options.issuer` (required). */
export function mintLeaf(options: MintOptions & { readonly issuer: MintedCert }): MintedCert {
  return mint(options, {
    subject: '/C=US/O=SPIRE/CN=workload',
    basicConstraints: { ca: false },
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth', 'clientAuth'],
  });
}

/** Options of {@link mintSpiffeChain}. */
export interface SpiffeChainOptions {
  /** Trust domain; the CA certificates get the SPIFFE ID `spiffe://<trustDomain>` as URI SAN. */
  readonly trustDomain: string;
  /** Leaf SPIFFE ID. Default: `spiffe://<trustDomain>/workload`. */
  readonly spiffeId?: string;
  /** Put an intermediate CA between root and leaf. Default: true. */
  readonly intermediate?: boolean;
  /** Validity applied to all three certificates unless overridden below. */
  readonly notBefore?: TimeInput;
  readonly notAfter?: TimeInput;
  /** Reuse an existing root (e.g. mint a second leaf under the same trust). */
  readonly root?: MintedCert;
  /** Overrides for each certificate. */
  readonly rootOverrides?: MintOptions;
  readonly intermediateOverrides?: MintOptions;
  readonly leafOverrides?: Omit<MintOptions, 'issuer'>;
}

/** Result of {@link mintSpiffeChain}. */
export interface SpiffeChain {
  readonly root: MintedCert;
  /** Absent when `intermediate: false`. */
  readonly intermediate: MintedCert | undefined;
  readonly leaf: MintedCert;
  /** The leaf's key pair (same as `leaf.key`). */
  readonly leafKey: MintedKey;
  /** DER chain as an X.509-SVID carries it: leaf first, then the intermediate (never the root). */
  readonly chainDer: readonly Uint8Array[];
  /** The same chain as concatenated PEM (spiffe-helper `svid.pem`). */
  readonly chainPem: string;
  /** The root as PEM (spiffe-helper `svid_bundle.pem`). */
  readonly bundlePem: string;
}

/**
 * Mint root → (intermediate →) leaf for a SPIFFE trust domain. The leaf gets exactly one URI SAN
 * (the SPIFFE ID), CA=false, keyUsage digitalSignature, extKeyUsage serverAuth+clientAuth.
 *
 * @example
 * ```ts
 * const c = mintSpiffeChain({ trustDomain: 'example.org', spiffeId: 'spiffe://example.org/api' });
 * verifyX509Svid(c.chainDer, bundlesFromPem('example.org', c.bundlePem), nowSeconds);
 * ```
 */
export function mintSpiffeChain(options: SpiffeChainOptions): SpiffeChain {
  const validity = {
    ...(options.notBefore !== undefined ? { notBefore: options.notBefore } : {}),
    ...(options.notAfter !== undefined ? { notAfter: options.notAfter } : {}),
  };
  const tdId = `spiffe://${options.trustDomain}`;
  const root =
    options.root ??
    mintCa({
      ...validity,
      uris: [tdId],
      subject: '/O=TrustPlane Test/CN=SPIFFE Root CA',
      ...options.rootOverrides,
    });
  const intermediate =
    options.intermediate === false
      ? undefined
      : mintCa({
          ...validity,
          uris: [tdId],
          subject: '/O=TrustPlane Test/CN=SPIFFE Intermediate CA',
          issuer: root,
          ...options.intermediateOverrides,
        });
  const leaf = mintLeaf({
    ...validity,
    uris: [options.spiffeId ?? `${tdId}/workload`],
    ...options.leafOverrides,
    issuer: intermediate ?? root,
  });
  const chain = intermediate === undefined ? [leaf] : [leaf, intermediate];
  return {
    root,
    intermediate,
    leaf,
    leafKey: leaf.key,
    chainDer: chain.map((c) => c.der),
    chainPem: chain.map((c) => c.pem).join(''),
    bundlePem: root.pem,
  };
}

/** Return a copy of a DER certificate with one bit of its signature flipped (last byte). */
export function tamperSignature(der: Uint8Array): Uint8Array {
  const out = new Uint8Array(der);
  // The signature BIT STRING is the last element of the Certificate SEQUENCE; its final byte is
  // part of the ECDSA `s` INTEGER, so flipping a low bit keeps the DER well formed.
  out[out.length - 1] = (out[out.length - 1] ?? 0) ^ 0x01;
  return out;
}

/** Convert DER to a PEM certificate block. */
export function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

// ---------------------------------------------------------------------------------------------

interface Defaults {
  readonly subject: string;
  readonly basicConstraints: { readonly ca: boolean; readonly pathLen?: number };
  readonly keyUsage: readonly KeyUsageName[];
  readonly extKeyUsage: readonly string[] | null;
}

/** CSR per key (PEM), so a reused key costs one openssl call per certificate, not two. */
const csrCache = new WeakMap<MintedKey, string>();

function mint(options: MintOptions, defaults: Defaults): MintedCert {
  const key = options.key ?? generateKey();
  const subject = options.subject ?? defaults.subject;
  const now = Math.floor(Date.now() / 1000);
  const notBefore = toSeconds(options.notBefore ?? now - 3600);
  const notAfter = toSeconds(options.notAfter ?? now + 86_400);
  const dir = mkdtempSync(path.join(tmpdir(), 'tp-x509-'));
  try {
    writeFileSync(path.join(dir, 'key.pem'), key.pkcs8Pem, { mode: 0o600 });
    let csr = csrCache.get(key);
    if (csr === undefined) {
      csr = openssl(['req', '-new', '-key', 'key.pem', '-subj', '/CN=csr', '-out', '-'], dir);
      csrCache.set(key, csr);
    }
    writeFileSync(path.join(dir, 'req.csr'), csr);
    writeFileSync(path.join(dir, 'index.txt'), '');
    // Random positive 127-bit serial, unique enough across every run.
    const serial = randomBytes(16);
    serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x10;
    writeFileSync(path.join(dir, 'serial'), `${serial.toString('hex')}\n`);
    writeFileSync(path.join(dir, 'ca.cnf'), config(options, defaults));

    const args = [
      'ca',
      '-config',
      'ca.cnf',
      '-batch',
      '-notext',
      '-preserveDN',
      '-utf8',
      '-in',
      'req.csr',
      '-subj',
      subject,
      '-startdate',
      asn1Time(notBefore),
      '-enddate',
      asn1Time(notAfter),
      '-extfile',
      'ca.cnf',
      '-extensions',
      'ext',
      '-out',
      'cert.pem',
      '-md',
      options.digest ?? 'sha256',
    ];
    if (options.issuer === undefined) {
      args.push('-selfsign', '-keyfile', 'key.pem');
    } else {
      writeFileSync(path.join(dir, 'issuer.pem'), options.issuer.pem);
      writeFileSync(path.join(dir, 'issuer.key'), options.issuer.key.pkcs8Pem, { mode: 0o600 });
      args.push('-cert', 'issuer.pem', '-keyfile', 'issuer.key');
    }
    openssl(args, dir);
    const pem = normalizePem(readFileSync(path.join(dir, 'cert.pem'), 'utf8'));
    const x509 = new X509Certificate(pem);
    return { pem, der: new Uint8Array(x509.raw), x509, key, subject };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function openssl(args: readonly string[], cwd: string): string {
  try {
    return execFileSync(OPENSSL, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: unknown }).stderr;
    throw new Error(`openssl ${args[0] ?? ''} failed: ${typeof stderr === 'string' ? stderr : String(err)}`);
  }
}

function config(options: MintOptions, defaults: Defaults): string {
  const bc = options.basicConstraints === undefined ? defaults.basicConstraints : options.basicConstraints;
  const ku = options.keyUsage === undefined ? defaults.keyUsage : options.keyUsage;
  const eku = options.extKeyUsage === undefined ? defaults.extKeyUsage : options.extKeyUsage;
  const ext: string[] = ['subjectKeyIdentifier = hash'];
  if (options.issuer !== undefined) ext.push('authorityKeyIdentifier = keyid:always');
  if (bc !== null) {
    const pathLen = bc.ca && bc.pathLen !== undefined ? `,pathlen:${bc.pathLen}` : '';
    ext.push(`basicConstraints = critical,CA:${bc.ca ? 'TRUE' : 'FALSE'}${pathLen}`);
  }
  if (ku !== null && ku.length > 0) ext.push(`keyUsage = critical,${ku.join(',')}`);
  if (eku !== null && eku.length > 0) ext.push(`extendedKeyUsage = ${eku.join(',')}`);
  const alt: string[] = [];
  (options.uris ?? []).forEach((u, i) => alt.push(`URI.${i + 1} = ${escapeValue(u)}`));
  (options.dnsNames ?? []).forEach((d, i) => alt.push(`DNS.${i + 1} = ${escapeValue(d)}`));
  if (alt.length > 0) ext.push('subjectAltName = @alt');
  ext.push(...(options.extraExtensions ?? []));
  return [
    '[ca]',
    'default_ca = testca',
    '[testca]',
    'database = ./index.txt',
    'serial = ./serial',
    'new_certs_dir = .',
    'default_md = sha256',
    'policy = policy_any',
    'unique_subject = no',
    'email_in_dn = no',
    'copy_extensions = none',
    '[policy_any]',
    'commonName = optional',
    '[ext]',
    ...ext,
    '[alt]',
    ...alt,
    '',
  ].join('\n');
}

/** OpenSSL config values: `$` expands variables, `#` starts a comment, `\` escapes. */
function escapeValue(value: string): string {
  if (/[\r\n]/.test(value)) throw new RangeError('x509 helper: SAN values cannot contain line breaks');
  return value.replace(/[\\$#"']/g, (c) => `\\${c}`);
}

function toSeconds(t: TimeInput): number {
  return typeof t === 'number' ? Math.floor(t) : Math.floor(t.getTime() / 1000);
}

/** GeneralizedTime form `YYYYMMDDHHMMSSZ`; openssl stores UTCTime for years before 2050. */
function asn1Time(seconds: number): string {
  const iso = new Date(seconds * 1000).toISOString(); // 2024-01-02T03:04:05.000Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

function normalizePem(text: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text);
  if (m === null) throw new Error('openssl produced no certificate');
  return `${m[0]}\n`;
}
