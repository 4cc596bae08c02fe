#!/usr/bin/env node
import { runCli } from './program.js';

// A reader that goes away (`trustplane audit query --json | head -1`) is not an error: the
// command stops writing (runCli sees EPIPE) and exits quietly; later writes must not throw either.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
});

process.exitCode = await runCli(process.argv);
