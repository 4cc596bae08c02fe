import type { Command } from 'commander';
import {
  createIssuerRegistry,
  generateSigningKey,
  isKeyBinding,
  issuePassport,
  MemoryReplayStore,
  parsePublicKey,
  type KeyBinding,
  type SigningKey,
  type TrustedIssuer,
} from '../../../pkg/authcore/index.js';
import { loadPolicyBundle, type LoadedPolicy } from '../../../pkg/bundle/index.js';
import { signRequest } from '../../../pkg/proof/index.js';
import { verifyRequest } from '../../../pkg/verifier/index.js';
import { CliError, collect, nowSeconds, readJsonFile, readValue } from '../io.js';

/*
 * `trustplane test <bundle> <cases.json>`: the `opa test` of policy bundles. Each case describes a
 * caller (issuer, subject, key binding, ctx, provenance) and a request; the command mints a passport
 * and a proof for it with a throwaway key, trusts that key for the case's issuer, and runs the real
 * verifier against the bundle. So a CI pipeline that changes policy checks the decisions it
 * promises (allow, or deny with a reason) before the bundle is signed and shipped.
 */

interface Caller {
  issuer: string;
  subject: string;
  trustDomain: string;
  sourceType: string;
  keyBinding: KeyBinding;
  maxKeyBinding: KeyBinding;
  audience: string | undefined;
  ctx: Record<string, unknown> | undefined;
  provenance: Record<string, unknown> | undefined;
}

interface Case {
  name: string;
  method: string;
  target: string;
  routeId: string | undefined;
  headers: Record<string, string>;
  body: string | undefined;
  caller: Caller;
  expect: { decision: 'allow' | 'deny'; reason: string | undefined };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(where: string, value: unknown, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string' || value === '')
    throw new CliError(`${where} must be a non-empty string`, 'usage', 2);
  return value;
}

function binding(where: string, value: unknown, fallback: KeyBinding): KeyBinding {
  if (value === undefined) return fallback;
  if (!isKeyBinding(value)) throw new CliError(`${where} is not a key binding`, 'usage', 2);
  return value;
}

function optionalObject(where: string, value: unknown): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw new CliError(`${where} must be an object`, 'usage', 2);
  return value;
}

/** Parse the cases file (untrusted shape: every field checked, unknown ones refused). */
export function parseCases(json: unknown, trustDomain: string): { now: number | undefined; cases: Case[] } {
  if (!isObject(json) || !Array.isArray(json.cases) || json.cases.length === 0) {
    throw new CliError('the cases file must be {"cases": [ ... ]} with at least one case', 'usage', 2);
  }
  for (const key of Object.keys(json)) {
    if (key !== 'cases' && key !== 'now')
      throw new CliError(`unknown key ${JSON.stringify(key)} in the cases file`, 'usage', 2);
  }
  const now = json.now;
  if (now !== undefined && !Number.isSafeInteger(now))
    throw new CliError('"now" must be epoch seconds', 'usage', 2);
  const cases = json.cases.map((raw: unknown, i): Case => {
    const at = `cases[${i}]`;
    if (!isObject(raw)) throw new CliError(`${at} must be an object`, 'usage', 2);
    for (const key of Object.keys(raw)) {
      if (!['name', 'request', 'caller', 'expect'].includes(key)) {
        throw new CliError(`unknown key ${JSON.stringify(key)} in ${at}`, 'usage', 2);
      }
    }
    const request = raw.request;
    const caller = raw.caller;
    const expect = raw.expect;
    if (!isObject(request)) throw new CliError(`${at}.request must be an object`, 'usage', 2);
    if (!isObject(caller)) throw new CliError(`${at}.caller must be an object`, 'usage', 2);
    if (!isObject(expect)) throw new CliError(`${at}.expect must be an object`, 'usage', 2);
    const decision = expect.decision;
    if (decision !== 'allow' && decision !== 'deny') {
      throw new CliError(`${at}.expect.decision must be "allow" or "deny"`, 'usage', 2);
    }
    const headers = optionalObject(`${at}.request.headers`, request.headers) ?? {};
    const keyBinding = binding(`${at}.caller.key_binding`, caller.key_binding, 'software');
    return {
      name: str(`${at}.name`, raw.name, `case ${i + 1}`),
      method: str(`${at}.request.method`, request.method, 'GET').toUpperCase(),
      target: str(`${at}.request.url (or path)`, request.url ?? request.path),
      routeId: request.route_id === undefined ? undefined : str(`${at}.request.route_id`, request.route_id),
      headers: Object.fromEntries(
        Object.entries(headers).map(([k, v]) => [k.toLowerCase(), str(`${at}.request.headers.${k}`, v)]),
      ),
      body: request.body === undefined ? undefined : str(`${at}.request.body`, request.body),
      caller: {
        issuer: str(`${at}.caller.issuer`, caller.issuer),
        subject: str(`${at}.caller.subject`, caller.subject),
        trustDomain: str(`${at}.caller.trust_domain`, caller.trust_domain, trustDomain),
        sourceType: str(`${at}.caller.source_type`, caller.source_type, 'software_jwks'),
        keyBinding,
        maxKeyBinding: binding(`${at}.caller.max_key_binding`, caller.max_key_binding, keyBinding),
        audience: caller.audience === undefined ? undefined : str(`${at}.caller.audience`, caller.audience),
        ctx: optionalObject(`${at}.caller.ctx`, caller.ctx),
        provenance: optionalObject(`${at}.caller.provenance`, caller.provenance),
      },
      expect: {
        decision,
        reason: expect.reason === undefined ? undefined : str(`${at}.expect.reason`, expect.reason),
      },
    };
  });
  return { now: now as number | undefined, cases };
}

/** One throwaway key per issuer, trusted with the metadata the cases give it (which must agree). */
async function issuersFor(
  cases: readonly Case[],
): Promise<Map<string, { issuer: TrustedIssuer; key: SigningKey }>> {
  const out = new Map<string, { issuer: TrustedIssuer; key: SigningKey }>();
  for (const { caller } of cases) {
    const seen = out.get(caller.issuer);
    if (seen !== undefined) {
      const i = seen.issuer;
      if (
        i.trustDomain !== caller.trustDomain ||
        i.sourceType !== caller.sourceType ||
        i.maxKeyBinding !== caller.maxKeyBinding
      ) {
        throw new CliError(
          `cases give issuer ${caller.issuer} different trust_domain, source_type or max_key_binding`,
          'usage',
          2,
        );
      }
      continue;
    }
    const key = await generateSigningKey();
    out.set(caller.issuer, {
      key,
      issuer: {
        issuer: caller.issuer,
        trustDomain: caller.trustDomain,
        sourceType: caller.sourceType,
        maxKeyBinding: caller.maxKeyBinding,
        keys: new Map([['test-1', { kid: 'test-1', key: key.publicKey }]]),
      },
    });
  }
  return out;
}

/** Run one case: mint the passport and proof, verify, and say what came out. */
async function runCase(
  c: Case,
  policy: LoadedPolicy,
  issuers: Map<string, { issuer: TrustedIssuer; key: SigningKey }>,
  now: number,
): Promise<{ decision: 'allow' | 'deny'; reason: string | undefined; stage: string | undefined }> {
  const apis = policy.document.apis;
  const absolute = /^https?:\/\//i.test(c.target);
  const path = absolute ? new URL(c.target).pathname : c.target.split('?')[0]!;
  const match = policy.routeTable.resolve(c.method, path);
  const api = match?.api ?? apis[0]!;
  // Without a base_url the verifier takes the request's own origin: any one will do.
  const origin = (api.base_url ?? 'http://127.0.0.1').replace(/\/+$/, '');
  const url = absolute ? c.target : `${origin}${c.target}`;
  const { key, issuer } = issuers.get(c.caller.issuer)!;
  const passport = await issuePassport(
    {
      iss: issuer.issuer,
      sub: c.caller.subject,
      aud: c.caller.audience ?? api.audience,
      iat: now,
      exp: now + 120,
      jti: crypto.randomUUID(),
      trust_domain: c.caller.trustDomain,
      cnf: { kid: 'test-1', key_binding: c.caller.keyBinding, public_key_b64url: key.publicKey.x },
      ...(c.caller.ctx !== undefined ? { ctx: c.caller.ctx as never } : {}),
      ...(c.caller.provenance !== undefined ? { provenance: c.caller.provenance as never } : {}),
    },
    key,
    { kid: 'test-1' },
  );
  const signed = await signRequest({
    method: c.method,
    url,
    routeId: c.routeId ?? match?.route.route_id ?? 'unknown',
    passport,
    requestKey: key,
    headers: c.headers,
    ...(c.body !== undefined ? { body: c.body } : {}),
  });
  const request = new Request(url, {
    method: c.method,
    headers: { ...c.headers, ...signed.headers },
    ...(c.body !== undefined ? { body: c.body } : {}),
  });
  const trust = createIssuerRegistry([...issuers.values()].map((i) => i.issuer));
  const decision = await verifyRequest(request, {
    trust,
    policy,
    replayStore: new MemoryReplayStore(),
    clock: () => now,
  });
  return decision.allowed
    ? { decision: 'allow', reason: undefined, stage: undefined }
    : { decision: 'deny', reason: decision.reason, stage: decision.stage };
}

function formatRows(rows: readonly string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

/** `trustplane test` */
export function registerPolicyTest(program: Command): void {
  program
    .command('test')
    .description(
      'Run a policy bundle against request cases, each with its expected decision; exit 1 on any difference (the opa test of policy bundles).',
    )
    .argument('<bundle>', 'policy bundle (signed, or unsigned before signing)')
    .argument('<cases>', 'cases file (JSON)')
    .option('--public-key <key>', 'check the bundle signature with this key (repeatable; @file)', collect)
    .option('--json', 'print the results as JSON instead of a table')
    .addHelpText(
      'after',
      `
Cases file:
  {"now": 1767225600,                       (optional; default: the current time)
   "cases": [{"name": "orders client may search",
              "request": {"method": "GET", "path": "/v1/orders/search"},
              "caller": {"issuer": "https://issuer.example/software-jwks", "subject": "service:orders-client"},
              "expect": {"decision": "allow"}},
             {"name": "another subject is refused",
              "request": {"method": "GET", "path": "/v1/orders/search"},
              "caller": {"issuer": "https://issuer.example/software-jwks", "subject": "service:intruder"},
              "expect": {"decision": "deny", "reason": "source_subject_mismatch"}}]}

request: method (GET), path (the origin is the API's base_url) or url, headers, body, route_id.
caller: issuer, subject, trust_domain (the bundle's), source_type (software_jwks), key_binding
(software), max_key_binding (= key_binding), audience (the API's), ctx, provenance. Each issuer
gets a throwaway key, trusted as the caller describes it; the bundle's routes, sources, key
binding, context, provenance, revocation and freshness rules decide.

Example:
  trustplane test policy.json policy.cases.json`,
    )
    .action(async (bundleFile: string, casesFile: string, opts: { publicKey?: string[]; json?: boolean }) => {
      const doc = readJsonFile(bundleFile);
      let signers: { kid: string; key: Awaited<ReturnType<typeof parsePublicKey>> }[] = [];
      let input = doc;
      if (opts.publicKey !== undefined) {
        const kid =
          isObject(doc) && isObject(doc.signed_by) && typeof doc.signed_by.kid === 'string'
            ? doc.signed_by.kid
            : 'unsigned';
        signers = await Promise.all(
          opts.publicKey.map(async (value, i) => ({
            kid: i === 0 ? kid : `${kid}#${i}`,
            key: await parsePublicKey(readValue(value)),
          })),
        );
      } else if (isObject(doc)) {
        // Policy under test, not in force: its signature (if any) is not checked without --public-key.
        const { signature: _signature, signed_by: _signedBy, ...unsigned } = doc;
        input = unsigned;
      }
      const file = readJsonFile(casesFile);
      const now0 = nowSeconds();
      const policy = await loadPolicyBundle(input, { signers, allowUnsigned: opts.publicKey === undefined });
      const { now = now0, cases } = parseCases(file, policy.document.trust_domain);
      const issuers = await issuersFor(cases);
      const results = [];
      for (const c of cases) {
        const got = await runCase(c, policy, issuers, now);
        const ok =
          got.decision === c.expect.decision &&
          (c.expect.reason === undefined || got.reason === c.expect.reason);
        results.push({ name: c.name, expected: c.expect, got, ok });
      }
      const failed = results.filter((r) => !r.ok).length;
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ cases: results.length, failed, results }, null, 2)}\n`);
      } else {
        const show = (d: { decision: string; reason?: string | undefined }) =>
          d.reason !== undefined ? `${d.decision} ${d.reason}` : d.decision;
        const rows = [
          ['#', 'case', 'expected', 'got', 'result'],
          ...results.map((r, i) => [
            String(i + 1),
            r.name,
            show(r.expected),
            show(r.got),
            r.ok ? 'ok' : 'DIFF',
          ]),
        ];
        process.stdout.write(
          `${formatRows(rows)}\n${results.length - failed} of ${results.length} cases as expected\n`,
        );
      }
      if (failed > 0) {
        throw new CliError(
          `${failed} of ${results.length} cases did not get the expected decision`,
          'policy_test_failed',
        );
      }
    });
}
