import { pathSafetyProblem } from '../internal/path-safety.js';

/**
 * `path_template` syntax (trustplane-bundle-v1): `/` alone, or `/`-separated non-empty segments,
 * each either a literal or a whole-segment `{name}` parameter. Internal to pkg/bundle.
 */

/** One parsed template segment. */
export type TemplateSegment =
  { readonly kind: 'literal'; readonly value: string } | { readonly kind: 'param'; readonly name: string };

/** Longest accepted template, in UTF-16 code units. */
export const MAX_PATH_TEMPLATE_LENGTH = 2048;

const PARAM = /^\{([A-Za-z_][A-Za-z0-9_]{0,63})\}$/;

/** Parse a template, or return why it is invalid. */
export function parsePathTemplate(template: string): readonly TemplateSegment[] | string {
  if (template.length > MAX_PATH_TEMPLATE_LENGTH) return 'path_template is too long';
  if (!template.startsWith('/')) return "path_template must start with '/'";
  if (template === '/') return [];
  const segments: TemplateSegment[] = [];
  const names = new Set<string>();
  for (const raw of template.slice(1).split('/')) {
    if (raw === '') return 'path_template has an empty segment (trailing slash or //)';
    const param = PARAM.exec(raw);
    if (param) {
      const name = param[1]!;
      if (names.has(name)) return `path_template repeats parameter {${name}}`;
      names.add(name);
      segments.push({ kind: 'param', name });
      continue;
    }
    if (raw === '.' || raw === '..') return 'path_template has a dot segment';
    // A literal the verifier would refuse in a request path would make the route dead.
    if (pathSafetyProblem(`/${raw}`) !== undefined) {
      return 'path_template segment must be a safe request path segment (see path safety) or a whole-segment {name}';
    }
    segments.push({ kind: 'literal', value: raw });
  }
  return segments;
}

/**
 * The shape of a template with parameter names erased (`/v1/orders/{}`): two routes with the same
 * method and shape would be ambiguous, whatever their parameter names.
 */
export function templateShape(segments: readonly TemplateSegment[]): string {
  return `/${segments.map((s) => (s.kind === 'param' ? '{}' : s.value)).join('/')}`;
}

/**
 * {@link templateShape} straight from the template text, without checking it: for a valid template
 * it is `templateShape(parsePathTemplate(template))`, at a fraction of the cost. The bundle's
 * collision check uses it (an invalid template has its own schema issue).
 */
export function templateShapeOf(template: string): string {
  if (template === '/') return '/';
  let shape = '';
  for (const raw of template.slice(1).split('/')) shape += PARAM.test(raw) ? '/{}' : `/${raw}`;
  return shape;
}
