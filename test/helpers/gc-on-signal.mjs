// Test instrumentation, preloaded into an adapter process with `NODE_OPTIONS=--import <this file>`
// (see test/faults/soak.test.ts): SIGUSR2 runs a full garbage collection, so that a memory figure
// read right after it counts live objects only. It changes nothing else in the process.
import process from 'node:process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
process.on('SIGUSR2', () => {
  gc();
  gc();
  process.stderr.write('gc-on-signal: collected\n');
});
process.stderr.write('gc-on-signal: ready\n');
