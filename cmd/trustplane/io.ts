import { readFileSync, writeFileSync } from 'node:fs';
import { TrustplaneError } from '../../pkg/authcore/index.js';

/** A CLI failure: one line on stderr, non-zero exit. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly reason = 'usage',
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Read a value given as `@path` (file contents) or literally; `-` reads stdin. */
export function readValue(value: string): string {
  if (value === '-') return readFileSync(0, 'utf8');
  if (value.startsWith('@')) {
    try {
      return readFileSync(value.slice(1), 'utf8');
    } catch {
      throw new CliError(`cannot read ${value.slice(1)}`, 'io');
    }
  }
  return value;
}

/** Read a file as text. */
export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new CliError(`cannot read ${path}`, 'io');
  }
}

/** Read a JSON file. */
export function readJsonFile(path: string): unknown {
  const text = readText(path);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CliError(`${path} is not valid JSON`, 'invalid_json');
  }
}

/** Write JSON (2-space, trailing newline) to a file or stdout. */
export function writeJson(value: unknown, out?: string, mode?: number): void {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  if (out === undefined || out === '-') process.stdout.write(text);
  else writeFileSync(out, text, mode !== undefined ? { mode } : {});
}

/** Parse an integer option. */
export function parseIntOption(name: string): (value: string) => number {
  return (value) => {
    if (!/^-?\d+$/.test(value)) throw new CliError(`${name} must be an integer`);
    return Number.parseInt(value, 10);
  };
}

/** Collect a repeatable option. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The one-line error text for any failure (never includes secrets: errors never carry them). */
export function formatError(e: unknown): { line: string; code: number } {
  if (e instanceof TrustplaneError) return { line: `trustplane: ${e.reason}: ${e.message}`, code: 1 };
  if (e instanceof CliError) return { line: `trustplane: ${e.reason}: ${e.message}`, code: e.exitCode };
  if (e instanceof TypeError || e instanceof RangeError)
    return { line: `trustplane: usage: ${e.message}`, code: 2 };
  return { line: `trustplane: internal_error: ${e instanceof Error ? e.message : String(e)}`, code: 1 };
}

/** Current epoch seconds. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
