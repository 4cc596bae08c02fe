/** What a JSON Pointer resolves to: the value, or that nothing is there. */
export type PointerResult = { readonly found: true; readonly value: unknown } | { readonly found: false };

/** Split an RFC 6901 pointer (`/a/b~1c`) into unescaped reference tokens. */
export function pointerTokens(pointer: string): readonly string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * Resolve RFC 6901 reference tokens in a parsed JSON value. Only own members are read (never
 * `__proto__` or inherited names); an array index is decimal without leading zeros.
 * @example resolvePointer({ a: [1, 2] }, ['a', '1']) // { found: true, value: 2 }
 */
export function resolvePointer(root: unknown, tokens: readonly string[]): PointerResult {
  let current: unknown = root;
  for (const token of tokens) {
    if (Array.isArray(current)) {
      if (!/^(?:0|[1-9][0-9]{0,8})$/.test(token)) return { found: false };
      const index = Number(token);
      if (index >= current.length) return { found: false };
      current = current[index];
    } else if (typeof current === 'object' && current !== null) {
      if (!Object.hasOwn(current, token)) return { found: false };
      current = (current as Record<string, unknown>)[token];
    } else {
      return { found: false };
    }
  }
  return { found: true, value: current };
}
