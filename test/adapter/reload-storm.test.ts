import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../pkg/runtime/logger.js';
import { createWorld } from '../helpers/fixture.js';
import { startTestAdapter, writeWorld, type TestAdapter } from '../helpers/adapter.js';

/*
 * Issue 14, point 5: `trustplane adapter ... 2> bundles/adapter.log` with a bundle that fails to
 * reload. Each failure wrote a log line into the watched directory, which woke the watcher, which
 * reloaded and failed again: ~100 error lines in 10 s. Only changes to the bundle files themselves
 * (or a directory-wide swap) may trigger a reload.
 */

let running: TestAdapter | undefined;
afterAll(async () => {
  await running?.adapter.close();
});

const lines = (file: string, msg: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`)).length;

describe('attack: a log file in the bundle directory', () => {
  it('does not set off a reload storm: one failure line per bad bundle write, then quiet', async () => {
    const world = await createWorld();
    const files = writeWorld(world);
    const logFile = path.join(files.dir, 'adapter.log');
    writeFileSync(logFile, '');
    const log = createLogger('info', { write: (line: string) => appendFileSync(logFile, line) });
    running = await startTestAdapter(world, { upstream: 'http://127.0.0.1:9' }, files, log);
    // The policy edited by `bundle merge-source` and not signed again: every reload of it fails.
    const unsigned = { ...world.policyDoc };
    delete unsigned.signature;
    delete unsigned.signed_by;
    writeFileSync(files.policyBundle, JSON.stringify(unsigned));
    // Wait for the first failure, then watch the log for 3 s.
    const deadline = Date.now() + 20_000;
    while (
      lines(logFile, 'bundle reload failed; keeping the bundle in force') === 0 &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const first = lines(logFile, 'bundle reload failed; keeping the bundle in force');
    expect(first).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 3_000));
    const after = lines(logFile, 'bundle reload failed; keeping the bundle in force');
    expect({ first, after }).toEqual({ first, after: first });
    expect(after).toBeLessThanOrEqual(2);
  }, 60_000);
});
