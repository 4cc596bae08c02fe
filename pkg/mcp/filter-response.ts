import type { McpListFilterSpec } from './decide-mcp.js';

/** Largest single SSE event (or JSON answer) the filter holds while it reads it, bytes. */
export const MAX_MCP_FILTERED_MESSAGE_BYTES = 8 * 1024 * 1024;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Filter one list result in place-free fashion: a new result with only the visible entries. */
function filterResult(method: string, result: Record<string, unknown>, spec: McpListFilterSpec) {
  const keep = (key: string, kind: 'tool' | 'resource' | 'prompt', field: string) => {
    const list = result[key];
    if (!Array.isArray(list)) return result;
    return {
      ...result,
      [key]: list.filter((item) => {
        const name = isObject(item) ? item[field] : undefined;
        return typeof name === 'string' && spec.visible(kind, name);
      }),
    };
  };
  switch (method) {
    case 'tools/list':
      return keep('tools', 'tool', 'name');
    case 'prompts/list':
      return keep('prompts', 'prompt', 'name');
    case 'resources/list':
      return keep('resources', 'resource', 'uri');
    case 'resources/templates/list':
      return keep('resourceTemplates', 'resource', 'uriTemplate');
    default:
      return result;
  }
}

/**
 * Filter a parsed JSON-RPC answer (a message or a batch): the results of the list requests in
 * `spec` keep only what the caller may use. Anything else is returned as is.
 * @returns the filtered value, or `undefined` when nothing was changed
 */
export function filterJsonRpcAnswer(answer: unknown, spec: McpListFilterSpec): unknown {
  let changed = false;
  const one = (m: unknown): unknown => {
    if (!isObject(m) || !isObject(m.result)) return m;
    const id = m.id;
    if (typeof id !== 'string' && typeof id !== 'number') return m;
    const method = spec.requests.get(id);
    if (method === undefined) return m;
    changed = true;
    return { ...m, result: filterResult(method, m.result, spec) };
  };
  const out = Array.isArray(answer) ? answer.map(one) : one(answer);
  return changed ? out : undefined;
}

/**
 * Filter a whole `application/json` answer body.
 * @returns the bytes to send (the input itself when nothing changed or it is not JSON)
 */
export function filterJsonAnswerBytes(bytes: Uint8Array, spec: McpListFilterSpec): Uint8Array {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return bytes;
  }
  const filtered = filterJsonRpcAnswer(parsed, spec);
  return filtered === undefined ? bytes : new TextEncoder().encode(JSON.stringify(filtered));
}

/**
 * Filters a `text/event-stream` answer event by event, as it streams: each complete event is
 * written out as soon as its terminating blank line arrives (an event carrying the answer to a
 * list request is rewritten with the filtered result; every other event passes byte for byte),
 * so nothing waits for the end of the stream. One event may be at most
 * {@link MAX_MCP_FILTERED_MESSAGE_BYTES}.
 * @example
 * const f = new McpSseFilter(spec)
 * for await (const chunk of upstream) res.write(f.push(chunk))
 * res.end(f.end())
 */
export class McpSseFilter {
  readonly #spec: McpListFilterSpec;
  readonly #decoder = new TextDecoder('utf-8');
  readonly #encoder = new TextEncoder();
  #pending = '';

  constructor(spec: McpListFilterSpec) {
    this.#spec = spec;
  }

  /**
   * Take the next chunk; returns the bytes of every event it completes (possibly empty).
   * @throws RangeError when one event exceeds the limit (the point aborts the answer)
   */
  push(chunk: Uint8Array): Uint8Array {
    this.#pending += this.#decoder.decode(chunk, { stream: true });
    let out = '';
    for (;;) {
      const end = /\r\n\r\n|\n\n|\r\r/.exec(this.#pending);
      if (end === null) break;
      const cut = end.index + end[0].length;
      out += this.#event(this.#pending.slice(0, cut));
      this.#pending = this.#pending.slice(cut);
    }
    if (this.#pending.length > MAX_MCP_FILTERED_MESSAGE_BYTES) {
      throw new RangeError('an event of the MCP answer stream is too large to filter');
    }
    return out === '' ? new Uint8Array(0) : this.#encoder.encode(out);
  }

  /** The stream ended: the rest (an unterminated last event passes through the filter too). */
  end(): Uint8Array {
    const rest = this.#pending + this.#decoder.decode();
    this.#pending = '';
    return rest === '' ? new Uint8Array(0) : this.#encoder.encode(this.#event(rest));
  }

  /** One raw event (its text with the terminating blank line): rewritten or as is. */
  #event(raw: string): string {
    const lines = raw.split(/\r\n|\n|\r/);
    const data: string[] = [];
    for (const line of lines) {
      if (line === 'data') data.push('');
      else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
    }
    if (data.length === 0) return raw;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.join('\n'));
    } catch {
      return raw;
    }
    const filtered = filterJsonRpcAnswer(parsed, this.#spec);
    if (filtered === undefined) return raw;
    // Keep the other fields (`id:`, `event:`, `retry:`), one `data:` line with the filtered JSON.
    const kept = lines.filter((l) => l !== '' && l !== 'data' && !l.startsWith('data:'));
    return `${[...kept, `data: ${JSON.stringify(filtered)}`].join('\n')}\n\n`;
  }
}
