import { open, type FileHandle } from 'node:fs/promises';

/** Fill `buffer` from `position`; EIO when the file ends first. */
export async function readExactly(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const { bytesRead } = await handle.read(buffer, offset, buffer.length - offset, position + offset);
    if (bytesRead === 0) throw Object.assign(new Error('unexpected end of file'), { code: 'EIO' });
    offset += bytesRead;
  }
}

/** Write all of `data` at the file position (appends for an `a+` handle); EIO on a short write. */
export async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    offset += bytesWritten;
  }
}

/** fsync a directory, so a file created in it survives a crash. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** {@link syncDirectory}, best effort: some platforms cannot open a directory. Never rejects. */
export async function syncDirectoryBestEffort(dir: string): Promise<void> {
  try {
    await syncDirectory(dir);
  } catch {
    // not supported here: the file itself was synced
  }
}

/** The Node error code of `e` (`EIO` when it has none). */
export function errorCode(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string') return e.code;
  return 'EIO';
}

/** `e` as an Error. */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
