import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REASON_CODES, REASON_CODE_LIST } from '../pkg/authcore/index.js';
import { ADAPTER_ENV, adapterConfigSchema } from '../pkg/adapter/config.js';

describe('docs', () => {
  const readme = readFileSync('README.md', 'utf8');
  it('the README reason-code table lists every registered code with its HTTP status', () => {
    const missing = REASON_CODE_LIST.filter((code) => {
      const info = REASON_CODES[code];
      const status = info.layer === 'bundle' ? '—' : String(info.status);
      return !new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${status}\\s*\\|`).test(readme);
    });
    expect(missing).toEqual([]);
  });
  it('the README shows the two commands and .ci/run runs the test command', () => {
    expect(readme).toContain('npm install && npm run tour');
    expect(readme).toContain('npm install && npm test');
    expect(readFileSync('.ci/run', 'utf8')).toMatch(/npm install[^\n]*\nnpm test/);
  });
  it('docs/adapter.md documents every adapter config key with its environment variable', () => {
    const doc = readFileSync('docs/adapter.md', 'utf8');
    const keys = Object.keys(adapterConfigSchema.shape);
    expect(keys.filter((k) => !new RegExp(`\\|\\s*\`${k}\`\\s*\\|`).test(doc))).toEqual([]);
    expect(Object.keys(ADAPTER_ENV).filter((name) => !doc.includes(`\`${name}\``))).toEqual([]);
    expect(Object.values(ADAPTER_ENV).filter((k) => !keys.includes(k))).toEqual([]);
  });
});
