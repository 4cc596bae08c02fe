import { describe, expect, it } from 'vitest';
import { buildRouteTable, type PolicyApi, type RouteEntry } from '../../pkg/bundle/index.js';
import { route } from './fixtures.js';
import { parsePathTemplate, templateShape, templateShapeOf } from '../../pkg/bundle/path-template.js';

const api: PolicyApi = { api_id: 'orders-api', audience: 'orders-api' };
const entry = (id: string, method: string, template: string): RouteEntry => ({
  route: route(id, method, template),
  api,
  routeGroupId: 'g',
});
const idOf = (table: ReturnType<typeof buildRouteTable>, method: string, path: string) =>
  table.resolve(method, path)?.route.route_id;

describe('buildRouteTable / resolve', () => {
  const table = buildRouteTable([
    entry('root', 'GET', '/'),
    entry('orders.search', 'GET', '/v1/orders/search'),
    entry('orders.get', 'GET', '/v1/orders/{order_id}'),
    entry('orders.create', 'POST', '/v1/orders'),
    entry('orders.items', 'GET', '/v1/orders/{order_id}/items/{item_id}'),
    entry('orders.items.latest', 'GET', '/v1/orders/{order_id}/items/latest'),
    entry('orders.search.saved', 'GET', '/v1/orders/search/saved'),
  ]);

  it('an exact path beats a template', () => {
    expect(idOf(table, 'GET', '/v1/orders/search')).toBe('orders.search');
    expect(table.resolve('GET', '/v1/orders/search')!.params).toEqual({});
    expect(idOf(table, 'GET', '/v1/orders/12')).toBe('orders.get');
    expect(idOf(table, 'GET', '/v1/orders/7/items/latest')).toBe('orders.items.latest');
  });

  it('returns parameters by name (raw)', () => {
    const m = table.resolve('GET', '/v1/orders/A%20B/items/9')!;
    expect(m.route.route_id).toBe('orders.items');
    expect({ ...m.params }).toEqual({ order_id: 'A%20B', item_id: '9' });
    expect(Object.getPrototypeOf(m.params)).toBeNull();
    expect(m.api).toBe(api);
    expect(m.routeGroupId).toBe('g');
  });

  it('backtracks from a literal branch that dead-ends', () => {
    // "search" takes the literal branch first; /search/items/5 only exists under {order_id}.
    expect(table.resolve('GET', '/v1/orders/search/items/5')).toMatchObject({
      route: { route_id: 'orders.items' },
      params: { order_id: 'search', item_id: '5' },
    });
    expect(idOf(table, 'GET', '/v1/orders/search/saved')).toBe('orders.search.saved');
  });

  it('a template matches exactly one segment', () => {
    expect(idOf(table, 'GET', '/v1/orders/1/2')).toBeUndefined();
    expect(idOf(table, 'GET', '/v1/orders')).toBeUndefined();
  });

  it('never matches an empty segment, a trailing slash or //', () => {
    expect(idOf(table, 'GET', '/v1/orders/')).toBeUndefined();
    expect(idOf(table, 'GET', '/v1/orders//items/1')).toBeUndefined();
    expect(idOf(table, 'GET', '/v1/orders/search/')).toBeUndefined();
    expect(idOf(table, 'GET', '//v1/orders/1')).toBeUndefined();
    expect(idOf(table, 'POST', '/v1/orders/')).toBeUndefined();
  });

  it('the method must match exactly', () => {
    expect(idOf(table, 'POST', '/v1/orders')).toBe('orders.create');
    expect(idOf(table, 'GET', '/v1/orders')).toBeUndefined();
    expect(idOf(table, 'post', '/v1/orders')).toBeUndefined();
    expect(idOf(table, 'PUT', '/v1/orders/1')).toBeUndefined();
    expect(idOf(table, 'HEAD', '/v1/orders/search')).toBeUndefined();
  });

  it('matches the root only as /', () => {
    expect(idOf(table, 'GET', '/')).toBe('root');
    expect(idOf(table, 'GET', '')).toBeUndefined();
    expect(idOf(table, 'GET', 'v1/orders/search')).toBeUndefined();
  });

  it('refuses a path with a query or fragment', () => {
    expect(idOf(table, 'GET', '/v1/orders/1?x=1')).toBeUndefined();
    expect(idOf(table, 'GET', '/v1/orders/1#f')).toBeUndefined();
  });

  it('is case-sensitive and exact on literals', () => {
    expect(idOf(table, 'GET', '/V1/orders/search')).toBeUndefined();
    expect(idOf(table, 'GET', '/v1/Orders/search')).toBeUndefined();
  });

  it('does not resolve inherited property names', () => {
    expect(idOf(table, 'constructor', '/')).toBeUndefined();
    expect(idOf(table, 'GET', '/__proto__')).toBeUndefined();
    expect(table.resolveById('toString')).toBeUndefined();
  });

  it('resolves by id', () => {
    expect(table.resolveById('orders.create')!.route.path_template).toBe('/v1/orders');
    expect(table.resolveById('nope')).toBeUndefined();
    expect(table.routesById.size).toBe(7);
  });

  it('refuses ambiguous or invalid route sets', () => {
    expect(() => buildRouteTable([entry('a', 'GET', '/x/{a}'), entry('b', 'GET', '/x/{b}')])).toThrow(
      RangeError,
    );
    expect(() => buildRouteTable([entry('a', 'GET', '/x'), entry('a', 'POST', '/y')])).toThrow(RangeError);
    expect(() => buildRouteTable([entry('a', 'GET', '/x/')])).toThrow(TypeError);
  });
});

describe('10,000 routes', () => {
  const N = 10_000;
  const entries: RouteEntry[] = [];
  for (let i = 0; i < N; i++) {
    entries.push(entry(`r${i}.get`, 'GET', `/v${i % 7}/svc${i}/items/{id}`));
    if (i % 10 === 0) entries.push(entry(`r${i}.exact`, 'GET', `/v${i % 7}/svc${i}/items/special`));
    if (i % 3 === 0) entries.push(entry(`r${i}.post`, 'POST', `/v${i % 7}/svc${i}/items`));
  }
  const table = buildRouteTable(entries);

  it('indexes every route', () => {
    expect(table.routesById.size).toBe(entries.length);
  });

  it('resolves every route to itself', () => {
    for (let i = 0; i < N; i++) {
      const m = table.resolve('GET', `/v${i % 7}/svc${i}/items/x${i}`);
      expect(m?.route.route_id).toBe(`r${i}.get`);
      expect(m?.params.id).toBe(`x${i}`);
      const special = table.resolve('GET', `/v${i % 7}/svc${i}/items/special`)!;
      expect(special.route.route_id).toBe(i % 10 === 0 ? `r${i}.exact` : `r${i}.get`);
      expect(table.resolve('POST', `/v${i % 7}/svc${i}/items`)?.route.route_id).toBe(
        i % 3 === 0 ? `r${i}.post` : undefined,
      );
    }
  });

  it('misses what is not there', () => {
    expect(table.resolve('GET', `/v1/svc${N}/items/1`)).toBeUndefined();
    // svc1 lives under /v1 (1 % 7), not /v2.
    expect(table.resolve('GET', '/v2/svc1/items/1')).toBeUndefined();
    expect(table.resolve('GET', '/v1/svc1/items/1')?.route.route_id).toBe('r1.get');
    expect(table.resolve('GET', '/v1/svc1/items')).toBeUndefined();
  });
});

describe('templateShapeOf', () => {
  it('equals templateShape(parsePathTemplate(t)) for every valid template', () => {
    const templates = [
      '/',
      '/v1',
      '/v1/orders/{order_id}',
      '/{a}/{b}/c',
      '/v1/{x}/items/{y_2}/z',
      '/v1/%E2%82%AC/{id}',
      "/a/b-c.d~e!$&'()*+,=:@",
      '/v1/{notparam/x',
    ];
    let checked = 0;
    for (const t of templates) {
      const segments = parsePathTemplate(t);
      if (typeof segments === 'string') continue;
      expect(templateShapeOf(t), t).toBe(templateShape(segments));
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(7);
  });
});
