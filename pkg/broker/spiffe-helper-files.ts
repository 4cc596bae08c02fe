import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { DevSvid } from './dev-svid.js';

/** Paths written by {@link writeSpiffeHelperFiles}, in the shape `SvidFileSource.open` takes. */
export interface SpiffeHelperFiles {
  /** `<dir>/svid.pem`. */
  readonly certFile: string;
  /** `<dir>/svid_key.pem` (mode 0600). */
  readonly keyFile: string;
  /** `<dir>/svid_bundle.pem`. */
  readonly bundleFile: string;
}

/**
 * Write an SVID as spiffe-helper does: `svid.pem` (chain), `svid_key.pem` (key, mode 0600) and
 * `svid_bundle.pem` (bundle), each atomically (a temporary file in the same directory, flushed,
 * then renamed over the target), so a reader such as `SvidFileSource` never sees a partial file.
 * `dir` is created with mode 0700 when missing; an existing directory keeps its mode.
 *
 * For local development only (the `trustplane up` demo): never a replacement for SPIRE.
 *
 * @param dir - target directory.
 * @param svid - `chainPem`, `keyPem`, `bundlePem` (e.g. from {@link mintDevSvid}).
 * @returns the three paths, ready for `SvidFileSource.open({ ...files, clock })`.
 * @throws `TypeError` for a missing PEM; the file system's error when a write or rename fails (the
 *   temporary file is removed).
 * @example
 * ```ts
 * const files = await writeSpiffeHelperFiles('.trustplane/svid', mintDevSvid(ca, { spiffeId, nowSeconds }));
 * const source = await SvidFileSource.open({ ...files, clock: () => Math.floor(Date.now() / 1000) });
 * ```
 */
export async function writeSpiffeHelperFiles(
  dir: string,
  svid: Pick<DevSvid, 'chainPem' | 'keyPem' | 'bundlePem'>,
): Promise<SpiffeHelperFiles> {
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new TypeError('writeSpiffeHelperFiles: dir must be a non-empty path');
  }
  if (typeof svid !== 'object' || svid === null) {
    throw new TypeError('writeSpiffeHelperFiles: svid is required');
  }
  for (const name of ['chainPem', 'keyPem', 'bundlePem'] as const) {
    if (typeof svid[name] !== 'string' || svid[name].length === 0) {
      throw new TypeError(`writeSpiffeHelperFiles: svid.${name} must be a non-empty string`);
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files: SpiffeHelperFiles = Object.freeze({
    certFile: path.join(dir, 'svid.pem'),
    keyFile: path.join(dir, 'svid_key.pem'),
    bundleFile: path.join(dir, 'svid_bundle.pem'),
  });
  // spiffe-helper's order; SvidFileSource verifies all three together, so a reader between two
  // renames keeps its last good SVID.
  await writeAtomic(files.certFile, svid.chainPem, 0o644);
  await writeAtomic(files.keyFile, svid.keyPem, 0o600);
  await writeAtomic(files.bundleFile, svid.bundlePem, 0o644);
  return files;
}

async function writeAtomic(file: string, contents: string, mode: number): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
  // 'wx' (O_EXCL): never follow or reuse a file someone else put at the temporary name. The mode
  // is set at creation, so the key is never readable by others, not even before the rename; the
  // umask can only narrow it.
  const handle = await open(temp, 'wx', mode);
  try {
    try {
      await handle.writeFile(contents, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}
