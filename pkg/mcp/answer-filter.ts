import type { McpListFilterSpec } from './decide-mcp.js';
import { filterJsonAnswerBytes, McpSseFilter, MAX_MCP_FILTERED_MESSAGE_BYTES } from './filter-response.js';

/** The media type of a `Content-Type` value, lowercase, without parameters. */
export function mediaTypeOf(contentType: string | null | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * How an answer to a request with list calls is handled:
 * - `sse`: `text/event-stream`, filtered event by event as it streams (drop any `Content-Length`);
 * - `json`: `application/json`, read whole (at most {@link MAX_MCP_FILTERED_MESSAGE_BYTES}),
 *   filtered, sent with its new length;
 * - `refuse`: a JSON or SSE answer with a `Content-Encoding` other than `identity`, which cannot be
 *   read: the point answers 502 `upstream_unavailable` instead of passing it unfiltered;
 * - `pass`: anything else, unchanged.
 */
export type McpAnswerMode = 'sse' | 'json' | 'refuse' | 'pass';

/** The head of an answer: its `Content-Type` and `Content-Encoding` values. */
export interface McpAnswerHead {
  readonly contentType?: string | null | undefined;
  readonly contentEncoding?: string | null | undefined;
}

/**
 * The one list-answer filter of every enforcement point (Web `Response`s, Node responses, the
 * adapter's upstream answers): chooses the {@link McpAnswerMode} from the answer's head, then takes
 * the body chunk by chunk. Runtime-neutral: bytes in, bytes out.
 * @example
 * const f = new McpAnswerFilter(lists, { contentType, contentEncoding })
 * if (f.mode === 'refuse') return answer502()
 * for await (const chunk of body) send(f.push(chunk))
 * send(f.end())
 */
export class McpAnswerFilter {
  /** What the point does with this answer. */
  readonly mode: McpAnswerMode;
  readonly #spec: McpListFilterSpec;
  readonly #sse: McpSseFilter | undefined;
  readonly #chunks: Uint8Array[] = [];
  #size = 0;
  #changed = false;

  constructor(spec: McpListFilterSpec, head: McpAnswerHead) {
    this.#spec = spec;
    const type = mediaTypeOf(head.contentType);
    const encoding = (head.contentEncoding ?? 'identity').trim().toLowerCase();
    const filtered = type === 'text/event-stream' || type === 'application/json';
    // A compressed list answer cannot be filtered: fail closed rather than pass it unfiltered.
    this.mode = !filtered
      ? 'pass'
      : encoding !== 'identity'
        ? 'refuse'
        : type === 'text/event-stream'
          ? 'sse'
          : 'json';
    this.#sse = this.mode === 'sse' ? new McpSseFilter(spec) : undefined;
  }

  /** `json` mode, after {@link end}: whether the body was rewritten (its length changed then). */
  get changed(): boolean {
    return this.#changed;
  }

  /**
   * Take the next body chunk; returns the bytes to send now (`json`: nothing until {@link end}).
   * @throws RangeError when one SSE event or the JSON answer exceeds
   *   {@link MAX_MCP_FILTERED_MESSAGE_BYTES} (the point answers 502, or aborts a started stream)
   */
  push(chunk: Uint8Array): Uint8Array {
    if (this.#sse !== undefined) return this.#sse.push(chunk);
    if (this.mode !== 'json') return chunk;
    this.#size += chunk.length;
    if (this.#size > MAX_MCP_FILTERED_MESSAGE_BYTES) {
      this.#chunks.length = 0;
      throw new RangeError('the MCP answer is too large to filter');
    }
    this.#chunks.push(chunk);
    return new Uint8Array(0);
  }

  /** The body ended: the rest to send (`json`: the whole filtered answer). */
  end(): Uint8Array {
    if (this.#sse !== undefined) return this.#sse.end();
    if (this.mode !== 'json') return new Uint8Array(0);
    const bytes = new Uint8Array(this.#size);
    let off = 0;
    for (const c of this.#chunks) {
      bytes.set(c, off);
      off += c.length;
    }
    this.#chunks.length = 0;
    const out = filterJsonAnswerBytes(bytes, this.#spec);
    this.#changed = out !== bytes;
    return out;
  }
}
