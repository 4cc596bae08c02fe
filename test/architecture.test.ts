import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// The library modules run on Workers, Deno and Bun too: Web APIs only, no node:* imports.
const WEB_ONLY = [
  'pkg/authcore',
  'pkg/proof',
  'pkg/bundle',
  'pkg/verifier',
  'pkg/internal',
  'pkg/middleware/hono',
  'pkg/client',
];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

describe('library modules use Web APIs only', () => {
  for (const dir of WEB_ONLY) {
    it(`${dir} imports no node:* module and no Buffer/process`, () => {
      const offenders = files(dir).filter((f) => {
        // Code only: TSDoc examples may mention process.env.
        const text = readFileSync(f, 'utf8')
          .replace(/\/\*[\s\S]*?\*\//g, '')
          .replace(/^\s*\/\/.*$/gm, '');
        return /from ['"]node:|require\(|\bBuffer\.|\bprocess\./.test(text);
      });
      expect(offenders).toEqual([]);
    });
  }
});
