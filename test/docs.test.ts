import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REASON_CODES, REASON_CODE_LIST } from '../pkg/authcore/index.js';

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
});
