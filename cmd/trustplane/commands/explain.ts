import type { Command } from 'commander';
import { MemoryReplayStore, parsePublicKey } from '../../../pkg/authcore/index.js';
import { loadPolicyBundle } from '../../../pkg/bundle/index.js';
import { verifyRequest, type Decision } from '../../../pkg/verifier/index.js';
import {
  CliError,
  collect,
  nowSeconds,
  parseIntOption,
  readJsonFile,
  readJsonValue,
  readValue,
} from '../io.js';
import { loadTrustRegistry } from './bundle.js';
import { requestBodyAndHeaders } from './sign.js';

interface ExplainFlags {
  method: string;
  url: string;
  header?: string[];
  body?: string;
  bodyFile?: string;
  signed: string;
  trustMaterial: string;
  policyBundle: string;
  bundlePublicKey?: string[];
  devAllowUnsigned?: boolean;
  publicOrigin?: string;
  now?: number;
}

/** The verifier's stages, in the order it runs them (pkg/verifier/verify-request.ts). */
const STAGES = ['parse', 'path', 'route', 'passport', 'policy', 'freshness', 'proof', 'replay'] as const;

/** Fields of a binding deny, with what they mean, in the order an operator compares them. */
const INPUTS: readonly [string, string][] = [
  ['origin', 'origin'],
  ['origin_from', 'origin taken from'],
  ['request_authority', 'request Host'],
  ['method', 'method'],
  ['path', 'path'],
  ['query', 'normalized query'],
  ['covered_headers', 'covered headers'],
  ['body_sha256', 'body sha256'],
];

/** The stage-by-stage lines of a decision. */
export function explainDecision(decision: Decision): string[] {
  const failedAt = decision.allowed ? undefined : STAGES.indexOf(decision.stage as (typeof STAGES)[number]);
  const lines: string[] = [];
  STAGES.forEach((stage, i) => {
    if (decision.allowed || failedAt === -1 || i < failedAt!) {
      const note =
        stage === 'route' && decision.routeId !== undefined
          ? `  ${decision.routeId}`
          : stage === 'passport' && decision.subject !== undefined
            ? `  ${decision.subject} from ${decision.issuer ?? '?'}`
            : '';
      lines.push(`${stage.padEnd(10)}ok${note}`);
    } else if (i === failedAt) {
      lines.push(`${stage.padEnd(10)}FAIL  ${decision.reason}: ${decision.message}`);
      const details = decision.details;
      for (const [key, label] of INPUTS) {
        if (details[key] !== undefined)
          lines.push(`${''.padEnd(10)}  ${label.padEnd(18)}${String(details[key])}`);
      }
      for (const [key, value] of Object.entries(details)) {
        if (!INPUTS.some(([k]) => k === key))
          lines.push(`${''.padEnd(10)}  ${key.padEnd(18)}${String(value)}`);
      }
    } else {
      lines.push(`${stage.padEnd(10)}not reached`);
    }
  });
  lines.push(
    decision.allowed
      ? `decision  allow 200 (${decision.subject} on ${decision.routeId})`
      : `decision  deny ${decision.status} ${decision.reason}`,
  );
  return lines;
}

/** `trustplane explain` */
export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description(
      'Explain how the verifier decides one request (made by trustplane sign --json), stage by stage; a binding mismatch names the transcript inputs it used.',
    )
    .requiredOption('--signed <headers>', 'the proof headers trustplane sign --json printed (@file or JSON)')
    .option('--method <method>', 'HTTP method as sent', 'GET')
    .requiredOption('--url <url>', 'the URL as sent (the verifier sees this, whatever was signed)')
    .option('--header <header>', "request header as sent, 'Name: value' (repeatable)", collect)
    .option('--body <text>', 'request body as sent (UTF-8)')
    .option('--body-file <file>', 'request body as sent, from a file (exact bytes)')
    .requiredOption('--trust-material <file>', 'trust material document')
    .requiredOption('--policy-bundle <file>', 'policy bundle document')
    .option('--bundle-public-key <key>', 'key that signs both documents (repeatable; @file)', collect)
    .option('--dev-allow-unsigned', 'accept unsigned documents (development only)')
    .option('--public-origin <origin>', "the adapter's publicOrigin, if it has one")
    .option('--now <epoch>', 'decision time, epoch seconds (default now)', parseIntOption('--now'))
    .addHelpText(
      'after',
      `
The request is verified as the adapter would (a fresh replay store: no jti is consumed anywhere),
and each stage is printed: ok, FAIL with the reason, or not reached. For request_binding_mismatch
and invalid_request_proof it prints what the transcript was rebuilt from: the origin and where it
came from (publicOrigin, the API's base_url, or the request's Host), method, path, normalized
query, covered header names and body digest. Never a secret: no passport, proof or header value.

Example:
  trustplane sign --private-key @caller.key ... --method POST --url http://127.0.0.1:8080/v1/orders \\
    --route-id orders.create --body '{"qty":2}' --json > signed.json
  trustplane explain --signed @signed.json --method POST --url http://127.0.0.1:8080/v1/orders \\
    --body '{"qty":2000}' --trust-material trust.json --policy-bundle policy.json \\
    --bundle-public-key @bundle-signer.pub`,
    )
    .action(async (opts: ExplainFlags) => {
      const signed = readJsonValue(opts.signed, '--signed');
      if (typeof signed !== 'object' || signed === null || Array.isArray(signed)) {
        throw new CliError('--signed must be the JSON object trustplane sign --json printed', 'usage', 2);
      }
      const { body, headers } = requestBodyAndHeaders(opts);
      for (const [name, value] of Object.entries(signed)) {
        if (typeof value !== 'string') throw new CliError(`--signed: ${name} is not a string`, 'usage', 2);
        headers[name.toLowerCase()] = value;
      }
      const keys = opts.bundlePublicKey;
      if ((keys === undefined || keys.length === 0) && !opts.devAllowUnsigned) {
        throw new CliError('--bundle-public-key is required (or --dev-allow-unsigned)', 'usage', 2);
      }
      const trust = await loadTrustRegistry(opts.trustMaterial, {
        ...(keys !== undefined ? { trustMaterialPublicKey: keys } : {}),
        ...(opts.devAllowUnsigned ? { devAllowUnsigned: true } : {}),
      });
      const doc = readJsonFile(opts.policyBundle);
      const kid = (doc as { signed_by?: { kid?: unknown } }).signed_by?.kid;
      const signers = await Promise.all(
        (keys ?? []).map(async (value, i) => ({
          kid: `${typeof kid === 'string' ? kid : 'unsigned'}${i === 0 ? '' : `#${i}`}`,
          key: await parsePublicKey(readValue(value)),
        })),
      );
      const now = opts.now ?? nowSeconds();
      const policy = await loadPolicyBundle(doc, {
        signers,
        allowUnsigned: opts.devAllowUnsigned === true,
        now,
      });
      const method = opts.method.toUpperCase();
      const request = new Request(opts.url, {
        method,
        headers,
        ...(body !== undefined && method !== 'GET' && method !== 'HEAD' ? { body: Buffer.from(body) } : {}),
      });
      const decision = await verifyRequest(request, {
        trust,
        policy,
        replayStore: new MemoryReplayStore(),
        clock: () => now,
        ...(opts.publicOrigin !== undefined ? { publicOrigin: opts.publicOrigin } : {}),
      });
      process.stdout.write(`request   ${method} ${opts.url}\n${explainDecision(decision).join('\n')}\n`);
      if (!decision.allowed) {
        throw new CliError(`denied at the ${decision.stage} stage (above)`, decision.reason);
      }
    });
}
