/** Log levels, lowest first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
/** A log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Structured fields of a log line. Values must never be secrets (tokens, proofs, keys, URLs with credentials). */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

/** A structured JSON-lines logger. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** True when `level` lines are written. */
  enabled(level: LogLevel): boolean;
}

/**
 * A logger writing one JSON object per line (`{"time","level","msg",...fields}`) to a stream
 * (stderr by default, so stdout stays free for audit events).
 * @param level the lowest level written
 * @example
 * const log = createLogger('info'); log.info('adapter listening', { port: 8080 })
 */
export function createLogger(
  level: LogLevel,
  stream: { write(line: string): unknown } = process.stderr,
  base: LogFields = {},
): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const line = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    stream.write(
      `${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields })}\n`,
    );
  };
  return {
    debug: (m, f) => line('debug', m, f),
    info: (m, f) => line('info', m, f),
    warn: (m, f) => line('warn', m, f),
    error: (m, f) => line('error', m, f),
    enabled: (lvl) => LOG_LEVELS.indexOf(lvl) >= min && lvl !== 'silent',
  };
}
