/**
 * The example MCP server's tools (official TypeScript SDK), shared by the Node server
 * (server.ts) and by in-process hosts (the Hono test mounts it with the Web-standard transport).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ErrorCode, ListToolsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

/** One JSON-RPC message as it reached the server. */
export interface Received {
  readonly method: string;
  readonly tool?: string;
}

/** What reached the server, one entry per JSON-RPC message, and the `search_docs` latch. */
export class ToolServerState {
  readonly received: Received[] = [];
  #released = latch();

  /** Record the JSON-RPC message(s) of one request body. */
  note(message: unknown): void {
    for (const m of Array.isArray(message) ? message : [message]) {
      if (typeof m !== 'object' || m === null) continue;
      const { method, params } = m as { method?: unknown; params?: { name?: unknown } };
      if (typeof method !== 'string') continue;
      this.received.push({
        method,
        ...(method === 'tools/call' && typeof params?.name === 'string' ? { tool: params.name } : {}),
      });
    }
  }

  /** Let every held `search_docs` call finish. */
  release(): void {
    this.#released.open();
  }

  /** Wait for {@link release} (true) or `ms` (false). */
  async held(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    const released = await Promise.race([this.#released.promise.then(() => true as const), timeout]);
    clearTimeout(timer);
    this.#released = latch();
    return released;
  }
}

/** A latch: `open()` resolves `promise`. */
function latch(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

const object = (properties: Record<string, unknown>, required: string[]) => ({
  type: 'object' as const,
  properties,
  required,
});

/** What tools/list answers: the three tools (the policy in front decides which a caller sees). */
const TOOL_LIST = [
  {
    name: 'search_docs',
    description: 'Search the documentation',
    inputSchema: object({ query: { type: 'string' }, hold: { type: 'boolean' } }, ['query']),
  },
  {
    name: 'transfer_funds',
    description: 'Transfer funds to an account',
    inputSchema: object({ amount: { type: 'number' }, to: { type: 'string' } }, ['amount', 'to']),
  },
  {
    name: 'delete_repository',
    description: 'Delete a repository',
    inputSchema: object({ name: { type: 'string' } }, ['name']),
  },
];

/** The MCP server with its three tools (a fresh one per request: stateless Streamable HTTP). */
export function buildToolServer(state: ToolServerState): McpServer {
  const server = new McpServer({ name: 'mcp-agent-example', version: '1.0.0' });
  server.registerTool(
    'search_docs',
    {
      description: 'Search the documentation',
      inputSchema: { query: z.string(), hold: z.boolean().optional() },
    },
    async ({ query, hold }, extra) => {
      const token = extra._meta?.progressToken;
      if (token !== undefined) {
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken: token, progress: 1, total: 2, message: 'searching' },
        });
      }
      const released = hold === true ? await state.held(20_000) : false;
      return {
        content: [{ type: 'text', text: `3 results for ${JSON.stringify(query)}` }],
        structuredContent: { query, released },
      };
    },
  );
  server.registerTool(
    'transfer_funds',
    {
      description: 'Transfer funds to an account',
      inputSchema: { amount: z.number(), to: z.string() },
    },
    async ({ amount, to }) => ({
      content: [{ type: 'text', text: `transferred ${amount} to ${to}` }],
      structuredContent: { amount, to, status: 'done' },
    }),
  );
  server.registerTool(
    'delete_repository',
    { description: 'Delete a repository', inputSchema: { name: z.string() } },
    async ({ name }) => ({ content: [{ type: 'text', text: `deleted ${name}` }] }),
  );
  // tools/list as a stream: a progress event first (when the client asks for progress), then, for
  // the cursor "hold", the list only once release() was called (at most 20 s, else an error). So a
  // test sees that the first event of a list answer reached it through the enforcement point (and
  // its list filter) before the server produced the last one.
  server.server.setRequestHandler(ListToolsRequestSchema, async (request, extra) => {
    const token = request.params?._meta?.progressToken;
    if (token !== undefined) {
      await extra.sendNotification({
        method: 'notifications/progress',
        params: { progressToken: token, progress: 1, total: 2, message: 'listing' },
      });
    }
    if (request.params?.cursor === 'hold' && !(await state.held(20_000))) {
      throw new McpError(ErrorCode.InternalError, 'the list was held and never released');
    }
    return { tools: TOOL_LIST };
  });
  return server;
}
