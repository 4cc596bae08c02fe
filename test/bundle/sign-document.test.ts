import { describe, expect, it } from 'vitest';
import { generateSigningKey, parsePrivateKey } from '../../pkg/authcore/signing-key.js';
import {
  documentSigningInput,
  signDocument,
  SIGNED_DOCUMENT_PREFIX,
  verifyDocument,
  type DocumentSigner,
} from '../../pkg/bundle/index.js';
import { decodeBase64Url, encodeBase64Url } from '../../pkg/internal/base64url.js';
import { fromUtf8Strict } from '../../pkg/internal/bytes.js';
import { sampleBundle, sourceRulesVector } from './fixtures.js';

const SIGNER = { issuer: 'ops@example.local', kid: 'bundle-2027-01' };

async function setup() {
  const key = await generateSigningKey();
  const signers: DocumentSigner[] = [{ kid: SIGNER.kid, key: key.publicKey }];
  const signed = await signDocument(sampleBundle(), key, SIGNER);
  return { key, signers, signed };
}

describe('documentSigningInput', () => {
  it('is the prefix plus the JCS of the document without signature (signed_by covered)', () => {
    const doc = {
      b: 1,
      a: 'x',
      signed_by: { kid: 'k', issuer: 'i', alg: 'EdDSA' },
      signature: { value: 'zz' },
    };
    expect(fromUtf8Strict(documentSigningInput(doc))).toBe(
      'trustplane-signed-document-v1\n{"a":"x","b":1,"signed_by":{"alg":"EdDSA","issuer":"i","kid":"k"}}',
    );
    expect(SIGNED_DOCUMENT_PREFIX).toBe('trustplane-signed-document-v1\n');
  });

  it('is a golden value for a fixed key (deterministic Ed25519)', async () => {
    // RFC 8032 test 1 secret key: the signature is deterministic, so this pins the whole format.
    const key = await parsePrivateKey('nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A');
    const signed = await signDocument({ version: 'x', list: [3, 1] }, key, { issuer: 'i', kid: 'k' });
    expect(signed.signed_by).toEqual({ issuer: 'i', kid: 'k', alg: 'EdDSA' });
    expect(signed.signature.format).toBe('ed25519-jcs-v1');
    expect(key.publicKey.x).toBe('11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo');
    expect(fromUtf8Strict(documentSigningInput(signed))).toBe(
      'trustplane-signed-document-v1\n{"list":[3,1],"signed_by":{"alg":"EdDSA","issuer":"i","kid":"k"},"version":"x"}',
    );
    expect(signed.signature.value).toBe(
      'sEd0E--qvF3z3H6owz0dIuIggagi8-VxtQH67Jh1Wi7FzoP9-5ZDIfO9iudqoG8zgPN2SQ4MyFGg_skMTgiNCA',
    );
    const again = await signDocument({ list: [3, 1], version: 'x' }, key, { issuer: 'i', kid: 'k' });
    expect(again.signature.value).toBe(signed.signature.value);
  });
});

describe('signDocument / verifyDocument', () => {
  it('round-trips', async () => {
    const { signers, signed } = await setup();
    expect(signed.signed_by).toEqual({ ...SIGNER, alg: 'EdDSA' });
    await expect(verifyDocument(signed, { keys: signers })).resolves.toEqual({
      signed: true,
      kid: SIGNER.kid,
    });
  });

  it('does not modify its input', async () => {
    const key = await generateSigningKey();
    const doc = sampleBundle();
    const before = structuredClone(doc);
    await signDocument(doc, key, SIGNER);
    expect(doc).toEqual(before);
  });

  it('re-signing replaces an old signature', async () => {
    const { signed } = await setup();
    const other = await generateSigningKey();
    const resigned = await signDocument(signed, other, { issuer: 'b', kid: 'other' });
    await expect(
      verifyDocument(resigned, { keys: [{ kid: 'other', key: other.publicKey }] }),
    ).resolves.toMatchObject({ signed: true, kid: 'other' });
  });

  it('survives a JSON round trip and member reordering', async () => {
    const { signers, signed } = await setup();
    const reparsed = JSON.parse(JSON.stringify(signed)) as Record<string, unknown>;
    const reordered = Object.fromEntries(Object.entries(reparsed).reverse());
    await expect(verifyDocument(reordered, { keys: signers })).resolves.toMatchObject({ signed: true });
  });

  it('signs the conformance vector shape once its skeleton is replaced', async () => {
    const key = await generateSigningKey();
    const signed = await signDocument(sourceRulesVector().policy_bundle, key, SIGNER);
    expect(signed.signature.format).toBe('ed25519-jcs-v1');
    await expect(
      verifyDocument(signed, { keys: [{ kid: SIGNER.kid, key: key.publicKey }] }),
    ).resolves.toEqual({
      signed: true,
      kid: SIGNER.kid,
    });
  });

  it('rejects empty issuer or kid', async () => {
    const key = await generateSigningKey();
    await expect(signDocument({}, key, { issuer: '', kid: 'k' })).rejects.toThrow(TypeError);
    await expect(signDocument({}, key, { issuer: 'i', kid: '' })).rejects.toThrow(TypeError);
  });

  it('refuses a key list that can never verify', async () => {
    const { signed } = await setup();
    await expect(verifyDocument(signed, { keys: [] })).rejects.toThrow(TypeError);
    const key = await generateSigningKey();
    await expect(
      verifyDocument(signed, {
        keys: [
          { kid: 'a', key: key.publicKey },
          { kid: 'a', key: key.publicKey },
        ],
      }),
    ).rejects.toThrow(TypeError);
  });
});

describe('attack: tampered or mis-signed documents', () => {
  it('a changed route', async () => {
    const { signers, signed } = await setup();
    const tampered = structuredClone(signed);
    tampered.route_groups[0]!.routes[0]!.path_template = '/v1/admin';
    await expect(verifyDocument(tampered, { keys: signers })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
      message: 'signature verification failed',
    });
  });

  it('an added member', async () => {
    const { signers, signed } = await setup();
    await expect(
      verifyDocument({ ...signed, revocations: [], expires_at: 1 }, { keys: signers }),
    ).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
    });
  });

  it('a changed signed_by (covered by the signature)', async () => {
    const { signers, signed } = await setup();
    const tampered = { ...signed, signed_by: { ...signed.signed_by, issuer: 'someone-else' } };
    await expect(verifyDocument(tampered, { keys: signers })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
    });
  });

  it('an unknown kid', async () => {
    const { signers, signed } = await setup();
    const tampered = { ...signed, signed_by: { ...signed.signed_by, kid: 'nope' } };
    await expect(verifyDocument(tampered, { keys: signers })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
      message: 'signature verification failed',
    });
  });

  it('the right kid with another key', async () => {
    const { signed } = await setup();
    const wrong = await generateSigningKey();
    await expect(
      verifyDocument(signed, { keys: [{ kid: SIGNER.kid, key: wrong.publicKey }] }),
    ).rejects.toMatchObject({ reason: 'bundle_signature_invalid', message: 'signature verification failed' });
  });

  it('a signer pinned to another issuer', async () => {
    const { key, signed } = await setup();
    await expect(
      verifyDocument(signed, { keys: [{ kid: SIGNER.kid, key: key.publicKey, issuer: 'other' }] }),
    ).rejects.toMatchObject({ reason: 'bundle_signature_invalid' });
    await expect(
      verifyDocument(signed, { keys: [{ kid: SIGNER.kid, key: key.publicKey, issuer: SIGNER.issuer }] }),
    ).resolves.toMatchObject({ signed: true });
  });

  it('a flipped signature bit', async () => {
    const { signers, signed } = await setup();
    const bytes = decodeBase64Url(signed.signature.value)!;
    bytes[10] = bytes[10]! ^ 1;
    const tampered = { ...signed, signature: { ...signed.signature, value: encodeBase64Url(bytes) } };
    await expect(verifyDocument(tampered, { keys: signers })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
    });
  });

  it('a non-canonical base64url signature (unused low bits set)', async () => {
    const { signers, signed } = await setup();
    const v = signed.signature.value;
    const last = v[v.length - 1]!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const malleated = v.slice(0, -1) + alphabet[alphabet.indexOf(last) + 1]!;
    await expect(
      verifyDocument({ ...signed, signature: { ...signed.signature, value: malleated } }, { keys: signers }),
    ).rejects.toMatchObject({ reason: 'bundle_signature_invalid' });
    await expect(
      verifyDocument({ ...signed, signature: { ...signed.signature, value: `${v}==` } }, { keys: signers }),
    ).rejects.toMatchObject({ reason: 'bundle_signature_invalid' });
  });

  it('a signature of the wrong length', async () => {
    const { signers, signed } = await setup();
    const short = encodeBase64Url(decodeBase64Url(signed.signature.value)!.subarray(0, 63));
    await expect(
      verifyDocument({ ...signed, signature: { ...signed.signature, value: short } }, { keys: signers }),
    ).rejects.toMatchObject({ reason: 'bundle_signature_invalid' });
  });

  it('an unknown signature format', async () => {
    const { signers, signed } = await setup();
    await expect(
      verifyDocument(
        { ...signed, signature: { format: 'ed448-jcs-v1', value: signed.signature.value } },
        { keys: signers },
      ),
    ).rejects.toMatchObject({ reason: 'bundle_signature_invalid' });
  });

  it('a signature without signed_by', async () => {
    const { signers, signed } = await setup();
    const { signed_by: _drop, ...rest } = signed;
    await expect(verifyDocument(rest, { keys: signers })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
    });
  });

  it('allowUnsigned does not excuse a bad signature', async () => {
    const { signers, signed } = await setup();
    const tampered = { ...signed, trust_domain: 'evil.local' };
    await expect(verifyDocument(tampered, { keys: signers, allowUnsigned: true })).rejects.toMatchObject({
      reason: 'bundle_signature_invalid',
    });
  });
});

describe('attack: alg none / unsigned documents', () => {
  it('rejects a document without a signature', async () => {
    const { signers } = await setup();
    await expect(verifyDocument(sampleBundle(), { keys: signers })).rejects.toMatchObject({
      reason: 'unsigned_bundle_rejected',
    });
  });

  it('rejects the unsigned skeleton of the conformance vector', async () => {
    const { signers } = await setup();
    await expect(verifyDocument(sourceRulesVector().policy_bundle, { keys: signers })).rejects.toMatchObject({
      reason: 'unsigned_bundle_rejected',
    });
  });

  it('rejects alg none even with a signature value present', async () => {
    const { signers, signed } = await setup();
    const downgraded = { ...signed, signed_by: { ...signed.signed_by, alg: 'none' } };
    await expect(verifyDocument(downgraded, { keys: signers })).rejects.toMatchObject({
      reason: 'unsigned_bundle_rejected',
    });
  });

  it('rejects a signed document stripped to unsigned-skeleton', async () => {
    const { signers, signed } = await setup();
    const stripped = { ...signed, signature: { format: 'unsigned-skeleton', value: '' } };
    await expect(verifyDocument(stripped, { keys: signers })).rejects.toMatchObject({
      reason: 'unsigned_bundle_rejected',
    });
  });

  it('accepts unsigned documents only with allowUnsigned', async () => {
    await expect(
      verifyDocument(sourceRulesVector().policy_bundle, { keys: [], allowUnsigned: true }),
    ).resolves.toEqual({ signed: false });
    await expect(verifyDocument(sampleBundle(), { keys: [], allowUnsigned: true })).resolves.toEqual({
      signed: false,
    });
  });
});
