import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { REASON_CODES, REASON_CODE_LIST } from '../pkg/authcore/index.js';
import { isComponentReason } from '../pkg/authcore/reason-codes.js';
import { ADAPTER_ENV } from '../pkg/adapter/resolve-adapter-config.js';
import { adapterConfigSchema } from '../pkg/adapter/config.js';
import { createAdapterMetrics } from '../pkg/runtime/metrics.js';
import { policyBundleConfigSchema, trustMaterialConfigSchema } from '../pkg/bundle/index.js';
import {
  contextPolicySchema,
  issuerKeySchema,
  policyApiSchema,
  policyBundleSchema,
  policyRouteGroupSchema,
  policyRouteSchema,
  policyScopeSchema,
  policySourceSchema,
  provenancePolicySchema,
  receiptKeySchema,
  revocationFeedSchema,
  revocationSchema,
  signedBySchema,
  spiffeBundleKeySchema,
  spiffeBundleSchema,
  trustedIssuerSchema,
  trustMaterialSchema,
} from '../pkg/bundle/index.js';
import { issuanceGrantSchema, issuancePolicySchema } from '../pkg/broker/issuance-policy.js';
import { configureAdapterCommand } from '../cmd/trustplane/commands/adapter.js';
import { registerBroker } from '../cmd/trustplane/commands/broker.js';
import { renderErrorsDoc } from '../scripts/generate-errors-doc.js';

const read = (file: string) => readFileSync(file, 'utf8');
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** `name` as a code span of its own. */
const codeSpan = (name: string) => new RegExp(`\`${escapeRegExp(name)}\``);
/** A flag as a code span, alone or followed by its argument (`--config <file>`). */
const flagSpan = (flag: string) => new RegExp(`\`${escapeRegExp(flag)}[\` ]`);
/** Markdown without its fenced code blocks (their `#` lines are not headings, their text not links). */
const prose = (md: string) => md.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '');
/** The text of a `## heading` section, up to the next `## `. */
function section(md: string, heading: string): string {
  const start = md.indexOf(`\n## ${heading}\n`);
  if (start < 0) return '';
  const end = md.indexOf('\n## ', start + 1);
  return md.slice(start, end < 0 ? undefined : end);
}
/** GitHub's heading anchors: lowercase, punctuation other than `-` and `_` dropped, spaces to `-`. */
function anchors(md: string): Set<string> {
  const out = new Set<string>();
  for (const m of prose(md).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    out.add(
      m[1]!
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    );
  }
  return out;
}

const readme = read('README.md');
const errorsDoc = read('docs/errors.md');
/** Codes an enforcement point (or the broker) answers with; the component layers' codes are not. */
const HTTP_FACING = REASON_CODE_LIST.filter((code) => !isComponentReason(code));
const configuration = read('docs/configuration.md');
const operations = read('docs/operations.md');
const brokerDoc = read('docs/broker.md');

describe('docs', () => {
  it('the README reason-code table lists every HTTP-facing code with its HTTP status, and links docs/errors.md', () => {
    expect(HTTP_FACING.length).toBeGreaterThan(40);
    const missing = HTTP_FACING.filter((code) => {
      const info = REASON_CODES[code];
      const status = info.layer === 'bundle' ? '—' : String(info.status);
      return !new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${status}\\s*\\|`).test(readme);
    });
    expect(missing).toEqual([]);
    expect(section(readme, 'Reason codes')).toContain('](docs/errors.md)');
  });
  it('the README shows the two commands (a runnable npm script, then the tests) and .ci/run runs the test command', () => {
    const two = section(readme, 'Two commands');
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    const run = /npm install && npm run ([a-z:-]+)/.exec(two)?.[1];
    expect(run !== undefined && Object.hasOwn(scripts, run), `first command runs a script: ${run}`).toBe(
      true,
    );
    expect(two).toContain('npm install && npm test');
    expect(read('.ci/run')).toMatch(/npm install[^\n]*\nnpm test/);
  });
  it('docs/adapter.md documents every adapter config key with its environment variable', () => {
    const doc = read('docs/adapter.md');
    const keys = Object.keys(adapterConfigSchema.shape);
    expect(keys.filter((k) => !new RegExp(`\\|\\s*\`${k}\`\\s*\\|`).test(doc))).toEqual([]);
    expect(Object.keys(ADAPTER_ENV).filter((name) => !doc.includes(`\`${name}\``))).toEqual([]);
    expect(Object.values(ADAPTER_ENV).filter((k) => !keys.includes(k))).toEqual([]);
  });
});

describe('docs/configuration.md', () => {
  it('lists every adapter config key in its table, with its environment variable', () => {
    const keys = Object.keys(adapterConfigSchema.shape);
    expect(keys.filter((k) => !new RegExp(`^\\|\\s*\`${k}\`\\s*\\|`, 'm').test(configuration))).toEqual([]);
    for (const [name, key] of Object.entries(ADAPTER_ENV)) {
      // The variable is on the row of its key.
      const row = new RegExp(`^\\|\\s*\`${key}\`\\s*\\|[^\\n]*\`${name}\``, 'm');
      expect(configuration, `${name} on the row of ${key}`).toMatch(row);
    }
  });

  it('names every `trustplane adapter` flag', () => {
    const flags = configureAdapterCommand(new Command()).options.map((o) => o.long!);
    expect(flags.length).toBeGreaterThan(30);
    expect(flags.filter((f) => !flagSpan(f).test(configuration))).toEqual([]);
  });

  it('names every `trustplane broker serve` flag, as docs/broker.md does', () => {
    const program = new Command();
    registerBroker(program);
    const serve = program.commands
      .find((c) => c.name() === 'broker')
      ?.commands.find((c) => c.name() === 'serve');
    const flags = serve?.options.map((o) => o.long!) ?? [];
    expect(flags.length).toBeGreaterThan(20);
    expect(flags.filter((f) => !flagSpan(f).test(configuration))).toEqual([]);
    expect(flags.filter((f) => !flagSpan(f).test(brokerDoc))).toEqual([]);
  });

  it('names every environment variable the CLI commands read', () => {
    const dir = 'cmd/trustplane/commands';
    const names = new Set<string>();
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      for (const m of read(path.join(dir, file)).matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g)) names.add(m[1]!);
    }
    expect(names.size).toBeGreaterThan(3);
    expect([...names].filter((n) => !codeSpan(n).test(configuration))).toEqual([]);
  });

  it('names every field of the trust material, the policy bundle, the build configs and the issuance policy', () => {
    const shapes = {
      trustMaterialSchema,
      trustedIssuerSchema,
      issuerKeySchema,
      spiffeBundleSchema,
      spiffeBundleKeySchema,
      receiptKeySchema,
      signedBySchema,
      policyBundleSchema,
      policyApiSchema,
      policyRouteGroupSchema,
      policyRouteSchema,
      policySourceSchema,
      policyScopeSchema,
      contextPolicySchema,
      provenancePolicySchema,
      revocationSchema,
      revocationFeedSchema,
      policyBundleConfigSchema,
      trustMaterialConfigSchema,
      issuancePolicySchema,
      issuanceGrantSchema,
    };
    const missing = Object.entries(shapes).flatMap(([name, schema]) =>
      Object.keys(schema.shape)
        .filter((field) => !codeSpan(field).test(configuration))
        .map((field) => `${name}.${field}`),
    );
    expect(missing).toEqual([]);
  });

  it('links every JSON Schema in schemas/', () => {
    const schemas = readdirSync('schemas').filter((f) => f.endsWith('.json'));
    expect(schemas.filter((f) => !configuration.includes(`(../schemas/${f})`))).toEqual([]);
  });
});

describe('docs/errors.md', () => {
  it('lists every registered code, with its status and retryable, in the section of its layer', () => {
    const missing = REASON_CODE_LIST.filter((code) => {
      const info = REASON_CODES[code];
      const layer = section(errorsDoc, isComponentReason(code) ? 'Component layers' : 'HTTP-facing layers');
      const own = layer.slice(layer.indexOf(`### \`${info.layer}\``)).split(/\n### /)[0] ?? '';
      const row = `\\|\\s*\`${code}\`\\s*\\|\\s*${info.status}\\s*\\|\\s*${info.retryable ? 'yes' : 'no'}\\s*\\|`;
      return !new RegExp(row).test(own);
    });
    expect(missing).toEqual([]);
  });

  it('is what scripts/generate-errors-doc.ts writes from the registry (summaries included)', async () => {
    expect(errorsDoc).toBe(await renderErrorsDoc());
  });
});

describe('docs/operations.md', () => {
  it('has a troubleshooting row for every HTTP-facing reason code', () => {
    const table = section(operations, 'Troubleshooting');
    expect(table).toContain('README.md#reason-codes');
    expect(HTTP_FACING.filter((code) => !new RegExp(`\\|\\s*\`${code}\`\\s*\\|`).test(table))).toEqual([]);
  });

  it('explains every adapter metric, and its alert rules use only metrics the adapter exports', async () => {
    const metrics = createAdapterMetrics({ bundleAges: () => ({ policy: 1 }) });
    const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
    const own = names.filter((n) => !/^trustplane_(process|nodejs)_/.test(n));
    expect(own.length).toBeGreaterThan(10);
    const explained = section(operations, 'Metrics');
    expect(own.filter((n) => !codeSpan(n).test(explained))).toEqual([]);

    const rules = /```yaml\n([\s\S]*?)```/.exec(section(operations, 'Alerts worth setting'))?.[1] ?? '';
    expect(rules).toMatch(/^groups:/);
    const used = new Set([...rules.matchAll(/\btrustplane_[a-z0-9_]+/g)].map((m) => m[0]));
    const unknown = [...used].filter((n) => !names.includes(n.replace(/_(bucket|count|sum)$/, '')));
    expect(used.size).toBeGreaterThan(5);
    expect(unknown).toEqual([]);
  });
});

describe('links', () => {
  const files = ['README.md', 'SECURITY.md', 'docs/operations.md', 'docs/configuration.md', 'docs/errors.md'];
  it.each(files)('every relative link of %s points to an existing file (and heading)', (file) => {
    const broken: string[] = [];
    for (const m of prose(read(file)).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      const [relative, fragment] = target.split('#') as [string, string | undefined];
      const resolved = relative === '' ? file : path.join(path.dirname(file), relative);
      if (!existsSync(resolved)) {
        broken.push(target);
        continue;
      }
      if (fragment !== undefined && resolved.endsWith('.md') && !anchors(read(resolved)).has(fragment)) {
        broken.push(target);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the README links every document a newcomer or operator needs', () => {
    const targets = [
      'SECURITY.md',
      'CHANGELOG.md',
      'docs/contracts.md',
      'docs/operations.md',
      'docs/configuration.md',
      'docs/errors.md',
      'docs/broker.md',
      'docs/adapter.md',
      'examples/hono-app',
      'examples/express-app',
      'examples/kubernetes',
      'examples/docker',
    ];
    expect(targets.filter((t) => !readme.includes(`](${t})`))).toEqual([]);
    expect(readme).toMatch(/^## Configuration reference$/m);
  });
});
