import type { Command } from 'commander';
import type { IssuerRegistry } from '../../../pkg/authcore/index.js';
import { CliError } from '../io.js';

/** Load trust material for `verify` (filled in with pkg/bundle). */
export async function loadTrustRegistry(): Promise<IssuerRegistry> {
  throw new CliError('not yet available', 'usage');
}

/** `trustplane bundle …` */
export function registerBundle(program: Command): void {
  program.command('bundle').description('Build, sign, verify and edit trust material and policy bundles.');
}
