/**
 * RFC 8785 JSON Canonicalization Scheme (JCS).
 *
 * Accepts only I-JSON values built from plain data: `null`, booleans, finite numbers, well-formed
 * strings, arrays and plain objects (prototype `Object.prototype` or `null`). Anything else throws
 * `TypeError` instead of being silently coerced, because the output is what gets signed.
 */

import type { SlicePoint } from './yield.js';

/** Deeper nesting is refused (RangeError) so hostile input cannot exhaust the stack. */
export const MAX_JCS_DEPTH = 256;

// With the `u` flag a surrogate class only matches surrogates that are not part of a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

// What JSON.stringify escapes in a well-formed string: the quote, the backslash, C0 controls.
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

function serializeString(text: string, what: string): string {
  if (LONE_SURROGATE.test(text)) throw new TypeError(`canonicalizeJson: lone surrogate in ${what}`);
  // RFC 8785 section 3.2.2.2 adopts ECMAScript JSON.stringify string escaping verbatim; a string
  // with nothing to escape (most are) is itself between quotes, without the call.
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`;
}

function serializeNumber(value: number): string {
  if (!Number.isFinite(value)) throw new TypeError('canonicalizeJson: NaN and Infinity are not JSON');
  // RFC 8785 section 3.2.2.3: ECMAScript Number::toString (String(-0) is "0", as JSON has it).
  return String(value);
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The members of a plain object (at `depth`), sorted, each as its text `"name":value`; with `names`,
 * their names are pushed to it in the same order.
 */
function serializeMembers(
  record: Readonly<Record<string, unknown>>,
  depth: number,
  seen: Set<object>,
  names?: string[],
): string[] {
  const parts: string[] = [];
  // RFC 8785 section 3.2.3: sort by UTF-16 code units, which is the default Array sort order.
  for (const key of Object.keys(record).sort()) {
    const member = record[key];
    // Like JSON.stringify, an undefined member is absent, so the signed bytes equal what a
    // JSON.stringify round trip of the same object would carry.
    if (member === undefined) continue;
    parts.push(`${serializeString(key, 'member name')}:${serialize(member, depth + 1, seen)}`);
    names?.push(key);
  }
  return parts;
}

function serialize(value: unknown, depth: number, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return serializeString(value, 'string');
    case 'number':
      return serializeNumber(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      throw new TypeError(`canonicalizeJson: ${typeof value} is not a JSON value`);
  }
  if (value === null) return 'null';
  if (depth >= MAX_JCS_DEPTH) throw new RangeError('canonicalizeJson: nesting too deep');
  if (seen.has(value)) throw new TypeError('canonicalizeJson: cyclic structure');
  seen.add(value);
  let out: string;
  if (Array.isArray(value)) {
    const parts: string[] = [];
    // Indexed loop, not for-of/map: holes must be seen (as undefined) and refused.
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined) throw new TypeError('canonicalizeJson: undefined array element');
      parts.push(serialize(item, depth + 1, seen));
    }
    out = `[${parts.join(',')}]`;
  } else {
    if (!isPlainObject(value)) throw new TypeError('canonicalizeJson: only plain objects are JSON objects');
    out = `{${serializeMembers(value as Record<string, unknown>, depth, seen).join(',')}}`;
  }
  seen.delete(value);
  return out;
}

/**
 * The members of a plain object in canonical (RFC 8785) order, each as its canonical text
 * `"name":value`: `{${members.join(',')}}` is `canonicalizeJson(object)`. For callers that add a
 * member to a canonical object without serializing the rest again.
 * @throws as {@link canonicalizeJson}; TypeError for a value that is not a plain object
 * @example canonicalMembers({ b: 1, a: 2 }) // [['a', '"a":2'], ['b', '"b":1']]
 */
export function canonicalMembers(value: Readonly<Record<string, unknown>>): [string, string][] {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !isPlainObject(value)) {
    throw new TypeError('canonicalizeJson: only plain objects are JSON objects');
  }
  const names: string[] = [];
  const parts = serializeMembers(value, 0, new Set<object>([value]), names);
  return parts.map((text, i) => [names[i]!, text]);
}

/**
 * Canonical JSON text (RFC 8785) of a plain JSON value.
 *
 * @throws TypeError for NaN/Infinity, lone surrogates in strings or member names, bigint, symbol,
 *   function, `undefined` (top level or array element), non-plain objects (Date, Map, class
 *   instances) and cycles; RangeError for nesting deeper than {@link MAX_JCS_DEPTH}.
 * @example canonicalizeJson({ b: 1, a: [true, null] }) // '{"a":[true,null],"b":1}'
 */
export function canonicalizeJson(value: unknown): string {
  return serialize(value, 0, new Set());
}

/** How deep {@link canonicalMembersSliced} pauses: below this depth a value is serialized in one go. */
const SLICED_DEPTH = 4;

async function serializeSliced(
  value: unknown,
  depth: number,
  seen: Set<object>,
  pause: SlicePoint,
): Promise<string> {
  if (depth >= SLICED_DEPTH || typeof value !== 'object' || value === null) {
    return serialize(value, depth, seen);
  }
  if (seen.has(value)) throw new TypeError('canonicalizeJson: cyclic structure');
  seen.add(value);
  let out: string;
  if (Array.isArray(value)) {
    const parts: string[] = [];
    for (let i = 0; i < value.length; i++) {
      const paused = pause();
      if (paused) await paused;
      const item: unknown = value[i];
      if (item === undefined) throw new TypeError('canonicalizeJson: undefined array element');
      parts.push(await serializeSliced(item, depth + 1, seen, pause));
    }
    out = `[${parts.join(',')}]`;
  } else {
    if (!isPlainObject(value)) throw new TypeError('canonicalizeJson: only plain objects are JSON objects');
    out = `{${(await membersSliced(value as Record<string, unknown>, depth, seen, pause)).join(',')}}`;
  }
  seen.delete(value);
  return out;
}

async function membersSliced(
  record: Readonly<Record<string, unknown>>,
  depth: number,
  seen: Set<object>,
  pause: SlicePoint,
  names?: string[],
): Promise<string[]> {
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const member = record[key];
    if (member === undefined) continue;
    parts.push(
      `${serializeString(key, 'member name')}:${await serializeSliced(member, depth + 1, seen, pause)}`,
    );
    names?.push(key);
  }
  return parts;
}

/**
 * {@link canonicalMembers} computed in slices: `pause` is consulted before each array element of the
 * first few levels (a policy bundle's route groups and routes), so a large document is serialized
 * without holding the event loop for all of it. The result is the same as `canonicalMembers`.
 * @throws as {@link canonicalMembers}
 * @example const members = await canonicalMembersSliced(bundle, timeSlicer(2))
 */
export async function canonicalMembersSliced(
  value: Readonly<Record<string, unknown>>,
  pause: SlicePoint,
): Promise<[string, string][]> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !isPlainObject(value)) {
    throw new TypeError('canonicalizeJson: only plain objects are JSON objects');
  }
  const names: string[] = [];
  const parts = await membersSliced(value, 0, new Set<object>([value]), pause, names);
  return parts.map((text, i) => [names[i]!, text]);
}
