import { Command, CommanderError } from 'commander';
import { registerAdapter } from './commands/adapter.js';
import { registerAudit } from './commands/audit.js';
import { registerBroker } from './commands/broker.js';
import { registerDevStack } from './commands/devstack.js';
import { registerExplain } from './commands/explain.js';
import { registerBundle, loadTrustRegistry, policyCheck } from './commands/bundle.js';
import { registerInit } from './commands/init.js';
import { registerGenKey } from './commands/keys.js';
import { registerLedger } from './commands/ledger.js';
import { registerIssue, registerVerify } from './commands/passport.js';
import { registerPolicyTest } from './commands/policy-test.js';
import { registerReceipt } from './commands/receipt.js';
import { registerSign } from './commands/sign.js';
import { errnoCode, formatError } from './io.js';
import { usageLine } from './usage.js';

/** Build the `trustplane` program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command()
    .name('trustplane')
    .description(
      'Proof-bound machine authorization for HTTP APIs: passports, request proofs, signed policy bundles.',
    )
    .version('0.1.0')
    .exitOverride();
  // Usage errors are printed by runCli as one line, not by commander with the whole help.
  program.configureOutput({ outputError: () => undefined });
  registerInit(program);
  registerGenKey(program);
  registerIssue(program);
  registerVerify(program, loadTrustRegistry, policyCheck);
  registerSign(program);
  registerExplain(program);
  registerBundle(program);
  registerReceipt(program);
  registerAdapter(program);
  registerBroker(program);
  registerDevStack(program);
  registerAudit(program);
  registerLedger(program);
  registerPolicyTest(program);
  const override = (cmd: Command): void => {
    cmd.exitOverride();
    for (const sub of cmd.commands) override(sub);
  };
  override(program);
  return program;
}

/**
 * Run the CLI with `argv` (`process.argv` shape: node, script, args...) and return its exit status.
 * Importing this module has no side effect, so tests run verbs in-process; `main.ts` is the entry.
 * Every failure is one line on stderr, `trustplane: <reason>: <message>`; a closed stdout (EPIPE,
 * `trustplane audit query --json | head -1`) ends the command quietly.
 */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; `trustplane bundle` alone prints its help to stderr (exit 2).
      if (e.exitCode === 0 || e.code === 'commander.help') return e.exitCode === 0 ? 0 : 2;
      process.stderr.write(`${usageLine(program, argv, e)}\n`);
      return 2;
    }
    if (errnoCode(e) === 'EPIPE') return 0;
    const { line, code } = formatError(e);
    process.stderr.write(`${line}\n`);
    return code;
  }
}
