import { z } from 'zod';

/*
 * zod building blocks shared by the schemas of the two signed documents (trust material, policy
 * bundle). Every object is strict (unknown keys rejected), every string is bounded, and there are
 * no defaults or transforms: a parsed document deep-equals its input, so what is signed, what is
 * stored and what is enforced are the same value. Internal to pkg/bundle.
 */

export const text = (max: number) => z.string().min(1).max(max);
/**
 * An absolute URL with one of `protocols`, validated but never rewritten: zod's `z.url()` trims the
 * value and drops TAB/CR/LF, so a signature checked over the parsed document would cover other
 * bytes than the signer's. Surrounding spaces and control characters are refused instead.
 */
export function urlField(protocols: readonly string[], max = 2048) {
  return z
    .string()
    .max(max)
    .refine(
      (value) => {
        // eslint-disable-next-line no-control-regex
        if (value !== value.trim() || /[\u0000-\u001f\u007f]/.test(value)) return false;
        try {
          return protocols.includes(new URL(value).protocol.slice(0, -1));
        } catch {
          return false;
        }
      },
      `must be an absolute ${protocols.join(' or ')} URL without spaces or control characters`,
    )
    .meta({ format: 'uri' });
}

export const epochSeconds = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** SPIFFE trust-domain characters (lowercase), at most 255 bytes. */
export const trustDomain = z
  .string()
  .regex(/^[a-z0-9._-]{1,255}$/, 'must be a lowercase trust domain (a-z 0-9 . - _)');
export const sourceType = z.string().regex(/^[a-z0-9_]{1,64}$/, 'must match ^[a-z0-9_]+$');

export function addDuplicateIssues<T>(
  ctx: z.RefinementCtx,
  items: readonly T[],
  keyOf: (item: T) => string,
  path: (index: number) => PropertyKey[],
  message: string,
): void {
  const seen = new Set<string>();
  items.forEach((item, index) => {
    const key = keyOf(item);
    if (seen.has(key)) ctx.addIssue({ code: 'custom', message, path: path(index) });
    seen.add(key);
  });
}

/** A signed document's validity window: when both ends are given, expires_at is after issued_at. */
export function addValidityWindowIssue(
  ctx: z.RefinementCtx,
  doc: { readonly issued_at?: number | undefined; readonly expires_at?: number | undefined },
): void {
  if (doc.issued_at !== undefined && doc.expires_at !== undefined && doc.expires_at <= doc.issued_at) {
    ctx.addIssue({ code: 'custom', message: 'expires_at must be after issued_at', path: ['expires_at'] });
  }
}
