import { readFileSync, writeFileSync } from 'node:fs';
import { isReasonCode, TrustplaneError } from '../../pkg/authcore/index.js';
import { jsonErrorPosition } from '../../pkg/runtime/index.js';

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

/** The Node error code (`ENOENT`, `EADDRINUSE`, `EPIPE`...) of a system error, if any. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string'
    ? e.code
    : undefined;
}

function readFailure(path: string, e: unknown): CliError {
  return errnoCode(e) === 'ENOENT'
    ? new CliError(`no such file: ${path}`, 'file_not_found')
    : new CliError(`cannot read ${path}`, 'io');
}

/** Read a value given as `@path` (file contents) or literally; `-` reads stdin. */
export function readValue(value: string): string {
  if (value === '-') return readFileSync(0, 'utf8');
  if (value.startsWith('@')) {
    try {
      return readFileSync(value.slice(1), 'utf8');
    } catch (e) {
      throw readFailure(value.slice(1), e);
    }
  }
  return value;
}

/** Read a file as text. */
export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw readFailure(path, e);
  }
}

/**
 * Parse JSON text; on a syntax error, say where (line and column, 1-based) and never what: the text
 * may hold keys, and V8's message quotes it.
 * @param what how to name the input in the message (a file name, a flag)
 */
export function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CliError(`${what} is not valid JSON: ${jsonErrorPosition(text)}`, 'invalid_json');
  }
}

/** Read a JSON file. */
export function readJsonFile(path: string): unknown {
  return parseJsonText(readText(path), path);
}

/** Read a JSON flag value given literally or as `@file`. */
export function readJsonValue(value: string, flag: string): unknown {
  return parseJsonText(readValue(value), value.startsWith('@') ? value.slice(1) : flag);
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
  // Errors of modules that cannot import TrustplaneError (dependency_missing from pkg/internal)
  // still carry a registered reason.
  const reason = (e as { reason?: unknown } | null)?.reason;
  if (e instanceof Error && isReasonCode(reason))
    return { line: `trustplane: ${reason}: ${e.message}`, code: 1 };
  if (e instanceof TypeError || e instanceof RangeError)
    return { line: `trustplane: usage: ${e.message}`, code: 2 };
  const errno = errnoCode(e);
  const where = (e as { path?: unknown; address?: unknown; port?: unknown }) ?? {};
  if (errno === 'ENOENT' && typeof where.path === 'string')
    return { line: `trustplane: file_not_found: no such file: ${where.path}`, code: 1 };
  if (errno === 'EADDRINUSE') {
    const address =
      typeof where.address === 'string' && typeof where.port === 'number'
        ? `${where.address.includes(':') ? `[${where.address}]` : where.address}:${where.port}`
        : 'the listen address';
    return {
      line: `trustplane: address_in_use: ${address} is already in use by another process (stop it, or choose another --listen / --admin-listen)`,
      code: 1,
    };
  }
  return { line: `trustplane: internal_error: ${e instanceof Error ? e.message : String(e)}`, code: 1 };
}

/** Current epoch seconds. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
