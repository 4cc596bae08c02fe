import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';

// Node-only, so it cannot live in pkg/internal (Web APIs only). Shared by the audit file ledger and
// the adapter's replay journal; not exported from the audit entry point.

/** A lock file held by this process (release it with {@link releaseFileLock}). */
export interface FileLockHandle {
  /** The lock file, `<target>.lock`. */
  readonly path: string;
  /** What was written to it; a lock that no longer holds this token was taken over. */
  readonly token: string;
}

/** Options for {@link acquireFileLock}. */
export interface FileLockOptions {
  /** What the lock protects, starting the error messages (e.g. `replay journal /var/lib/x`). */
  readonly subject: string;
  /** Appended to the "in use by another process" message: what the operator should do. */
  readonly busyHint?: string;
}

/** Lock paths this process holds (a lock naming our pid that is not here is a previous life's). */
const HELD_HERE = new Set<string>();

/**
 * Take `<target>.lock`, a single-writer lock holding our pid, a random token and (on Linux) the
 * kernel start time of this process.
 *
 * The lock is written to a private temp file first and then hard-linked into place: the link is
 * the exclusive create (like `open(..., 'wx')`), and the lock can never be seen half-written, so
 * an empty or garbled lock only ever comes from a crash and counts as stale. A lock whose process
 * is gone is taken over; so is one naming our own pid that this process does not hold (a
 * container restarted as pid 1), and one whose live pid started at another time than recorded
 * (the pid was reused).
 * @param target the file to protect; the lock is `<target>.lock` next to it
 * @param options the subject named in error messages and an optional hint
 * @returns the handle to pass to {@link releaseFileLock}
 * @throws Error when this process already holds the lock, or another live process does
 * @example
 * const lock = acquireFileLock(path, { subject: `audit ledger ${path}` })
 * try { ... } finally { releaseFileLock(lock) }
 */
export function acquireFileLock(target: string, options: FileLockOptions): FileLockHandle {
  const lockPath = `${target}.lock`;
  const start = processStartTime(process.pid);
  const token = `${process.pid}\n${randomBytes(16).toString('hex')}\n${start !== undefined ? `start=${start}\n` : ''}`;
  const tmp = `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}`;
  writeFileSync(tmp, token, { flag: 'wx', mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, lockPath);
        HELD_HERE.add(lockPath);
        return { path: lockPath, token };
      } catch (e) {
        if (errorCode(e) !== 'EEXIST') throw e;
      }
      const holder = readLockPid(lockPath);
      if (holder === process.pid && HELD_HERE.has(lockPath)) {
        throw new Error(`${options.subject} is already open in this process (lock ${lockPath})`);
      }
      // Our own pid without the lock held here is a previous life of this pid (a container
      // restarted as pid 1); a live pid with another start time than recorded was reused.
      if (
        holder !== undefined &&
        holder !== process.pid &&
        isProcessAlive(holder) &&
        !pidReused(lockPath, holder)
      ) {
        const hint = options.busyHint !== undefined ? `; ${options.busyHint}` : '';
        throw new Error(
          `${options.subject} is in use by another process (pid ${holder}, lock ${lockPath})${hint}`,
        );
      }
      // Stale (its process is gone): take it over.
      try {
        unlinkSync(lockPath);
      } catch (e) {
        if (errorCode(e) !== 'ENOENT') throw e;
      }
    }
    throw new Error(`${options.subject}: could not take the lock ${lockPath}`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
}

/**
 * Remove the lock file if it is still ours (a lock taken over by another process is left alone).
 * @param lock the handle from {@link acquireFileLock}
 * @example
 * releaseFileLock(lock)
 */
export function releaseFileLock(lock: FileLockHandle): void {
  HELD_HERE.delete(lock.path);
  try {
    if (readFileSync(lock.path, 'utf8') === lock.token) unlinkSync(lock.path);
  } catch {
    // already gone or taken over: nothing of ours to remove
  }
}

/**
 * The kernel start time of a process (`/proc/<pid>/stat` field 22), or undefined off Linux or when
 * it cannot be read. Recorded in the lock so that a reused pid is not mistaken for the holder.
 */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) " start at field 3; starttime is field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const value = fields[19];
    return value !== undefined && /^\d+$/.test(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** True when the lock records a start time and the live process `pid` started at another time. */
function pidReused(lockPath: string, pid: number): boolean {
  let text: string;
  try {
    text = readFileSync(lockPath, 'utf8');
  } catch {
    return false;
  }
  const recorded = /^start=(\d+)$/m.exec(text)?.[1];
  if (recorded === undefined) return false;
  const current = processStartTime(pid);
  return current !== undefined && current !== recorded;
}

function readLockPid(lockPath: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(lockPath, 'utf8');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return undefined;
    throw e;
  }
  const match = /^(\d{1,10})\n/.exec(text);
  const pid = match?.[1] === undefined ? NaN : Number(match[1]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return errorCode(e) === 'EPERM';
  }
}

function errorCode(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string') return e.code;
  return 'EIO';
}
