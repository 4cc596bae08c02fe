import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Directory of the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`): `PG_BIN_DIR`, else
 * the newest Debian `/usr/lib/postgresql/<major>/bin`, else `undefined` (then they must be on PATH).
 */
export const PG_BIN_DIR: string | undefined = process.env.PG_BIN_DIR ?? findDebianBinDir();

/** A private PostgreSQL cluster started for one test file. */
export interface PostgresServer {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly url: string;
  readonly port: number;
  /** The cluster's data directory (kept across stop/start, removed by close). */
  readonly dataDir: string;
  /** Fast shutdown (`pg_ctl stop -m fast`), waits for the exit. No-op when not running. */
  stop(): Promise<void>;
  /** Start again on the same data directory and port; waits until it accepts connections. */
  start(): Promise<void>;
  /** Immediate shutdown (`-m immediate`: no checkpoint, crash recovery on the next start). */
  kill(): Promise<void>;
  /** Stop (immediate) if running and remove the temp directory. Idempotent. */
  close(): Promise<void>;
}

/** Options for {@link startPostgres}. */
export interface StartPostgresOptions {
  /** Listen on this port; default: a free one. */
  readonly port?: number;
}

const INITDB_TIMEOUT_MS = 60_000;
const PG_CTL_WAIT_S = 20;
const PG_CTL_TIMEOUT_MS = (PG_CTL_WAIT_S + 10) * 1000;

function findDebianBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  let majors: string[];
  try {
    majors = readdirSync(root).filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const dir = path.join(root, major, 'bin');
    try {
      accessSync(path.join(dir, 'initdb'), constants.X_OK);
      return dir;
    } catch {
      // try an older major
    }
  }
  return undefined;
}

function hasBinary(file: string): boolean {
  const candidates = file.includes('/')
    ? [file]
    : (process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, file));
  return candidates.some((candidate) => {
    try {
      accessSync(candidate, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** A loopback TCP port that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

function binary(name: string): string {
  return PG_BIN_DIR === undefined ? name : path.join(PG_BIN_DIR, name);
}

/** Whether the PostgreSQL server binaries (`initdb`, `pg_ctl`) are installed. */
export function hasPostgres(): boolean {
  return hasBinary(binary('initdb')) && hasBinary(binary('pg_ctl'));
}

const MISSING_MESSAGE =
  'PostgreSQL server binaries (initdb, pg_ctl) were not found: install the Debian package ' +
  '`postgresql` (see .ci/run) or set PG_BIN_DIR to the directory that holds them';

/** The uid/gid of the `postgres` account (PostgreSQL refuses to run as root). */
function postgresAccount(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const fields = line?.split(':');
  const uid = Number(fields?.[2]);
  const gid = Number(fields?.[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error('running as root but there is no `postgres` account to run PostgreSQL as');
  }
  return { uid, gid };
}

const asRoot = process.getuid?.() === 0;

/** Run a PostgreSQL binary (as `postgres` when we are root), bounded by `timeoutMs`. */
function run(name: string, args: readonly string[], timeoutMs: number): Promise<string> {
  const [file, argv] = asRoot
    ? ['runuser', ['-u', 'postgres', '--', binary(name), ...args]]
    : [binary(name), [...args]];
  return new Promise((resolve, reject) => {
    execFile(
      file,
      argv,
      { timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, LC_ALL: 'C', LANG: 'C' } },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${name} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`.trim()));
        } else {
          resolve(stdout + stderr);
        }
      },
    );
  });
}

/**
 * Start a private PostgreSQL cluster: `initdb` (trust auth, no sync) in a new temp directory, then
 * `pg_ctl start` on 127.0.0.1 on a free port with its socket in that directory and `fsync=on`, and
 * wait (bounded) until it accepts connections. Throws a clear error when PostgreSQL is not
 * installed: callers fail rather than skip.
 * @example
 * const pg = await startPostgres(); try { ... } finally { await pg.close() }
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  if (!hasPostgres()) throw new Error(MISSING_MESSAGE);
  const root = await mkdtemp(path.join(tmpdir(), 'trustplane-pg-'));
  const dataDir = path.join(root, 'data');
  const sockDir = path.join(root, 'sock');
  const logFile = path.join(root, 'postgres.log');
  try {
    await mkdir(sockDir);
    if (asRoot) {
      const { uid, gid } = postgresAccount();
      await chown(root, uid, gid);
      await chown(sockDir, uid, gid);
    }
    await run(
      'initdb',
      ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'],
      INITDB_TIMEOUT_MS,
    );
  } catch (e) {
    await rm(root, { recursive: true, force: true });
    throw e;
  }

  let port = options.port ?? (await freePort());
  let running = false;
  let closed = false;
  const logTail = async (): Promise<string> => {
    try {
      return (await readFile(logFile, 'utf8')).slice(-3000);
    } catch {
      return '';
    }
  };
  const pgStart = async (): Promise<void> => {
    const serverOptions = `-p ${port} -k ${sockDir} -c listen_addresses=127.0.0.1 -c fsync=on`;
    try {
      await run(
        'pg_ctl',
        ['-D', dataDir, '-l', logFile, '-w', '-t', String(PG_CTL_WAIT_S), '-o', serverOptions, 'start'],
        PG_CTL_TIMEOUT_MS,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- postgres.log ---\n${await logTail()}`);
    }
    running = true;
  };
  const pgStop = async (mode: 'fast' | 'immediate'): Promise<void> => {
    if (!running) return;
    await run(
      'pg_ctl',
      ['-D', dataDir, '-m', mode, '-w', '-t', String(PG_CTL_WAIT_S), 'stop'],
      PG_CTL_TIMEOUT_MS,
    );
    running = false;
  };

  let lastError: unknown;
  // A free port can be taken between probing and binding: retry a few times with a new one.
  for (let attempt = 0; attempt < 3 && !running; attempt++) {
    try {
      await pgStart();
    } catch (e) {
      lastError = e;
      if (options.port !== undefined) break;
      port = await freePort();
    }
  }
  if (!running) {
    await rm(root, { recursive: true, force: true });
    throw lastError;
  }

  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop: () => pgStop('fast'),
    kill: () => pgStop('immediate'),
    start: async () => {
      if (closed) throw new Error('this PostgreSQL server was closed');
      if (!running) await pgStart();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      try {
        await pgStop('immediate');
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    },
  };
}
