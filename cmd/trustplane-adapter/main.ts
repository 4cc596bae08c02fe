#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { configureAdapterCommand } from '../trustplane/commands/adapter.js';
import { formatError } from '../trustplane/io.js';
import { usageLine } from '../trustplane/usage.js';

const program = configureAdapterCommand(
  new Command().name('trustplane-adapter').version('0.1.0').exitOverride(),
);
// Usage errors are one line (usageLine), not commander's `error: ...`.
program.configureOutput({ outputError: () => undefined });
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    if (e.exitCode !== 0) process.stderr.write(`${usageLine(program, process.argv, e)}\n`);
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else {
    const { line, code } = formatError(e);
    process.stderr.write(`${line}\n`);
    process.exitCode = code;
  }
}
