/**
 * Writes docs/errors.md, the table of every reason code, from the registry (the one source of
 * truth: pkg/authcore/reason-codes.ts). test/docs.test.ts checks the committed file lists every code.
 *
 *   npx tsx scripts/generate-errors-doc.ts           # (re)write docs/errors.md
 *   npx tsx scripts/generate-errors-doc.ts --check   # exit 1 when docs/errors.md is not current
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import prettier from 'prettier';
import {
  REASON_CODES,
  REASON_CODE_LIST,
  type ComponentReasonLayer,
  type HttpReasonLayer,
  type ReasonCode,
} from '../pkg/authcore/reason-codes.js';

const TARGET = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'errors.md');

/** One section per layer, in this order; a new layer must be described here before it can be listed. */
const HTTP_LAYERS: Readonly<Record<HttpReasonLayer, string>> = {
  request: 'The request itself, before any credential is looked at.',
  passport: 'The passport: format, signature, issuer and key, lifetime, audience, proof key.',
  policy: 'The route policy of the policy bundle: route, revocations, sources, binding, context, freshness.',
  proof: 'The request proof: the signed transcript of the exact request.',
  replay: 'One-time use of the passport `jti`.',
  dependency: 'A dependency of the enforcement point failed; the request is denied (fail closed).',
  broker:
    'Passport issuance. The broker answers them in broker-ipc-v1 denies (`reason_code`); the status is what a broker-backed HTTP endpoint would answer.',
  bundle:
    'Loading or editing trust material and policy bundles (CLI and loaders), not an answer to a request (`—` in the README table).',
};

const COMPONENT_LAYERS: Readonly<Record<ComponentReasonLayer, string>> = {
  svid: 'X.509-SVID verification, SPIFFE trust bundles and SVID sources: `SvidError` (`trustplane/broker`). The broker answers any of them as `workload_attestation_failed` with `details.svid_error` = the code.',
  spiffe_id:
    "SPIFFE ID parsing: `SpiffeIdError` (`trustplane/broker`). The messages are go-spiffe's, byte for byte.",
  workload_api:
    'The SPIFFE Workload API client: `WorkloadApiError` (`trustplane/broker`), with non-secret `details` (gRPC status, endpoint, field).',
  receipt: 'Receipt verification: `ReceiptError` (`trustplane/audit`, `trustplane receipt verify`).',
  ledger:
    'The audit ledger sinks and readers: `LedgerError` (`trustplane/audit`), thrown or reported through `onError`; `details.sqlstate` is the PostgreSQL SQLSTATE. `trustplane audit verify` exits 1 with `audit_chain_broken`. A durable write a route waits for fails with `audit_unavailable` instead.',
  broker_ipc:
    'The broker-ipc-v1 client: `BrokerIpcError` (`trustplane/broker`): the broker did not answer with a valid response (a deny is an answer, not this error).',
  setup:
    'Setting up a command or a process: flags, files, listen addresses, optional dependencies. The CLI prints them as one line, `trustplane: <code>: <message>` (exit status 2 for `usage` and `config`, 1 otherwise); `dependency_missing` is also thrown by the library when an optional peer dependency is not installed.',
};

function table(codes: readonly ReasonCode[]): string {
  const rows = codes.map((code) => {
    const info = REASON_CODES[code];
    return `| \`${code}\` | ${info.status} | ${info.retryable ? 'yes' : 'no'} | ${info.summary} |`;
  });
  return ['| code | HTTP | retryable | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

function sections(layers: Readonly<Record<string, string>>): string {
  return Object.entries(layers)
    .map(([layer, text]) => {
      const codes = REASON_CODE_LIST.filter((code) => REASON_CODES[code].layer === layer);
      return `### \`${layer}\`\n\n${text}\n\n${table(codes)}\n`;
    })
    .join('\n');
}

/** The text of docs/errors.md (formatted with the repository's Prettier settings). */
export async function renderErrorsDoc(): Promise<string> {
  const listed = new Set<string>([...Object.keys(HTTP_LAYERS), ...Object.keys(COMPONENT_LAYERS)]);
  const unlisted = REASON_CODE_LIST.filter((code) => !listed.has(REASON_CODES[code].layer));
  if (unlisted.length > 0) throw new Error(`no section for the layer of ${unlisted.join(', ')}`);
  const markdown = `# Reason codes

<!-- Generated from pkg/authcore/reason-codes.ts by scripts/generate-errors-doc.ts; do not edit. -->

Every failure carries one code from one registry, \`REASON_CODES\` in
[\`pkg/authcore/reason-codes.ts\`](../pkg/authcore/reason-codes.ts): HTTP deny bodies
(\`{"allowed":false,"reason":"<code>"}\`), audit events, broker-ipc-v1 denies, CLI errors
(\`trustplane: <code>: <message>\`) and the errors the library throws (\`TrustplaneError\` and its
subclasses carry it as \`reason\`, so \`switch (err.reason)\` narrows). Codes are public API: added,
never renamed.

- **HTTP**: for the HTTP-facing layers, the status an enforcement point answers with (the
  [README table](../README.md#reason-codes)). For the component layers, the status to use if the
  failure is ever surfaced over HTTP: no enforcement point answers a request with them.
- **retryable** (\`isRetryableReason(code)\`): the same call may succeed if retried later unchanged (a
  dependency was down, slow, or not ready). Otherwise the request, the credentials, the configuration
  or the data must change first.

What to check for each HTTP-facing code: the troubleshooting table of
[docs/operations.md](operations.md#troubleshooting).

## HTTP-facing layers

${sections(HTTP_LAYERS)}
## Component layers

Thrown by a library component to its caller (or reported through an \`onError\` callback). Each class
extends \`TrustplaneError\`: \`reason\` is one of the codes below, \`status\` the registry's, and
\`details\` never hold secrets (no keys, certificates, tokens or passwords).

${sections(COMPONENT_LAYERS)}`;
  const options = (await prettier.resolveConfig(TARGET)) ?? {};
  return prettier.format(markdown, { ...options, parser: 'markdown' });
}

async function main(): Promise<number> {
  const content = await renderErrorsDoc();
  if (process.argv.includes('--check')) {
    const current = await readFile(TARGET, 'utf8').catch(() => undefined);
    if (current === content) return 0;
    console.error('docs/errors.md is not current: run npx tsx scripts/generate-errors-doc.ts');
    return 1;
  }
  await writeFile(TARGET, content);
  console.log('wrote docs/errors.md');
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
