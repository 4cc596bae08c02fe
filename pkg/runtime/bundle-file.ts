import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { TrustplaneError } from '../authcore/errors.js';
import { canonicalMembers } from '../internal/jcs.js';

/* Reading a bundle file: bounded in size, digested to detect changes, parsed as JSON. */

/** Largest bundle file read (bytes). */
export const MAX_BUNDLE_BYTES = 32 * 1024 * 1024;

/** Read a bundle file, refusing one larger than {@link MAX_BUNDLE_BYTES} (`invalid_bundle`). */
export async function readBounded(path: string): Promise<Buffer> {
  const info = await stat(path);
  if (info.size > MAX_BUNDLE_BYTES)
    throw new TrustplaneError('invalid_bundle', `${basename(path)} is too large`);
  return readFile(path);
}

/** SHA-256 (hex) of a bundle file's bytes. */
export function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * SHA-256 (hex) of a document's content: its canonical JSON (RFC 8785) without `signature` and
 * `signed_by`. Two documents with one `issued_at` must have one content digest; the same content
 * in other bytes (whitespace, member order, a signature by another key) is no change.
 */
export function contentDigest(document: Readonly<Record<string, unknown>>): string {
  const members = canonicalMembers(document).filter(([name]) => name !== 'signature' && name !== 'signed_by');
  return digest(Buffer.from(`{${members.map(([, text]) => text).join(',')}}`, 'utf8'));
}

/** Parse a bundle file's bytes as JSON (`invalid_bundle` naming the file, never quoting it). */
export function parseJson(bytes: Uint8Array, path: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
  } catch {
    throw new TrustplaneError('invalid_bundle', `${basename(path)} is not valid JSON`);
  }
}
