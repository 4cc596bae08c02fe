import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';

it('the tour behaves as documented (exits 0, every step as expected)', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/tour.ts'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/7\/7 steps behaved as documented/);
  expect(r.stdout).not.toContain('UNEXPECTED');
}, 60_000);
