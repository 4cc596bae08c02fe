import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildRouteTable,
  type PolicyApi,
  type PolicyRoute,
  type RouteEntry,
} from '../../pkg/bundle/index.js';
import {
  assertClientPath,
  assertSafePath,
  clientPathProblem,
  MAX_PATH_LENGTH,
  pathSafetyProblem,
} from '../../pkg/proof/index.js';
import { attempt, expectCodedError, fuzzParams, FUZZ_TEST_TIMEOUT_MS } from './fuzz-config.js';
import { interestingChar } from './mutations.js';

/*
 * Fuzz of the request-path checks and of the route table.
 * - No admitted path carries an encoded separator ('%2F', '%5C'), an encoded dot or percent, a
 *   control character, an empty segment or a dot segment (also as `..;x`), and a WHATWG URL parser
 *   (what Hono, undici and most upstreams use) leaves an admitted path exactly as it is.
 * - The route table never resolves a path to a template it does not match segment by segment,
 *   and among the templates that match it picks the one a literal-first walk must pick.
 */

const UNSAFE = { reasons: ['unsafe_request_path'] } as const;

/** Segments that exercise every rule: dots, encodings of separators/dots/percent/controls, `;`. */
const SEGMENTS = [
  'a',
  'v1',
  'orders',
  '42',
  '.',
  '..',
  '...',
  '.;x',
  '..;x',
  '..;',
  ';x',
  ';',
  'a;b',
  '%2F',
  '%2f',
  '%2E',
  '%2e%2e',
  '.%2e',
  '%252F',
  '%25',
  '%5C',
  '%5c',
  '%00',
  '%0a',
  '%0D',
  '%1f',
  '%7F',
  '%7f',
  '%41',
  '%C3%A9',
  '%c3%a9',
  '%e2%80%a8',
  '%',
  '%4',
  '%G1',
  '\\',
  '..\\',
  'a b',
  'é',
  '?',
  '#',
  '{x}',
  '',
  ':',
  '@',
  "!$&'()*+,=",
  '~',
  '\u0000',
  '\t',
  '\u0085',
];

const segment = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...SEGMENTS) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9._~%;:@!$&'()*+,=-]{1,6}$/) },
  { weight: 1, arbitrary: fc.string({ unit: interestingChar, maxLength: 4 }) },
);

/** Raw request paths: mostly `/`-joined tricky segments, sometimes anything at all. */
const rawPath: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(
        fc.constantFrom('/', '/', '/', '', '//', '\\', '/./', '%2F'),
        fc.array(segment, { maxLength: 6 }),
        fc.constantFrom('', '', '', '/', '//', '/.', '?q=1', '#f'),
      )
      .map(([lead, segs, tail]) => `${lead}${segs.join('/')}${tail}`),
  },
  { weight: 2, arbitrary: fc.string({ unit: interestingChar, maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 24 }).map((s) => `/${s}`) },
  { weight: 1, arbitrary: fc.constantFrom(...longPaths()) },
);

/** Paths around MAX_PATH_LENGTH, computed once. */
function longPaths(): string[] {
  const out: string[] = [];
  for (const unit of ['a/', 'ab', '%C3%A9/', '../']) {
    for (const n of [MAX_PATH_LENGTH - 1, MAX_PATH_LENGTH, MAX_PATH_LENGTH + 1])
      out.push(`/${unit.repeat(n)}`.slice(0, n));
  }
  return out;
}

/** The bytes a percent-encoded segment stands for. */
function percentDecode(text: string): number[] {
  const out: number[] = [];
  const bytes = new TextEncoder().encode(text);
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x25) {
      out.push(Number.parseInt(String.fromCharCode(bytes[i + 1]!, bytes[i + 2]!), 16));
      i += 2;
    } else {
      out.push(bytes[i]!);
    }
  }
  return out;
}

/**
 * Why an admitted path is not safe after all, by rules written independently of the implementation
 * (undefined when it is safe).
 */
function unsafeBecause(path: string): string | undefined {
  if (!path.startsWith('/')) return 'does not start with /';
  if (path.length > MAX_PATH_LENGTH) return 'too long';
  if (!/^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$/.test(path)) return 'not RFC 3986 path text';
  if (path.includes('//')) return 'empty segment';
  if (/%2e|%25/i.test(path)) return 'encoded dot or percent';
  for (const seg of path.slice(1).split('/')) {
    const decoded = percentDecode(seg);
    if (decoded.some((b) => b === 0x2f || b === 0x5c || b < 0x20 || b === 0x7f)) {
      return 'encoded separator, backslash or control character';
    }
    // No dot segment, also before a `;` parameter; no segment that is only a parameter.
    const name = seg.split(';', 1)[0]!;
    if (name === '.' || name === '..') return 'dot segment';
    if (seg !== '' && name === '') return 'parameter-only segment';
  }
  // An upstream that parses with WHATWG URL (dot segments resolved, `\` as `/`) sees the same path.
  if (new URL(path, 'http://upstream.example').pathname !== path) return 'a WHATWG URL parser changes it';
  return undefined;
}

describe('fuzz: request paths', () => {
  it('positive control: ordinary paths are admitted', () => {
    for (const path of ['/', '/v1/orders/42', "/c:d/@e/!$&'()*+,=~", '/caf%C3%A9']) {
      expect(pathSafetyProblem(path)).toBeUndefined();
      expect(clientPathProblem(path.replace(/%[0-9A-F]{2}/g, 'x'))).toBeUndefined();
    }
  });

  it(
    'pathSafetyProblem / assertSafePath: no admitted path has an encoded separator or a dot segment',
    () => {
      let admitted = 0;
      fc.assert(
        fc.property(rawPath, (path) => {
          const problem = attempt(() => pathSafetyProblem(path));
          expect(problem.ok, 'pathSafetyProblem threw').toBe(true);
          const asserted = attempt(() => assertSafePath(path));
          if (problem.ok && problem.value !== undefined) {
            expect(asserted.ok).toBe(false);
            if (!asserted.ok) expectCodedError(asserted.error, UNSAFE);
            return;
          }
          expect(asserted.ok).toBe(true);
          expect(unsafeBecause(path), JSON.stringify(path)).toBeUndefined();
          admitted++;
        }),
        fuzzParams('paths.path-safety'),
      );
      expect(admitted, 'no generated path was admitted: the property is vacuous').toBeGreaterThan(0);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'clientPathProblem / assertClientPath: admitted paths are verifier-safe, unencoded, with no trailing slash, under the base path',
    () => {
      let admitted = 0;
      fc.assert(
        fc.property(rawPath, fc.constantFrom('', '/v1', '/v1/orders', '/a;b', '/%41'), (path, basePath) => {
          const options = basePath === '' ? {} : { basePath };
          const problem = attempt(() => clientPathProblem(path, options));
          expect(problem.ok, 'clientPathProblem threw').toBe(true);
          const asserted = attempt(() => assertClientPath(path, options));
          if (problem.ok && problem.value !== undefined) {
            expect(asserted.ok).toBe(false);
            if (!asserted.ok) expectCodedError(asserted.error, UNSAFE);
            return;
          }
          expect(asserted.ok).toBe(true);
          expect(unsafeBecause(path), JSON.stringify(path)).toBeUndefined();
          expect(/[%?#{}\\\u0080-\u009f]/.test(path)).toBe(false);
          if (path !== '/') expect(path.endsWith('/')).toBe(false);
          if (basePath !== '') expect(path === basePath || path.startsWith(`${basePath}/`)).toBe(true);
          admitted++;
        }),
        fuzzParams('paths.client-path'),
      );
      expect(admitted, 'no generated path was admitted: the property is vacuous').toBeGreaterThan(0);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});

// ---------------------------------------------------------------------------------------------
// Route table

type TemplateSegment = { readonly literal: string } | { readonly param: true };
interface TestRoute {
  readonly id: string;
  readonly method: string;
  readonly segments: readonly TemplateSegment[];
}

const LITERALS = ['v1', 'orders', 'search', 'a', 'b', '42', 'caf%C3%A9', '~', 'A', 'Orders'];
const templateSegment: fc.Arbitrary<TemplateSegment> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...LITERALS).map((literal) => ({ literal })) },
  { weight: 2, arbitrary: fc.constant({ param: true as const }) },
);
const routeSpec = fc.record({
  method: fc.constantFrom('GET', 'POST'),
  segments: fc.array(templateSegment, { maxLength: 4 }),
});

const templateOf = (segments: readonly TemplateSegment[]) =>
  `/${segments.map((s, i) => ('literal' in s ? s.literal : `{p${i}}`)).join('/')}`;
const shapeOf = (r: { method: string; segments: readonly TemplateSegment[] }) =>
  `${r.method} /${r.segments.map((s) => ('literal' in s ? s.literal : '{}')).join('/')}`;

/** Routes with unique ids and unique (method, shape), as the policy-bundle schema guarantees. */
const routeSet: fc.Arbitrary<TestRoute[]> = fc
  .array(routeSpec, { minLength: 1, maxLength: 12 })
  .map((specs) => {
    const seen = new Set<string>();
    const routes: TestRoute[] = [];
    for (const spec of specs) {
      if (seen.has(shapeOf(spec))) continue;
      seen.add(shapeOf(spec));
      routes.push({ id: `route-${routes.length}`, ...spec });
    }
    return routes;
  });

const PARAM_VALUES = [
  '42',
  'v1',
  'orders',
  'search',
  'A',
  'ORDERS',
  '%2F',
  '..',
  '.',
  '{p0}',
  'a;b',
  '',
  'a/b',
  '%41',
  'é',
  '?x',
  '#',
];

/** Request paths: filled templates (often with values equal to other routes' literals) and noise. */
function requestPaths(routes: readonly TestRoute[]): fc.Arbitrary<{ method: string; path: string }[]> {
  const fromTemplate = fc
    .tuple(
      fc.nat({ max: routes.length - 1 }),
      fc.array(fc.constantFrom(...PARAM_VALUES), { minLength: 4, maxLength: 4 }),
    )
    .map(([i, values]) => {
      const route = routes[i]!;
      return `/${route.segments.map((s, k) => ('literal' in s ? s.literal : values[k]!)).join('/')}`;
    });
  const noise = fc.oneof(
    rawPath,
    fc
      .array(fc.constantFrom(...LITERALS, ...PARAM_VALUES), { maxLength: 5 })
      .map((segs) => `/${segs.join('/')}`),
  );
  return fc.array(
    fc.record({
      method: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom('GET', 'POST') },
        { weight: 1, arbitrary: fc.constantFrom('get', 'HEAD', 'GET ', '') },
      ),
      path: fc.oneof({ weight: 3, arbitrary: fromTemplate }, { weight: 2, arbitrary: noise }),
    }),
    { minLength: 1, maxLength: 12 },
  );
}

/** The reference resolution: the matching template that is literal-first at the first difference. */
function expectedMatch(routes: readonly TestRoute[], method: string, path: string): TestRoute | undefined {
  if (!path.startsWith('/') || path.includes('?') || path.includes('#')) return undefined;
  const segs = path === '/' ? [] : path.slice(1).split('/');
  if (segs.some((s) => s === '')) return undefined;
  const candidates = routes.filter(
    (r) =>
      r.method === method &&
      r.segments.length === segs.length &&
      r.segments.every((s, i) => ('literal' in s ? s.literal === segs[i] : segs[i] !== '')),
  );
  const rank = (r: TestRoute) => r.segments.map((s) => ('literal' in s ? '1' : '0')).join('');
  return candidates.sort((a, b) => (rank(a) < rank(b) ? 1 : rank(a) > rank(b) ? -1 : 0))[0];
}

const API = { api_id: 'orders-api', audience: 'orders-api' } as PolicyApi;

describe('fuzz: route table', () => {
  it('positive control: a template resolves its own paths, literal first', () => {
    const routes: TestRoute[] = [
      { id: 'get', method: 'GET', segments: [{ literal: 'v1' }, { param: true }] },
      { id: 'search', method: 'GET', segments: [{ literal: 'v1' }, { literal: 'search' }] },
    ];
    const table = buildRouteTable(routes.map(entryOf));
    expect(table.resolve('GET', '/v1/42')?.route.route_id).toBe('get');
    expect(table.resolve('GET', '/v1/42')?.params).toEqual({ p1: '42' });
    expect(table.resolve('GET', '/v1/search')?.route.route_id).toBe('search');
  });

  it(
    'resolve never picks a template that does not match segment by segment, and picks the literal-first one',
    () => {
      let matched = 0;
      fc.assert(
        fc.property(
          routeSet.chain((routes) => fc.tuple(fc.constant(routes), requestPaths(routes))),
          ([routes, requests]) => {
            const built = attempt(() => buildRouteTable(routes.map(entryOf)));
            if (!built.ok) throw built.error;
            const table = built.value;
            for (const r of routes)
              expect(table.resolveById(r.id)?.route.path_template).toBe(templateOf(r.segments));
            for (const { method, path } of requests) {
              const match = attempt(() => table.resolve(method, path));
              if (!match.ok) throw match.error;
              const expected = expectedMatch(routes, method, path);
              expect(match.value?.route.route_id, `${method} ${JSON.stringify(path)}`).toBe(expected?.id);
              if (match.value === undefined || expected === undefined) continue;
              matched++;
              // Segment by segment: literals equal, every parameter one whole non-empty segment.
              const segs = path === '/' ? [] : path.slice(1).split('/');
              const params: Record<string, string> = {};
              expected.segments.forEach((s, i) => {
                if ('literal' in s) expect(segs[i]).toBe(s.literal);
                else params[`p${i}`] = segs[i]!;
              });
              expect({ ...match.value.params }).toEqual(params);
              for (const value of Object.values(match.value.params)) {
                expect(value).not.toBe('');
                expect(value).not.toContain('/');
              }
            }
          },
        ),
        fuzzParams('paths.route-table'),
      );
      expect(matched, 'no generated path matched a route: the property is vacuous').toBeGreaterThan(0);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );
});

function entryOf(r: TestRoute): RouteEntry {
  const route = {
    route_id: r.id,
    method: r.method,
    path_template: templateOf(r.segments),
    allowed_sources: [],
  } as unknown as PolicyRoute;
  return { route, api: API, routeGroupId: 'group' };
}
