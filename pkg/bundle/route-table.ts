import { TrustplaneError } from '../authcore/errors.js';
import { parsePathTemplate, templateShape } from './path-template.js';
import { FrozenMap } from './frozen-map.js';
import type { PolicyApi, PolicyRoute } from './policy-bundle-schema.js';

/** A route with the API it belongs to. */
export interface RouteEntry {
  readonly route: PolicyRoute;
  readonly api: PolicyApi;
  readonly routeGroupId: string;
}

/** A resolved request: the route, its API, and the `{name}` parameters (raw, still percent-encoded). */
export interface RouteMatch extends RouteEntry {
  readonly params: Readonly<Record<string, string>>;
}

/** Method + path lookup over the routes of a policy bundle. */
export interface RouteTable {
  /**
   * The route matching `method` (exact, case-sensitive) and the raw request `path` (no query, no
   * fragment), or undefined. A literal segment beats `{param}` at every depth.
   */
  resolve(method: string, path: string): RouteMatch | undefined;
  /**
   * {@link RouteTable.resolve}, refusing a request an upstream could route elsewhere: a path that
   * reaches another route once letter case is folded (unless the matched API sets
   * `case_sensitive_paths`), or a HEAD whose GET twin is another route (most frameworks serve HEAD
   * with the GET handler). Enforcement points and the broker resolve requests with this.
   * @throws TrustplaneError `ambiguous_request_path`
   */
  resolveRequest(method: string, path: string): RouteMatch | undefined;
  /** The route with this `route_id`, or undefined. */
  resolveById(routeId: string): RouteEntry | undefined;
  /** Routes by `route_id`. */
  readonly routesById: ReadonlyMap<string, RouteEntry>;
}

interface Terminal {
  readonly entry: RouteEntry;
  readonly paramNames: readonly string[];
}

interface TrieNode {
  readonly literals: Map<string, TrieNode>;
  param: TrieNode | undefined;
  terminal: Terminal | undefined;
}

const newNode = (): TrieNode => ({ literals: new Map(), param: undefined, terminal: undefined });

interface FoldedNode {
  readonly literals: Map<string, FoldedNode>;
  param: FoldedNode | undefined;
  /** The routes ending here (more than one: routes that differ only by letter case). */
  readonly routeIds: string[];
}

const newFoldedNode = (): FoldedNode => ({ literals: new Map(), param: undefined, routeIds: [] });

/** The folded twin of {@link walk}: the route ids a case-folding upstream would pick. */
function walkFolded(
  node: FoldedNode,
  segments: readonly string[],
  index: number,
): readonly string[] | undefined {
  if (index === segments.length) return node.routeIds.length > 0 ? node.routeIds : undefined;
  const literal = node.literals.get(segments[index]!);
  if (literal) {
    const found = walkFolded(literal, segments, index + 1);
    if (found) return found;
  }
  return node.param ? walkFolded(node.param, segments, index + 1) : undefined;
}

/*
 * Depth-first walk: the literal child first, then the `{param}` child. Every trie node is reached
 * by one fixed prefix of the path, so a lookup visits each node at most once; for route sets
 * without literal/param overlap it is one node per path segment, whatever the number of routes.
 */
function walk(
  node: TrieNode,
  segments: readonly string[],
  index: number,
  values: string[],
): Terminal | undefined {
  if (index === segments.length) return node.terminal;
  const segment = segments[index]!;
  const literal = node.literals.get(segment);
  if (literal) {
    const found = walk(literal, segments, index + 1, values);
    if (found) return found;
  }
  if (node.param) {
    values.push(segment);
    const found = walk(node.param, segments, index + 1, values);
    if (found) return found;
    values.pop();
  }
  return undefined;
}

/**
 * Build the route table: a segment trie per method.
 *
 * @param entries every route with its API (route ids unique; method + template shape unique)
 * @returns the table
 * @throws TypeError for an invalid `path_template`; RangeError for a duplicate `route_id` or two
 *   routes with the same method and template shape (`/a/{x}` and `/a/{y}` collide)
 * @example
 * const table = buildRouteTable([{ route, api, routeGroupId: 'orders-read' }])
 * table.resolve('GET', '/v1/orders/42')?.params.order_id // '42'
 */
export function buildRouteTable(entries: readonly RouteEntry[]): RouteTable {
  const builder = createRouteTableBuilder();
  for (const entry of entries) builder.add(entry);
  return builder.finish();
}

/** Builds a {@link RouteTable} one route at a time (a loader may let the event loop run between routes). */
export interface RouteTableBuilder {
  /**
   * Add a route.
   * @throws as {@link buildRouteTable}
   */
  add(entry: RouteEntry): void;
  /** The table of the routes added so far. */
  finish(): RouteTable;
}

/** A {@link RouteTableBuilder}: the routes of {@link buildRouteTable} added one at a time. */
export function createRouteTableBuilder(): RouteTableBuilder {
  const roots = new Map<string, TrieNode>();
  // The same routes with every literal lowercased, walked with the lowercased path: what an
  // upstream that folds letter case resolves. Two routes that differ only by case share a terminal.
  const folded = new Map<string, FoldedNode>();
  let upperLiterals = false;
  const byId = new Map<string, RouteEntry>();
  function add(entry: RouteEntry): void {
    const { route } = entry;
    if (byId.has(route.route_id))
      throw new RangeError(`duplicate route_id ${JSON.stringify(route.route_id)}`);
    const segments = parsePathTemplate(route.path_template);
    if (typeof segments === 'string')
      throw new TypeError(`route ${JSON.stringify(route.route_id)}: ${segments}`);
    let node = roots.get(route.method);
    if (!node) {
      node = newNode();
      roots.set(route.method, node);
    }
    const paramNames: string[] = [];
    for (const segment of segments) {
      if (segment.kind === 'param') {
        paramNames.push(segment.name);
        node.param ??= newNode();
        node = node.param;
      } else {
        let child = node.literals.get(segment.value);
        if (!child) {
          child = newNode();
          node.literals.set(segment.value, child);
        }
        node = child;
      }
    }
    if (node.terminal) {
      throw new RangeError(
        `routes ${JSON.stringify(node.terminal.entry.route.route_id)} and ${JSON.stringify(route.route_id)} ` +
          `both match ${route.method} ${templateShape(segments)}`,
      );
    }
    node.terminal = Object.freeze({ entry, paramNames: Object.freeze(paramNames) });
    byId.set(route.route_id, entry);
    let f = folded.get(route.method);
    if (!f) {
      f = newFoldedNode();
      folded.set(route.method, f);
    }
    for (const segment of segments) {
      if (segment.kind === 'param') {
        f.param ??= newFoldedNode();
        f = f.param;
      } else {
        const key = segment.value.toLowerCase();
        if (key !== segment.value) upperLiterals = true;
        let child = f.literals.get(key);
        if (!child) {
          child = newFoldedNode();
          f.literals.set(key, child);
        }
        f = child;
      }
    }
    f.routeIds.push(route.route_id);
  }

  function finish(): RouteTable {
    const routesById = new FrozenMap(byId);

    const table: RouteTable = Object.freeze({
      routesById,
      resolveById: (routeId: string) => routesById.get(routeId),
      resolveRequest(method: string, path: string): RouteMatch | undefined {
        const match = table.resolve(method, path);
        if (match === undefined) return undefined;
        const id = match.route.route_id;
        if (match.api.case_sensitive_paths !== true && (upperLiterals || path !== path.toLowerCase())) {
          const lower = path.toLowerCase();
          const ids = walkFolded(folded.get(method)!, lower === '/' ? [] : lower.slice(1).split('/'), 0);
          if (ids !== undefined && (ids.length > 1 || ids[0] !== id)) {
            throw new TrustplaneError(
              'ambiguous_request_path',
              'the path reaches another route when letter case is folded',
              { route_id: id },
            );
          }
        }
        if (method === 'HEAD') {
          const get = table.resolve('GET', path);
          if (get !== undefined && get.route.route_id !== id) {
            throw new TrustplaneError('ambiguous_request_path', 'HEAD would be served by another GET route', {
              route_id: id,
            });
          }
        }
        return match;
      },
      resolve(method: string, path: string): RouteMatch | undefined {
        const root = roots.get(method);
        if (!root || path.length === 0 || path[0] !== '/') return undefined;
        if (path.includes('?') || path.includes('#')) return undefined;
        // '/' is the root; otherwise every segment must be non-empty ('//' and a trailing '/' never match).
        const segments = path === '/' ? [] : path.slice(1).split('/');
        for (const s of segments) if (s === '') return undefined;
        const values: string[] = [];
        const terminal = walk(root, segments, 0, values);
        if (!terminal) return undefined;
        const params = Object.create(null) as Record<string, string>;
        terminal.paramNames.forEach((name, i) => {
          params[name] = values[i]!;
        });
        const { entry } = terminal;
        // Members listed, not spread: a spread here costs microseconds per request in V8.
        return Object.freeze({
          route: entry.route,
          api: entry.api,
          routeGroupId: entry.routeGroupId,
          params: Object.freeze(params),
        });
      },
    });
    return table;
  }
  return { add, finish };
}
