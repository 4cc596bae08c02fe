import type { Command, CommanderError } from 'commander';

/** The verbs of `args` (`bundle verify`), as far as they name commands of `program`. */
function verbPath(program: Command, args: readonly string[]): string[] {
  const path: string[] = [];
  let cmd = program;
  for (const arg of args) {
    if (arg.startsWith('-')) break;
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (sub === undefined) break;
    path.push(sub.name());
    cmd = sub;
  }
  return path;
}

/**
 * The one line of a commander usage error: `<name>: usage: <message> (see <name> <verbs> --help)`,
 * instead of commander's `error: ...` and the whole help.
 */
export function usageLine(program: Command, argv: readonly string[], e: CommanderError): string {
  const message = e.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
  const name = program.name();
  const verbs = verbPath(program, argv.slice(2));
  return `${name}: usage: ${message} (see ${[name, ...verbs, '--help'].join(' ')})`;
}
