import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Absolute path of ../shared (the read-only conformance and vector material). */
export const SHARED_DIR = path.resolve(process.cwd(), '../shared');

/** Read and parse a JSON file under ../shared. */
export function readSharedJson<T = unknown>(relative: string): T {
  return JSON.parse(readFileSync(path.join(SHARED_DIR, relative), 'utf8')) as T;
}
