import type { McpListFilterSpec } from './decide-mcp.js';

/** Largest single SSE event (or JSON answer) the filter holds while it reads it, bytes. */
export const MAX_MCP_FILTERED_MESSAGE_BYTES = 8 * 1024 * 1024;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const LIST_KEYS = ['tools', 'resources', 'resourceTemplates', 'prompts'];

/** The result holds a list the filter narrows. */
const holdsList = (result: Record<string, unknown>) => LIST_KEYS.some((k) => Array.isArray(result[k]));

/** Filter one list result in place-free fashion: a new result with only the visible entries. */
function filterResult(
  method: string,
  result: Record<string, unknown>,
  spec: McpListFilterSpec,
): Record<string, unknown> {
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
    case '*': {
      // Any answer (a GET stream): every list the result holds.
      let out = result;
      for (const m of ['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']) {
        out = filterResult(m, out, spec);
      }
      return out;
    }
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
    const method =
      spec.requests.get(id) ?? (spec.anyAnswer === true && holdsList(m.result) ? '*' : undefined);
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
  /** Where the scan of `#pending` goes on, and where its current line starts. */
  #scan = 0;
  #lineStart = 0;

  constructor(spec: McpListFilterSpec) {
    this.#spec = spec;
  }

  /**
   * Take the next chunk; returns the bytes of every event it completes (possibly empty).
   * @throws RangeError when one event exceeds the limit (the point aborts the answer)
   */
  push(chunk: Uint8Array): Uint8Array {
    this.#pending += this.#decoder.decode(chunk, { stream: true });
    const out = this.#drain(false);
    if (this.#pending.length > MAX_MCP_FILTERED_MESSAGE_BYTES) {
      throw new RangeError('an event of the MCP answer stream is too large to filter');
    }
    return out === '' ? new Uint8Array(0) : this.#encoder.encode(out);
  }

  /** The stream ended: the rest (an unterminated last event passes through the filter too). */
  end(): Uint8Array {
    this.#pending += this.#decoder.decode();
    let out = this.#drain(true);
    if (this.#pending !== '') out += this.#event(this.#pending);
    this.#pending = '';
    this.#scan = 0;
    this.#lineStart = 0;
    return out === '' ? new Uint8Array(0) : this.#encoder.encode(out);
  }

  /**
   * Cut the complete events off `#pending` as the SSE specification frames them (the SDK client's
   * parser does the same): a line ends with CRLF, LF or CR, and an empty line ends an event, so
   * `\n\r\n` and `\r\n\r` end one too. A CR that ends a non-empty line at the end of the text
   * waits for the next chunk (it may be the first half of a CRLF), unless the stream ended.
   */
  #drain(final: boolean): string {
    const text = this.#pending;
    const eol = /\r\n|\n|\r/g;
    eol.lastIndex = this.#scan;
    let lineStart = this.#lineStart;
    let start = 0;
    let scan = text.length;
    let out = '';
    for (let m = eol.exec(text); m !== null; m = eol.exec(text)) {
      const after = m.index + m[0].length;
      // A CR that ends a non-empty line may be half of a CRLF: wait for the next chunk. A CR that
      // ends the empty line ends the event now (a LF after it is one more empty line, which
      // passes as it is and dispatches nothing).
      if (!final && m[0] === '\r' && after === text.length && m.index !== lineStart) {
        scan = m.index;
        break;
      }
      if (m.index === lineStart) {
        out += this.#event(text.slice(start, after));
        start = after;
      }
      lineStart = after;
    }
    this.#pending = text.slice(start);
    this.#scan = Math.max(0, scan - start);
    this.#lineStart = lineStart - start;
    return out;
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
    const text = data.join('\n');
    if (text === '') return raw;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Fail closed: data that is not JSON may be a list answer this filter could not read (the
      // agent's SDK could not parse it either). The event is dropped, not passed unfiltered.
      return '';
    }
    const filtered = filterJsonRpcAnswer(parsed, this.#spec);
    if (filtered === undefined) return raw;
    // Keep the other fields (`id:`, `event:`, `retry:`), one `data:` line with the filtered JSON.
    const kept = lines.filter((l) => l !== '' && l !== 'data' && !l.startsWith('data:'));
    return `${[...kept, `data: ${JSON.stringify(filtered)}`].join('\n')}\n\n`;
  }
}
