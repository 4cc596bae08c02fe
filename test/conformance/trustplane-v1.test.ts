import { describe, expect, it } from 'vitest';
import {
  REQUIRED_PASSPORT_CLAIMS,
  SIGNER_CLASSES,
  passportClaimsSchema,
  passportCnfSchema,
} from '../../pkg/authcore/index.js';
import { brokerIpcRequestSchema, brokerIpcResponseSchema } from '../../pkg/broker/index.js';
import { bodySha256, buildTranscript, normalizeQuery } from '../../pkg/proof/index.js';
import { readVectorJson } from '../helpers/vectors.js';

interface Manifest {
  version: string;
  vectors: { id: string; contracts: string[]; path: string }[];
}

const manifest = readVectorJson<Manifest>('trustplane-v1/manifest.json');
const load = (p: string) => readVectorJson<Record<string, unknown>>(`trustplane-v1/${p.split('/').pop()!}`);

interface TranscriptVector {
  raw_request: { query: string; body_utf8: string; headers: { name: string; value: string }[] };
  transcript: {
    method: string;
    scheme: string;
    authority: string;
    path: string;
    audience: string;
    route_id: string;
    content_encoding: string;
    query_normalization: { algorithm: string; normalized: string; sha256: string };
    query_sha256: string;
    headers: { allow_list: string[]; selected: { name: string; value_sha256: string }[] };
    body_sha256: string;
    passport_jti: string;
    nonce: string;
    issued_at: number;
    time_bucket: number;
    key_binding: string;
    covered_fields: string[];
  };
  canonical: { lines: string[]; sha256: string; line_separator: string; trailing_newline: boolean };
}

async function checkTranscript(v: TranscriptVector): Promise<void> {
  const t = v.transcript;
  const headers = new Map(v.raw_request.headers.map((h) => [h.name.toLowerCase(), h.value]));
  expect(normalizeQuery(v.raw_request.query)).toBe(t.query_normalization.normalized);
  expect(await bodySha256(v.raw_request.body_utf8)).toBe(t.body_sha256);
  const built = await buildTranscript({
    method: t.method,
    scheme: t.scheme,
    authority: t.authority,
    path: t.path,
    query: v.raw_request.query,
    audience: t.audience,
    routeId: t.route_id,
    contentEncoding: t.content_encoding,
    coveredHeaders: t.headers.allow_list,
    headers,
    bodySha256: await bodySha256(v.raw_request.body_utf8),
    passportJti: t.passport_jti,
    nonce: t.nonce,
    issuedAt: t.issued_at,
    keyBinding: t.key_binding,
  });
  expect(built.lines).toEqual(v.canonical.lines);
  expect(built.lines).toHaveLength(20);
  expect(built.canonical).toBe(v.canonical.lines.join('\n'));
  expect(built.canonical.endsWith('\n')).toBe(false);
  expect(built.sha256).toBe(v.canonical.sha256);
  expect(built.digest).toHaveLength(32);
  // Every covered field is a line key, in order, after the version line.
  expect(built.lines.slice(1).map((l) => l.slice(0, l.indexOf('=')))).toEqual(t.covered_fields);
  expect(built.lines).toContain(`query_sha256=${t.query_sha256}`);
  expect(built.lines).toContain(`time_bucket=${t.time_bucket}`);
  expect(built.lines).toContain(
    `headers.selected=${t.headers.selected.map((s) => `${s.name}:${s.value_sha256}`).join(',')}`,
  );
}

const checks: Record<string, (v: Record<string, unknown>) => Promise<void> | void> = {
  'transcript-v1': (v) => checkTranscript(v as unknown as TranscriptVector),
  'body-sha256': async (v) => {
    const vectors = v.vectors as { bytes_utf8: string; sha256: string }[];
    expect(vectors.length).toBeGreaterThan(0);
    for (const b of vectors) expect(await bodySha256(b.bytes_utf8)).toBe(b.sha256);
  },
  'passport-v1': (v) => {
    const claims = v.claims as Record<string, unknown>;
    expect(passportClaimsSchema.safeParse(claims).success).toBe(true);
    expect(passportCnfSchema.safeParse(claims.cnf).success).toBe(true);
    expect([...(v.required_claims as string[])]).toEqual([...REQUIRED_PASSPORT_CLAIMS]);
    for (const name of REQUIRED_PASSPORT_CLAIMS) {
      const [outer, inner] = name.split('.') as [string, string | undefined];
      const without = structuredClone(claims);
      if (inner === undefined) delete without[outer];
      else delete (without[outer] as Record<string, unknown>)[inner];
      const ok =
        passportClaimsSchema.safeParse(without).success &&
        passportCnfSchema.safeParse((without as { cnf?: unknown }).cnf).success;
      expect(ok, `claim ${name} must be required`).toBe(false);
    }
  },
  'signer-taxonomy-v1': (v) => {
    expect(SIGNER_CLASSES.map((c) => c.class)).toEqual(v.ordering);
    expect(SIGNER_CLASSES.map((c) => ({ class: c.class, rank: c.rank }))).toEqual(
      (v.classes as { class: string; rank: number }[]).map((c) => ({ class: c.class, rank: c.rank })),
    );
  },
  'broker-ipc-v1': async (v) => {
    const req = brokerIpcRequestSchema.parse(v.request);
    const res = brokerIpcResponseSchema.parse(v.response);
    expect(JSON.parse(JSON.stringify(req))).toEqual(v.request);
    expect(JSON.parse(JSON.stringify(res))).toEqual(v.response);
    expect(res.request_id).toBe(req.request_id);
    const http = req.http;
    expect(normalizeQuery(http.query.raw)).toBe(http.query.normalized);
    if (res.accepted) {
      // The stamp's transcript digest is reproducible from the request, the passport jti and
      // issued_at, with the requested key binding.
      const built = await buildTranscript({
        method: http.method,
        scheme: http.scheme,
        authority: http.authority,
        path: http.path,
        query: http.query.raw,
        audience: http.audience,
        routeId: http.route_id,
        contentEncoding: http.content_encoding,
        coveredHeaders: http.headers.allow_list,
        headers: () => undefined,
        bodySha256: http.body_sha256,
        passportJti: res.artifacts.passport.jti,
        nonce: http.nonce,
        issuedAt: res.issued_at,
        keyBinding: req.key_binding.requested_key_binding,
      });
      // headers.selected carries pre-hashed values in IPC; splice them in as the broker does.
      const selected = `headers.selected=${http.headers.selected.map((s) => `${s.name}:${s.value_sha256}`).join(',')}`;
      const lines = built.lines.map((l) => (l.startsWith('headers.selected=') ? selected : l));
      const { createHash } = await import('node:crypto');
      expect(createHash('sha256').update(lines.join('\n')).digest('hex')).toBe(
        res.artifacts.stamp.transcript_sha256,
      );
    } else {
      expect(res.reason_code).toBe('insufficient_key_binding');
      expect(res.error.code).toBe(res.reason_code);
    }
  },
};

describe('TrustPlane conformance v1 (manifest walk)', () => {
  it('manifest lists 8 vectors', () => {
    expect(manifest.version).toBe('trustplane-conformance-v1');
    expect(manifest.vectors).toHaveLength(8);
  });
  for (const entry of manifest.vectors) {
    const contract = entry.contracts[0]!;
    const check = checks[contract];
    it(`${entry.id} (${contract})`, async () => {
      if (contract === 'bundle-v1') {
        const { checkBundleVector } = await import('./bundle-v1-check.js');
        await checkBundleVector(load(entry.path));
        return;
      }
      expect(check, `no check for contract ${contract}`).toBeDefined();
      await check!(load(entry.path));
    });
  }
});
