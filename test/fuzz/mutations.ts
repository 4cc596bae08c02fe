import fc from 'fast-check';
import { decodeBase64Url, encodeBase64Url } from '../../pkg/internal/base64url.js';

/*
 * Mutation arbitraries shared by the fuzz properties. A mutation is generated as plain data (an
 * instruction) and applied by a pure function, so a failing case prints a readable counterexample
 * (`{ op: 'replace', at: 17, text: '=' }`) and shrinks toward simpler instructions.
 */

// ---------------------------------------------------------------------------------------------
// Characters and strings

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Characters that matter to compact JWS, JSON, URLs and HTTP, plus the classic troublemakers. */
const INTERESTING_CHARS = [
  ...BASE64URL_ALPHABET.split(''),
  '.',
  '=',
  '+',
  '/',
  '\\',
  ' ',
  '\t',
  '\r',
  '\n',
  '\u0000',
  '\u007f',
  '\u0085',
  '\u2028',
  '%',
  '"',
  '{',
  '}',
  '[',
  ']',
  ':',
  ',',
  ';',
  '?',
  '#',
  '&',
  '\u00e9',
  '\u00ff',
  '\ufeff',
  '\ud800',
  '\udfff',
  '\u{1f600}',
];

/** One character (sometimes a UTF-16 surrogate half or an astral code point). */
export const interestingChar: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...INTERESTING_CHARS) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
);

/** A short insertion: one interesting character, a few of them, or (rarely) a huge run. */
export const interestingText: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: interestingChar },
  { weight: 3, arbitrary: fc.string({ unit: interestingChar, minLength: 1, maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom('A'.repeat(9000), '.'.repeat(300), '%'.repeat(50), 'eyJ') },
);

// ---------------------------------------------------------------------------------------------
// Text mutations

/** One edit of a string. Positions are taken modulo the length, so any `at` applies. */
export type TextMutation =
  | { readonly op: 'replace'; readonly at: number; readonly text: string }
  | { readonly op: 'insert'; readonly at: number; readonly text: string }
  | { readonly op: 'delete'; readonly at: number; readonly count: number }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'duplicate'; readonly at: number; readonly count: number }
  | { readonly op: 'swap'; readonly at: number }
  | { readonly op: 'case'; readonly at: number }
  | { readonly op: 'append'; readonly text: string }
  | { readonly op: 'prepend'; readonly text: string };

const position = fc.nat({ max: 1 << 20 });

/** An arbitrary text edit. */
export const textMutation: fc.Arbitrary<TextMutation> = fc.oneof(
  fc.record({ op: fc.constant('replace' as const), at: position, text: interestingChar }),
  fc.record({ op: fc.constant('insert' as const), at: position, text: interestingText }),
  fc.record({ op: fc.constant('delete' as const), at: position, count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: position }),
  fc.record({ op: fc.constant('duplicate' as const), at: position, count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('swap' as const), at: position }),
  fc.record({ op: fc.constant('case' as const), at: position }),
  fc.record({ op: fc.constant('append' as const), text: interestingText }),
  fc.record({ op: fc.constant('prepend' as const), text: interestingText }),
);

/** One to four text edits. */
export const textMutations: fc.Arbitrary<readonly TextMutation[]> = fc.array(textMutation, {
  minLength: 1,
  maxLength: 4,
});

/** Apply one text edit. */
export function applyTextMutation(text: string, m: TextMutation): string {
  const n = text.length;
  const at = 'at' in m ? (n === 0 ? 0 : m.at % n) : 0;
  switch (m.op) {
    case 'replace':
      return n === 0 ? m.text : text.slice(0, at) + m.text + text.slice(at + 1);
    case 'insert':
      return text.slice(0, at) + m.text + text.slice(at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + m.count);
    case 'truncate':
      return text.slice(0, at);
    case 'duplicate':
      return text.slice(0, at + m.count) + text.slice(at);
    case 'swap':
      return n < 2 || at === n - 1
        ? text
        : text.slice(0, at) + text[at + 1]! + text[at]! + text.slice(at + 2);
    case 'case': {
      const c = text.charAt(at);
      const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
      return text.slice(0, at) + flipped + text.slice(at + 1);
    }
    case 'append':
      return text + m.text;
    case 'prepend':
      return m.text + text;
  }
}

/** Apply text edits in order. */
export function applyTextMutations(text: string, ms: readonly TextMutation[]): string {
  return ms.reduce(applyTextMutation, text);
}

// ---------------------------------------------------------------------------------------------
// Values for type confusion

/** Numbers that break naive claim and field checks. */
export const trickyNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    -1,
    1,
    0.5,
    -0.5,
    1e21,
    1e-7,
    1e308,
    -1e308,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    1_767_225_600,
    1_767_225_600.5,
    1_767_225_900,
    1_767_225_570,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** JSON values of every type, small, with strings that are sometimes huge or unicode. */
export function confusingValue(domainStrings: readonly string[] = []): fc.Arbitrary<unknown> {
  const strings = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 12 }),
    fc.constantFrom('', ' ', 'null', 'true', '0', '1767225600', 'x'.repeat(300), 'x'.repeat(5000)),
    ...(domainStrings.length > 0 ? [fc.constantFrom(...domainStrings)] : []),
  );
  return fc.oneof(
    { weight: 4, arbitrary: strings },
    { weight: 3, arbitrary: trickyNumber },
    { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}) },
    { weight: 1, arbitrary: fc.array(strings, { maxLength: 3 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  );
}

// ---------------------------------------------------------------------------------------------
// JSON mutations

/** A path into a JSON value: member names and array indices. */
export type JsonPath = readonly (string | number)[];

/** Every path of a JSON value (the root first), depth-first in member order. */
export function jsonPaths(value: unknown, prefix: JsonPath = []): JsonPath[] {
  const out: JsonPath[] = [prefix];
  if (Array.isArray(value)) {
    value.forEach((item, i) => out.push(...jsonPaths(item, [...prefix, i])));
  } else if (typeof value === 'object' && value !== null) {
    for (const key of Object.keys(value)) {
      out.push(...jsonPaths((value as Record<string, unknown>)[key], [...prefix, key]));
    }
  }
  return out;
}

/** A deep copy of plain JSON data that keeps own members named `__proto__` as data. */
export function cloneJson<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => cloneJson(v)) as T;
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value))
      setMember(out, key, cloneJson((value as Record<string, unknown>)[key]));
    return out as T;
  }
  return value;
}

/** Set an own data member (a `__proto__` key stays a member, as JSON.parse makes it). */
export function setMember(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** One structural edit of a JSON document, at the `target`-th path (modulo the path count). */
export type JsonMutation =
  | { readonly op: 'set'; readonly target: number; readonly value: unknown }
  | { readonly op: 'delete'; readonly target: number }
  | { readonly op: 'add'; readonly target: number; readonly key: string; readonly value: unknown }
  | { readonly op: 'text'; readonly target: number; readonly edits: readonly TextMutation[] }
  | { readonly op: 'number'; readonly target: number; readonly value: number }
  | { readonly op: 'wrap'; readonly target: number }
  | { readonly op: 'stringify'; readonly target: number }
  | { readonly op: 'duplicate'; readonly target: number }
  | {
      readonly op: 'edit-member';
      readonly name: string;
      readonly target: number;
      readonly edits: readonly TextMutation[];
    };

const MEMBER_NAMES = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'signature',
  'signed_by',
  'extra',
  'alg',
  'kid',
  'x',
  'd',
  'crit',
  'jwk',
];

/**
 * An arbitrary JSON edit; `domainStrings` seeds the replacement values with meaningful words, and
 * `memberNames` names string members worth editing in place (`edit-member`).
 */
export function jsonMutation(
  domainStrings: readonly string[] = [],
  memberNames: readonly string[] = [],
): fc.Arbitrary<JsonMutation> {
  const target = fc.nat({ max: 1 << 16 });
  const value = confusingValue(domainStrings);
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), target, value }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), target }) },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('add' as const),
        target,
        key: fc.oneof(fc.constantFrom(...MEMBER_NAMES), fc.string({ maxLength: 8 })),
        value,
      }),
    },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('text' as const), target, edits: textMutations }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('number' as const), target, value: trickyNumber }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('wrap' as const), target }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('stringify' as const), target }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('duplicate' as const), target }) },
    ...(memberNames.length > 0
      ? [
          {
            weight: 3,
            arbitrary: fc.record({
              op: fc.constant('edit-member' as const),
              name: fc.constantFrom(...memberNames),
              target,
              edits: textMutations,
            }),
          },
        ]
      : []),
  );
}

function getAt(root: unknown, path: JsonPath): unknown {
  let node = root;
  for (const key of path) node = (node as Record<string | number, unknown>)[key];
  return node;
}

/**
 * Apply one JSON edit to a copy of `doc`. Paths for which `skip` is true are never targeted
 * (e.g. the `signature` member); when nothing is left, the copy is returned unchanged.
 */
export function applyJsonMutation(
  doc: unknown,
  m: JsonMutation,
  skip: (path: JsonPath) => boolean = () => false,
): unknown {
  const copy = cloneJson(doc);
  const paths = jsonPaths(copy).filter((p) => !skip(p));
  if (m.op === 'edit-member') {
    // The string members with that name (e.g. every `base_url`), edited in place.
    const named = paths.filter((p) => p[p.length - 1] === m.name && typeof getAt(copy, p) === 'string');
    if (named.length === 0) return copy;
    const path = named[m.target % named.length]!;
    const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, unknown>;
    const key = path[path.length - 1]!;
    parent[key] = applyTextMutations(parent[key] as string, m.edits);
    return copy;
  }
  if (paths.length === 0) return copy;
  const path = paths[m.target % paths.length]!;
  const current = getAt(copy, path);
  const replace = (value: unknown): unknown => {
    if (path.length === 0) return value;
    const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, unknown>;
    const key = path[path.length - 1]!;
    if (Array.isArray(parent)) parent[key as number] = value;
    else setMember(parent, key as string, value);
    return copy;
  };
  switch (m.op) {
    case 'set':
      return replace(cloneJson(m.value));
    case 'number':
      return replace(m.value);
    case 'wrap':
      return replace([current]);
    case 'stringify':
      return replace(typeof current === 'string' ? current : (JSON.stringify(current) ?? 'null'));
    case 'text':
      return replace(
        applyTextMutations(
          typeof current === 'string' ? current : (JSON.stringify(current) ?? 'null'),
          m.edits,
        ),
      );
    case 'add': {
      if (Array.isArray(current)) {
        current.splice(m.target % (current.length + 1), 0, cloneJson(m.value));
        return copy;
      }
      if (typeof current === 'object' && current !== null) {
        setMember(current as Record<string, unknown>, m.key, cloneJson(m.value));
        return copy;
      }
      return replace({ [m.key]: cloneJson(m.value) });
    }
    case 'duplicate': {
      if (Array.isArray(current) && current.length > 0) {
        current.push(cloneJson(current[m.target % current.length]));
        return copy;
      }
      return replace([current, cloneJson(current)]);
    }
    case 'delete': {
      if (path.length === 0) return undefined;
      const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, unknown>;
      const key = path[path.length - 1]!;
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key as string];
      return copy;
    }
  }
}

/** Apply JSON edits in order (see {@link applyJsonMutation}). */
export function applyJsonMutations(
  doc: unknown,
  ms: readonly JsonMutation[],
  skip?: (path: JsonPath) => boolean,
): unknown {
  return ms.reduce((d, m) => applyJsonMutation(d, m, skip), doc);
}

// ---------------------------------------------------------------------------------------------
// Compact JWS (passports, receipts)

/** The Ed25519 group order L (RFC 8032 section 5.1). */
const ED25519_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;

/**
 * The classic Ed25519 malleability: S + L verifies on implementations that do not check S < L
 * (RFC 8032 section 5.1.7 requires the check). Undefined when S + L does not fit in 32 bytes.
 */
export function addGroupOrder(signature: Uint8Array): Uint8Array | undefined {
  if (signature.length !== 64) return undefined;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]!);
  s += ED25519_ORDER;
  if (s >= 2n ** 256n) return undefined;
  const out = signature.slice();
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return out;
}

/** Values a JWS header parameter may take in the fuzz: the right ones, near misses, wrong types. */
export const ALG_VALUES: readonly unknown[] = [
  'EdDSA',
  'Ed25519',
  'none',
  'None',
  'NONE',
  'eddsa',
  'EDDSA',
  'ed25519',
  'Ed448',
  'HS256',
  'RS256',
  'ES256',
  'PS256',
  'EdDSA ',
  ' EdDSA',
  'EdDSA\u0000',
  '',
  null,
  1,
  true,
  ['EdDSA'],
  { alg: 'EdDSA' },
];
export const TYP_VALUES: readonly unknown[] = [
  'JWT',
  'jwt',
  'JOSE',
  'at+jwt',
  'trustplane-receipt-v1',
  '',
  1,
  null,
];

/** A protected header built from parameter choices (`undefined` leaves a parameter out). */
export function jwsHeader(kids: readonly unknown[]): fc.Arbitrary<Record<string, unknown>> {
  const absent = fc.constant(undefined);
  const extra = fc.constantFrom<readonly [string, unknown] | undefined>(
    undefined,
    undefined,
    undefined,
    ['crit', ['b64']],
    ['b64', false],
    ['jwk', { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) }],
    ['jku', 'https://attacker.example/jwks'],
    ['x5c', ['MIIB']],
    ['x5u', 'https://attacker.example/x5u'],
    ['cty', 'JWT'],
    ['__proto__', { alg: 'none' }],
    ['zip', 'DEF'],
  );
  return fc
    .tuple(
      fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...ALG_VALUES) }, { weight: 1, arbitrary: absent }),
      fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...kids) }, { weight: 1, arbitrary: absent }),
      fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...TYP_VALUES) }, { weight: 2, arbitrary: absent }),
      extra,
      fc.boolean(),
    )
    .map(([alg, kid, typ, more, kidFirst]) => {
      const header: Record<string, unknown> = {};
      if (kidFirst && kid !== undefined) setMember(header, 'kid', kid);
      if (alg !== undefined) setMember(header, 'alg', alg);
      if (!kidFirst && kid !== undefined) setMember(header, 'kid', kid);
      if (typ !== undefined) setMember(header, 'typ', typ);
      if (more !== undefined) setMember(header, more[0], more[1]);
      return header;
    });
}

/** base64url (unpadded) of the UTF-8 JSON text of `value`. */
export function encodeJsonSegment(value: unknown, space?: number): string {
  return encodeBase64Url(new TextEncoder().encode(JSON.stringify(value, null, space)));
}

/** One structured edit of a compact JWS. */
export type JwsMutation =
  | { readonly kind: 'segment'; readonly segment: number; readonly edits: readonly TextMutation[] }
  | { readonly kind: 'text'; readonly edits: readonly TextMutation[] }
  | { readonly kind: 'segments'; readonly order: readonly number[] }
  | { readonly kind: 'header'; readonly header: Record<string, unknown> }
  | { readonly kind: 'claim'; readonly name: string; readonly value: unknown }
  | { readonly kind: 'drop-claim'; readonly name: string }
  | { readonly kind: 'reencode'; readonly segment: number; readonly space: number }
  | {
      readonly kind: 'signature';
      readonly op:
        | 'add-order'
        | 'flip-bit'
        | 'zero'
        | 'noncanonical-tail'
        | 'standard-base64'
        | 'padding'
        | 'shorter'
        | 'longer';
      readonly bit: number;
    };

/** Arbitrary JWS edits; `claims` names the payload members worth targeting, `kids` the header kids. */
export function jwsMutation(options: {
  readonly claims: readonly string[];
  readonly kids: readonly unknown[];
  readonly claimValues?: readonly string[];
}): fc.Arbitrary<JwsMutation> {
  const claimName = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...options.claims) },
    { weight: 1, arbitrary: fc.constantFrom(...MEMBER_NAMES) },
  );
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('segment' as const),
        segment: fc.integer({ min: 0, max: 2 }),
        edits: textMutations,
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('text' as const), edits: textMutations }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('segments' as const),
        order: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 0, maxLength: 5 }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant('header' as const), header: jwsHeader(options.kids) }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('claim' as const),
        name: claimName,
        value: confusingValue(options.claimValues ?? []),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop-claim' as const), name: claimName }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('reencode' as const),
        segment: fc.integer({ min: 0, max: 1 }),
        space: fc.integer({ min: 0, max: 2 }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('signature' as const),
        op: fc.constantFrom(
          'add-order',
          'flip-bit',
          'zero',
          'noncanonical-tail',
          'standard-base64',
          'padding',
          'shorter',
          'longer',
        ),
        bit: fc.nat({ max: 511 }),
      }),
    },
  );
}

function decodeJsonSegment(segment: string): unknown {
  const bytes = decodeBase64Url(segment);
  if (!bytes) return undefined;
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch {
    return undefined;
  }
}

/** Apply one structured edit to a compact JWS. */
export function applyJwsMutation(token: string, m: JwsMutation): string {
  const parts = token.split('.');
  const [h = '', p = '', s = ''] = parts;
  switch (m.kind) {
    case 'segment': {
      const out = [h, p, s];
      out[m.segment] = applyTextMutations(out[m.segment]!, m.edits);
      return out.join('.');
    }
    case 'text':
      return applyTextMutations(token, m.edits);
    case 'segments':
      return m.order.map((i) => [h, p, s][i]!).join('.');
    case 'header':
      return [encodeJsonSegment(m.header), p, s].join('.');
    case 'claim':
    case 'drop-claim': {
      const payload = decodeJsonSegment(p);
      if (typeof payload !== 'object' || payload === null) return token;
      const copy = cloneJson(payload) as Record<string, unknown>;
      if (m.kind === 'claim') setMember(copy, m.name, cloneJson(m.value));
      else delete copy[m.name];
      return [h, encodeJsonSegment(copy), s].join('.');
    }
    case 'reencode': {
      const value = decodeJsonSegment(m.segment === 0 ? h : p);
      if (value === undefined) return token;
      const text = encodeJsonSegment(value, m.space === 0 ? undefined : m.space);
      return (m.segment === 0 ? [text, p, s] : [h, text, s]).join('.');
    }
    case 'signature': {
      const sig = decodeBase64Url(s);
      if (!sig) return token;
      let next: string;
      switch (m.op) {
        case 'add-order': {
          const malleated = addGroupOrder(sig);
          next = malleated ? encodeBase64Url(malleated) : s;
          break;
        }
        case 'flip-bit': {
          const copy = sig.slice();
          const i = (m.bit >> 3) % Math.max(1, copy.length);
          if (copy.length > 0) copy[i] = copy[i]! ^ (1 << (m.bit & 7));
          next = encodeBase64Url(copy);
          break;
        }
        case 'zero':
          next = encodeBase64Url(new Uint8Array(sig.length));
          break;
        case 'noncanonical-tail': {
          // Same decoded bits, different text: only the unused low bits of the last character change.
          const last = s.charAt(s.length - 1);
          const index = BASE64URL_ALPHABET.indexOf(last);
          const unused = s.length % 4 === 2 ? 15 : s.length % 4 === 3 ? 3 : 0;
          if (index < 0 || unused === 0) return token;
          const low = ((m.bit % unused) + 1) & unused;
          next = s.slice(0, -1) + BASE64URL_ALPHABET[(index & ~unused) | low]!;
          break;
        }
        case 'standard-base64':
          next = s.replace(/-/g, '+').replace(/_/g, '/');
          break;
        case 'padding':
          next = `${s}${'='.repeat((4 - (s.length % 4)) % 4 || 2)}`;
          break;
        case 'shorter':
          next = encodeBase64Url(sig.subarray(0, sig.length - 1));
          break;
        case 'longer':
          next = encodeBase64Url(new Uint8Array([...sig, m.bit & 0xff]));
          break;
      }
      return [h, p, next].join('.');
    }
  }
}

/** One to three JWS edits. */
export function jwsMutations(
  options: Parameters<typeof jwsMutation>[0],
): fc.Arbitrary<readonly JwsMutation[]> {
  return fc.array(jwsMutation(options), { minLength: 1, maxLength: 3 });
}

/** Apply JWS edits in order. */
export function applyJwsMutations(token: string, ms: readonly JwsMutation[]): string {
  return ms.reduce(applyJwsMutation, token);
}

// ---------------------------------------------------------------------------------------------
// DER

/** One TLV of a DER encoding: where its tag, length and content are. */
export interface DerNode {
  readonly tagAt: number;
  readonly lengthAt: number;
  readonly contentStart: number;
  readonly contentEnd: number;
}

function readTlv(bytes: Uint8Array, at: number, end: number): DerNode | undefined {
  if (at + 2 > end) return undefined;
  const first = bytes[at + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = at + 2;
  } else {
    const octets = first & 0x7f;
    if (octets === 0 || octets > 4 || at + 2 + octets > end) return undefined;
    length = 0;
    for (let k = 0; k < octets; k++) length = length * 256 + bytes[at + 2 + k]!;
    contentStart = at + 2 + octets;
  }
  const contentEnd = contentStart + length;
  if (contentEnd > end) return undefined;
  return { tagAt: at, lengthAt: at + 1, contentStart, contentEnd };
}

/** Every TLV of a DER value, descending into constructed values and DER wrapped in OCTET/BIT STRINGs. */
export function derNodes(bytes: Uint8Array, start = 0, end = bytes.length, out: DerNode[] = []): DerNode[] {
  let at = start;
  while (at < end) {
    const node = readTlv(bytes, at, end);
    if (!node) break;
    out.push(node);
    const tag = bytes[at]!;
    if ((tag & 0x20) !== 0) {
      derNodes(bytes, node.contentStart, node.contentEnd, out);
    } else if (tag === 0x04 || tag === 0x03) {
      // extnValue OCTET STRINGs and SubjectPublicKeyInfo BIT STRINGs often wrap DER.
      const inner = tag === 0x03 ? node.contentStart + 1 : node.contentStart;
      const probe = readTlv(bytes, inner, node.contentEnd);
      if (probe && probe.contentEnd === node.contentEnd) derNodes(bytes, inner, node.contentEnd, out);
    }
    at = node.contentEnd;
  }
  return out;
}

/** One edit of DER bytes: raw byte edits, or an edit of the tag, length or content of one TLV. */
export type ByteMutation =
  | { readonly op: 'flip'; readonly at: number; readonly bit: number }
  | { readonly op: 'set'; readonly at: number; readonly value: number }
  | { readonly op: 'insert'; readonly at: number; readonly bytes: readonly number[] }
  | { readonly op: 'delete'; readonly at: number; readonly count: number }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'append'; readonly bytes: readonly number[] }
  | {
      readonly op: 'tlv';
      readonly node: number;
      readonly change: 'tag' | 'length-up' | 'length-down' | 'long-length' | 'indefinite' | 'content';
      readonly value: number;
    };

/** An arbitrary DER edit. */
export const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('flip' as const), at: position, bit: fc.nat({ max: 7 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('set' as const),
      at: position,
      value: fc.oneof(fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0x81, 0xff), fc.nat({ max: 255 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('insert' as const),
      at: position,
      bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('delete' as const),
      at: position,
      count: fc.integer({ min: 1, max: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: position }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('append' as const),
      bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('tlv' as const),
      node: fc.nat({ max: 1 << 12 }),
      change: fc.constantFrom('tag', 'length-up', 'length-down', 'long-length', 'indefinite', 'content'),
      value: fc.nat({ max: 255 }),
    }),
  },
);

/** Apply one DER edit to a copy. */
export function applyByteMutation(bytes: Uint8Array, m: ByteMutation): Uint8Array {
  const n = bytes.length;
  const at = 'at' in m ? (n === 0 ? 0 : m.at % n) : 0;
  switch (m.op) {
    case 'flip': {
      const copy = bytes.slice();
      if (n > 0) copy[at] = copy[at]! ^ (1 << m.bit);
      return copy;
    }
    case 'set': {
      const copy = bytes.slice();
      if (n > 0) copy[at] = m.value;
      return copy;
    }
    case 'insert':
      return new Uint8Array([...bytes.subarray(0, at), ...m.bytes, ...bytes.subarray(at)]);
    case 'delete':
      return new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(at + m.count)]);
    case 'truncate':
      return bytes.slice(0, at);
    case 'append':
      return new Uint8Array([...bytes, ...m.bytes]);
    case 'tlv': {
      const nodes = derNodes(bytes);
      if (nodes.length === 0) return bytes.slice();
      const node = nodes[m.node % nodes.length]!;
      const copy = bytes.slice();
      switch (m.change) {
        case 'tag':
          copy[node.tagAt] = m.value === copy[node.tagAt] ? m.value ^ 0x01 : m.value;
          return copy;
        case 'length-up':
        case 'length-down': {
          // The last length octet, so the declared length moves by one.
          const lastLengthOctet = node.contentStart - 1;
          copy[lastLengthOctet] = (copy[lastLengthOctet]! + (m.change === 'length-up' ? 1 : 255)) & 0xff;
          return copy;
        }
        case 'long-length': {
          // The same length in a non-minimal long form (BER, not DER).
          const length = node.contentEnd - node.contentStart;
          const long = [
            0x84,
            (length >>> 24) & 0xff,
            (length >>> 16) & 0xff,
            (length >>> 8) & 0xff,
            length & 0xff,
          ];
          return new Uint8Array([
            ...bytes.subarray(0, node.lengthAt),
            ...long,
            ...bytes.subarray(node.contentStart),
          ]);
        }
        case 'indefinite':
          copy[node.lengthAt] = 0x80;
          return copy;
        case 'content': {
          const size = node.contentEnd - node.contentStart;
          if (size === 0) return copy;
          const i = node.contentStart + (m.value % size);
          copy[i] = copy[i]! ^ (1 + (m.value % 255));
          return copy;
        }
      }
    }
  }
}

/** One to three DER edits. */
export const byteMutations: fc.Arbitrary<readonly ByteMutation[]> = fc.array(byteMutation, {
  minLength: 1,
  maxLength: 3,
});

/** Apply DER edits in order. */
export function applyByteMutations(bytes: Uint8Array, ms: readonly ByteMutation[]): Uint8Array {
  return ms.reduce(applyByteMutation, bytes);
}

/** True when two byte arrays are equal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
