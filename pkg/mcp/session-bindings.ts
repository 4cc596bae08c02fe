/** Most MCP sessions one verifier remembers the caller of (the oldest used is forgotten first). */
export const MAX_MCP_SESSIONS = 10_000;
/** Longest `Mcp-Session-Id` accepted, characters. */
export const MAX_MCP_SESSION_ID_LENGTH = 256;

/**
 * Binds MCP session ids (`Mcp-Session-Id`) to the caller that used them first: a session the
 * server created for one agent cannot be used by another caller, whose passport is valid for the
 * route, to read that agent's event stream (`GET` with `Last-Event-ID` replays earlier answers),
 * call tools in its session or end it. The server assigns the id in its `initialize` answer; the
 * first request that carries it (the agent's `notifications/initialized`) binds it.
 *
 * Bounded: at most {@link MAX_MCP_SESSIONS} ids, the least recently used forgotten first (a
 * forgotten id is bound again by its next caller). In memory, per verifier instance: replicas do
 * not share bindings (see docs/mcp.md).
 * @example
 * const sessions = new McpSessionBindings()
 * sessions.bind('3f2a…', 'https://issuer\nspiffe://…/agent') // true: bound now or already this caller's
 */
export class McpSessionBindings {
  readonly #owners = new Map<string, string>();
  readonly #max: number;

  /** @param max most ids remembered (default {@link MAX_MCP_SESSIONS}) */
  constructor(max: number = MAX_MCP_SESSIONS) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('max must be a positive integer');
    this.#max = max;
  }

  /**
   * Bind `sessionId` to `caller` when it is new, and say whether the caller may use it.
   * @param sessionId the request's `Mcp-Session-Id`
   * @param caller the verified caller (issuer and subject)
   * @returns false when another caller used this session first
   */
  bind(sessionId: string, caller: string): boolean {
    const owner = this.#owners.get(sessionId);
    if (owner !== undefined && owner !== caller) return false;
    // Re-insert: the Map's order is then the order of last use.
    this.#owners.delete(sessionId);
    this.#owners.set(sessionId, caller);
    if (this.#owners.size > this.#max) {
      const oldest = this.#owners.keys().next().value;
      if (oldest !== undefined) this.#owners.delete(oldest);
    }
    return true;
  }

  /** How many session ids are bound. */
  get size(): number {
    return this.#owners.size;
  }
}
