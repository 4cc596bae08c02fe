import { expect } from 'vitest';
import { auditEventSchema, type AuditEvent } from '../../pkg/audit/index.js';
import type { ReasonCode } from '../../pkg/authcore/index.js';
import { loadPolicyBundle, signDocument, type LoadedPolicy } from '../../pkg/bundle/index.js';
import type { World } from '../helpers/fixture.js';

/** Re-sign the world's policy bundle with a patch (same bundle signer), and load it. */
export async function patchedPolicy(
  world: World,
  patch: (doc: Record<string, unknown>) => void,
): Promise<LoadedPolicy> {
  const doc = structuredClone(world.policyDoc);
  delete doc.signature;
  delete doc.signed_by;
  patch(doc);
  const signed = await signDocument(doc, world.bundleSigner, {
    issuer: 'https://bundles.example',
    kid: 'bundle-signer-1',
  });
  return loadPolicyBundle(signed, {
    signers: [{ kid: 'bundle-signer-1', key: world.bundleSigner.publicKey }],
  });
}

/** Revoke every passport of a subject. */
export function revokeSubject(subject: string) {
  return (doc: Record<string, unknown>) => {
    doc.revocations = [{ kind: 'subject', value: subject }];
  };
}

/** The secrets of a signed request that must never appear in an audit event. */
export function secretsOf(s: { passport: string; headers: Readonly<Record<string, string>> }): string[] {
  const [, , signature] = s.passport.split('.');
  return [s.passport, signature!, s.headers['x-trustplane-proof']!];
}

/** One schema-valid audit event per decision, with no passport, signature or proof in it. */
export function expectOneEvent(
  events: readonly AuditEvent[],
  expected: { decision: 'allow' | 'deny'; reason?: ReasonCode; route_id?: string; status: number },
  secrets: readonly string[] = [],
): AuditEvent {
  expect(events).toHaveLength(1);
  const event = auditEventSchema.parse(events[0]);
  expect(event).toMatchObject(expected);
  if (expected.reason === undefined) expect(event.reason).toBeUndefined();
  if (expected.route_id === undefined) expect(event.route_id).toBeUndefined();
  expect(Object.keys(event).filter((k) => /authorization|proof|passport|token/i.test(k))).toEqual([]);
  const text = JSON.stringify(event);
  expect(text).not.toMatch(/Bearer|eyJ/);
  for (const secret of secrets) expect(text).not.toContain(secret);
  return event;
}
