#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { configureAdapterCommand } from '../trustplane/commands/adapter.js';
import { formatError } from '../trustplane/io.js';

const program = configureAdapterCommand(
  new Command().name('trustplane-adapter').version('0.1.0').exitOverride(),
);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else {
    const { line, code } = formatError(e);
    process.stderr.write(`${line}\n`);
    process.exitCode = code;
  }
}
