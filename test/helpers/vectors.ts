import { readFileSync } from 'node:fs';

/**
 * The vendored vectors (test/vectors/trustplane-v1: the official TrustPlane conformance vectors;
 * test/vectors/external: RFC and SPIFFE vectors), copied unchanged with their provenance in
 * test/vectors/README.md. Tests never read outside the repository.
 */
export const VECTORS_DIR = new URL('../vectors/', import.meta.url);

/** Read and parse a vendored vector file, e.g. `trustplane-v1/manifest.json`. */
export function readVectorJson<T = unknown>(relative: string): T {
  return JSON.parse(readFileSync(new URL(relative, VECTORS_DIR), 'utf8')) as T;
}
