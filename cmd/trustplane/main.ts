#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerAdapter } from './commands/adapter.js';
import { registerAudit } from './commands/audit.js';
import { registerBroker } from './commands/broker.js';
import { registerDevStack } from './commands/devstack.js';
import { registerBundle, loadTrustRegistry, policyCheck } from './commands/bundle.js';
import { registerGenKey } from './commands/keys.js';
import { registerLedger } from './commands/ledger.js';
import { registerIssue, registerVerify } from './commands/passport.js';
import { registerReceipt } from './commands/receipt.js';
import { registerSign } from './commands/sign.js';
import { formatError } from './io.js';

/** Build the `trustplane` program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command()
    .name('trustplane')
    .description(
      'Proof-bound machine authorization for HTTP APIs: passports, request proofs, signed policy bundles.',
    )
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  program.configureOutput({ outputError: (str, write) => write(str) });
  registerGenKey(program);
  registerIssue(program);
  registerVerify(program, loadTrustRegistry, policyCheck);
  registerSign(program);
  registerBundle(program);
  registerReceipt(program);
  registerAdapter(program);
  registerBroker(program);
  registerDevStack(program);
  registerAudit(program);
  registerLedger(program);
  for (const cmd of program.commands) {
    cmd.exitOverride();
    for (const sub of cmd.commands) sub.exitOverride();
  }
  return program;
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed by commander.
      return e.exitCode === 0 ? 0 : 2;
    }
    const { line, code } = formatError(e);
    process.stderr.write(`${line}\n`);
    return code;
  }
}

process.exitCode = await main(process.argv);
