/** Anything that can answer a header lookup by lowercase name. */
export type HeaderSource =
  | Headers
  | ReadonlyMap<string, string>
  | Readonly<Record<string, string | undefined>>
  | ((name: string) => string | null | undefined);

/** Read a header by lowercase name from any {@link HeaderSource}. */
export function getHeader(source: HeaderSource, name: string): string | undefined {
  if (typeof source === 'function') return source(name) ?? undefined;
  if (source instanceof Headers) return source.get(name) ?? undefined;
  if (source instanceof Map) return source.get(name);
  const rec = source as Readonly<Record<string, string | undefined>>;
  return Object.hasOwn(rec, name) ? rec[name] : undefined;
}
