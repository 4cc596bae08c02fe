import type { z } from 'zod';
import { TrustplaneError } from '../authcore/errors.js';
import { fromUtf8Strict } from '../internal/bytes.js';
import { canonicalizeJson } from '../internal/jcs.js';
import { jsonErrorPosition } from '../internal/json-position.js';

/** Largest document text accepted by the `parse*Text` functions: 8 MiB of UTF-8. */
export const MAX_DOCUMENT_BYTES = 8 * 1024 * 1024;

const MAX_MESSAGE = 240;

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += `${out === '' ? '' : '.'}${truncate(String(key), 64)}`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * Validate `value` with `schema`; on failure throw `invalid_bundle` naming the first issue's path
 * (never the offending value or the payload), prefixed with `at` when `value` is a part of the
 * document. Internal to pkg/bundle.
 */
export function parseWith<T>(
  schema: z.ZodType<T>,
  value: unknown,
  label: string,
  at: readonly PropertyKey[] = [],
): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = formatPath([...at, ...(issue?.path ?? [])]);
  // The message names the path and zod's reason, never the offending value or the payload.
  throw new TrustplaneError(
    'invalid_bundle',
    truncate(`invalid ${label} at ${path}: ${issue?.message ?? 'invalid'}`, MAX_MESSAGE),
    { path: truncate(path, MAX_MESSAGE) },
  );
}

/**
 * Refuse a signed document that its schema would rewrite (trim, normalize, add defaults): the
 * signature is checked over the parsed document, which must then be the very document that was
 * signed. Internal to pkg/bundle.
 * @param canonicalInput the input's canonical JSON, or undefined when the input is not plain JSON
 * @param canonicalParsed the parsed document's canonical JSON (compute it only when the input has
 *   one: the parsed document is made of the input's values, so it then has one too)
 * @throws TrustplaneError `invalid_bundle`
 */
export function assertCanonicalUnaltered(
  canonicalInput: string | undefined,
  canonicalParsed: string,
  label: string,
): void {
  if (canonicalInput === undefined || canonicalInput !== canonicalParsed) {
    throw new TrustplaneError('invalid_bundle', `${label} is not in the form its schema keeps`);
  }
}

/** {@link assertCanonicalUnaltered} for a small document, canonicalized here. Internal to pkg/bundle. */
export function assertParsedUnaltered(input: unknown, parsed: unknown, label: string): void {
  let canonicalInput: string | undefined;
  try {
    canonicalInput = canonicalizeJson(input);
  } catch {
    canonicalInput = undefined;
  }
  assertCanonicalUnaltered(
    canonicalInput,
    canonicalInput === undefined ? '' : canonicalizeJson(parsed),
    label,
  );
}

/**
 * Read document JSON text (bounded to {@link MAX_DOCUMENT_BYTES}, strict UTF-8); failures are
 * `invalid_bundle` and never quote the input. Internal to pkg/bundle.
 */
export function parseJsonText(text: string | Uint8Array, label: string): unknown {
  let source: string;
  if (typeof text === 'string') {
    // UTF-8 never takes fewer bytes than UTF-16 code units, so this pre-check is exact-safe.
    if (text.length > MAX_DOCUMENT_BYTES || utf8Length(text) > MAX_DOCUMENT_BYTES) throw tooLarge(label);
    source = text;
  } else {
    if (text.length > MAX_DOCUMENT_BYTES) throw tooLarge(label);
    try {
      source = fromUtf8Strict(text);
    } catch {
      throw new TrustplaneError('invalid_bundle', `${label} is not valid UTF-8`);
    }
  }
  try {
    return JSON.parse(source) as unknown;
  } catch {
    // The parser's message quotes the input; ours does not: only where.
    throw new TrustplaneError('invalid_bundle', `${label} is not valid JSON at ${jsonErrorPosition(source)}`);
  }
}

function tooLarge(label: string): TrustplaneError {
  return new TrustplaneError('invalid_bundle', `${label} exceeds ${MAX_DOCUMENT_BYTES} bytes`);
}

function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}
