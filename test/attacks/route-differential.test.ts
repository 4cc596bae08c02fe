import express from 'express';
import fc from 'fast-check';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { TrustplaneError } from '../../pkg/authcore/index.js';
import { loadPolicyBundle } from '../../pkg/bundle/index.js';
import { pathSafetyProblem } from '../../pkg/proof/index.js';

// Differential check: for every generated request the verifier admits (a safe path that resolves
// to a route without ambiguity), real routers pick the handler of that same route. Express is
// case-insensitive by default and serves HEAD with GET handlers; Hono decodes the path.

const TEMPLATES: readonly [string, string][] = [
  ['GET', '/v1/items/export'],
  ['GET', '/v1/items/{id}'],
  ['POST', '/v1/items/{id}'],
  ['DELETE', '/v1/items/{id}'],
  ['GET', '/v1/items/{id}/notes/{note}'],
  ['GET', '/v1/Reports/daily'],
  ['GET', '/v1/reports/{kind}'],
  ['GET', '/v1/caf%C3%A9/menu'],
  ['GET', '/v1/secret'],
  ['HEAD', '/v1/secret'],
  ['GET', '/'],
];

const routeId = (method: string, template: string) => `${method} ${template}`;

async function table() {
  const source = {
    source_type: 'software_jwks',
    issuer: 'https://issuer.example',
    trust_domain: 'example.local',
    subject_prefix: 'service:',
  };
  const policy = await loadPolicyBundle(
    {
      version: 'trustplane-bundle-v1',
      kind: 'policy_runtime_bundle',
      trust_domain: 'example.local',
      apis: [{ api_id: 'a', audience: 'a' }],
      route_groups: [
        {
          route_group_id: 'g',
          api_id: 'a',
          routes: TEMPLATES.map(([method, path_template], i) => ({
            route_id: `r${i}`,
            method,
            path_template,
            allowed_sources: [source],
          })),
        },
      ],
    },
    { signers: [], allowUnsigned: true },
  );
  return policy.routeTable;
}

/** Express routes, literals registered before parameters (the order that agrees with "a literal beats a parameter"). */
function expressRouter() {
  const router = express.Router();
  const sorted = [...TEMPLATES].sort((a, b) => a[1].split('{').length - b[1].split('{').length);
  for (const [method, template] of sorted) {
    const path = template.replace(/\{(\w+)\}/g, ':$1');
    const handler = (_req: express.Request, res: { picked?: string }) => {
      res.picked = routeId(method, template);
    };
    (router as unknown as Record<string, (p: string, h: typeof handler) => void>)[method.toLowerCase()]!(
      path,
      handler,
    );
  }
  return (method: string, url: string) =>
    new Promise<string | undefined>((resolve) => {
      const res: { picked?: string } = {};
      const req = { method, url, headers: {} } as unknown as express.Request;
      (router as unknown as (rq: unknown, rs: unknown, next: () => void) => void)(req, res, () =>
        resolve(res.picked),
      );
      // Synchronous handlers: resolved by now when one matched.
      queueMicrotask(() => resolve(res.picked));
    });
}

function honoApp() {
  const app = new Hono();
  const sorted = [...TEMPLATES].sort((a, b) => a[1].split('{').length - b[1].split('{').length);
  for (const [method, template] of sorted) {
    // A Hono app names its routes decoded (it matches the decoded request path): /v1/café/menu.
    const path = decodeURI(template).replace(/\{(\w+)\}/g, ':$1');
    app.on(method, path, (c) => c.text(routeId(method, template)));
  }
  return async (method: string, url: string) => {
    const res = await app.request(`http://x${url}`, { method });
    return res.status === 200 ? (method === 'HEAD' ? 'HEAD?' : await res.text()) : undefined;
  };
}

/** Spellings of one template segment an attacker might send. */
function variants(segment: string): string[] {
  if (segment.startsWith('{')) {
    // A parameter: ordinary values, and the literals of sibling routes in other spellings.
    return [
      '42',
      'abc',
      'export',
      'EXPORT',
      'Export',
      'daily',
      'DAILY',
      'menu',
      '%65xport',
      'x;y',
      'caf%C3%A9',
    ];
  }
  const hex = segment.charCodeAt(0).toString(16).toUpperCase();
  return [
    segment,
    segment.toUpperCase(),
    segment.toLowerCase(),
    segment.charAt(0).toUpperCase() + segment.slice(1),
    `%${hex}${segment.slice(1)}`,
    `${segment};x`,
  ];
}

/** A method and a path built from a template, each segment in one of its spellings. */
const request = fc.constantFrom(...TEMPLATES).chain(([method, template]) => {
  const segments = template === '/' ? [] : template.slice(1).split('/');
  return fc
    .tuple(
      fc.constantFrom(method, 'GET', 'HEAD', 'POST', 'DELETE'),
      fc.tuple(...segments.map((seg) => fc.constantFrom(...variants(seg)))),
    )
    .map(([m, parts]) => [m, `/${parts.join('/')}`] as const);
});

describe('differential: the route table and real routers agree on every path the verifier admits', () => {
  it('Express (case-insensitive, HEAD on GET) and Hono (decoding) pick the verified route', async () => {
    const routes = await table();
    const ids = new Map(TEMPLATES.map(([m, t], i) => [`r${i}`, routeId(m, t)]));
    const viaExpress = expressRouter();
    const viaHono = honoApp();
    let admitted = 0;
    await fc.assert(
      fc.asyncProperty(request, async ([method, path]) => {
        if (pathSafetyProblem(path) !== undefined) return;
        let match;
        try {
          match = routes.resolveRequest(method, path);
        } catch (e) {
          expect((e as TrustplaneError).reason).toBe('ambiguous_request_path');
          return;
        }
        if (match === undefined) return;
        admitted++;
        const verified = ids.get(match.route.route_id);
        // HEAD: Express runs the GET handler when no HEAD route matches; the verifier admitted
        // HEAD only when its GET twin is the same route or absent.
        const expressPick = await viaExpress(method, path);
        if (method === 'HEAD') {
          expect([
            path,
            expressPick === verified || expressPick === routeId('GET', match.route.path_template),
          ]).toEqual([path, true]);
        } else {
          expect([method, path, expressPick]).toEqual([method, path, verified]);
        }
        if (method !== 'HEAD')
          expect([method, path, await viaHono(method, path)]).toEqual([method, path, verified]);
      }),
      { numRuns: 3_000 },
    );
    // The property is not vacuous: a good share of the generated requests were admitted.
    expect(admitted).toBeGreaterThan(100);
  });
});
