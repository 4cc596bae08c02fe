/**
 * Writes the JSON Schemas of the signed documents from their zod schemas (the one source of truth).
 *
 *   npx tsx scripts/generate-schemas.ts           # (re)write schemas/*.json
 *   npx tsx scripts/generate-schemas.ts --check   # exit 1 when schemas/ is not current (CI)
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  MAX_MCP_PATTERN_INPUT,
  mcpArgumentRuleSchema,
  policyBundleSchema,
  policySourceSchema,
  spiffeBundleKeySchema,
  trustMaterialSchema,
} from '../pkg/bundle/index.js';
import { brokerIpcRequestSchema, brokerIpcResponseSchema } from '../pkg/proof/broker-ipc-v1.js';
import { issuanceGrantSchema, issuancePolicySchema } from '../pkg/broker/issuance-policy.js';

const SCHEMA_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'schemas');
const BASE_ID = 'urn:trustplane:schema:';

type JsonSchema = Record<string, unknown>;

/*
 * Refinements (cross-field rules) do not exist in JSON Schema output; the ones that can be written
 * as JSON Schema are added here so editors and other tooling see them too. The rest (unique ids,
 * references between sections) are enforced by the loaders only, and said so in the description.
 */
function override(ctx: { zodSchema: unknown; jsonSchema: JsonSchema }): void {
  if (ctx.zodSchema === policySourceSchema) {
    ctx.jsonSchema.oneOf = [
      { required: ['subject_exact'], not: { required: ['subject_prefix'] } },
      { required: ['subject_prefix'], not: { required: ['subject_exact'] } },
    ];
  }
  if (ctx.zodSchema === issuanceGrantSchema) {
    ctx.jsonSchema.oneOf = [
      { required: ['subject_exact'], not: { required: ['subject_prefix'] } },
      { required: ['subject_prefix'], not: { required: ['subject_exact'] } },
    ];
  }
  if (ctx.zodSchema === mcpArgumentRuleSchema) {
    // A rule with `pattern` needs a bounded `max_length` (the string a pattern runs on).
    ctx.jsonSchema.if = { required: ['pattern'] };
    ctx.jsonSchema.then = {
      required: ['max_length'],
      properties: { max_length: { maximum: MAX_MCP_PATTERN_INPUT } },
    };
  }
  if (ctx.zodSchema === spiffeBundleKeySchema) {
    ctx.jsonSchema.allOf = [
      {
        if: { properties: { use: { const: 'x509-svid' } } },
        then: { required: ['x5c'], properties: { x5c: { maxItems: 1 } } },
      },
      { if: { properties: { use: { const: 'jwt-svid' } } }, then: { required: ['kid'] } },
    ];
  }
}

function generate(schema: z.ZodType, name: string, title: string, description: string): string {
  const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', override }) as JsonSchema;
  const out = { $id: `${BASE_ID}${name}`, title, description, ...json };
  return `${JSON.stringify(out, null, 2)}\n`;
}

const files: Record<string, string> = {
  'trustplane-bundle-v1.schema.json': generate(
    policyBundleSchema,
    'trustplane-bundle-v1',
    'TrustPlane policy bundle (trustplane-bundle-v1)',
    'Generated from pkg/bundle/policy-bundle-schema.ts by scripts/generate-schemas.ts; do not edit. ' +
      'The loader additionally enforces: unique api_id, route_group_id and route_id; route_groups[].api_id ' +
      'and scopes[].route_group_id reference existing entries; no two routes share a method and path ' +
      'template shape; path_template syntax; expires_at after issued_at.',
  ),
  'trustplane-trust-material-v1.schema.json': generate(
    trustMaterialSchema,
    'trustplane-trust-material-v1',
    'TrustPlane trust material (trustplane-trust-material-v1)',
    'Generated from pkg/bundle/trust-material-schema.ts by scripts/generate-schemas.ts; do not edit. ' +
      'The loader additionally enforces: unique issuer names, kids within an issuer, SPIFFE bundle trust ' +
      'domains and receipt kids; key exp after nbf; expires_at after issued_at.',
  ),
  'trustplane-broker-ipc-v1.request.schema.json': generate(
    brokerIpcRequestSchema,
    'trustplane-broker-ipc-v1.request',
    'TrustPlane broker-ipc-v1 request (issue_request_bound_passport)',
    'Generated from pkg/proof/broker-ipc-v1.ts by scripts/generate-schemas.ts; do not edit. One JSON object per ' +
      'line on the broker socket, at most 1 MiB. The broker additionally checks the query and header ' +
      'digests against each other (docs/broker.md).',
  ),
  'trustplane-broker-ipc-v1.response.schema.json': generate(
    brokerIpcResponseSchema,
    'trustplane-broker-ipc-v1.response',
    'TrustPlane broker-ipc-v1 response',
    'Generated from pkg/proof/broker-ipc-v1.ts by scripts/generate-schemas.ts; do not edit.',
  ),
  'trustplane-broker-issuance-v1.schema.json': generate(
    issuancePolicySchema,
    'trustplane-broker-issuance-v1',
    'TrustPlane broker issuance policy (trustplane-broker-issuance-v1)',
    'Generated from pkg/broker/issuance-policy.ts by scripts/generate-schemas.ts; do not edit.',
  ),
};

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  let stale = 0;
  if (!check) await mkdir(SCHEMA_DIR, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    const target = path.join(SCHEMA_DIR, file);
    if (check) {
      const current = await readFile(target, 'utf8').catch(() => undefined);
      if (current !== content) {
        console.error(`schemas/${file} is not current: run npm run schemas`);
        stale++;
      }
    } else {
      await writeFile(target, content);
      console.log(`wrote schemas/${file}`);
    }
  }
  return stale === 0 ? 0 : 1;
}

process.exitCode = await main();
