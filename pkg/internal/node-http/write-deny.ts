import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { DenyAnswer } from '../../verifier/deny-answer.js';

/** Options for {@link writeDeny}. */
export interface WriteDenyOptions {
  /** Answer with `Connection: close` (an unread body may still be arriving). */
  readonly close?: boolean;
  /** Echo the request id (`X-Request-Id`): the adapter's, which it assigns and forwards. */
  readonly requestId?: string;
}

/**
 * Write the kernel's deny answer on a Node response: its status, headers and body, plus
 * `Content-Length`. A response that has already started cannot carry a deny: it is destroyed.
 * @param res the response
 * @param answer the deny answer (`denyAnswer(decision)`)
 * @param options `close`, `requestId`
 */
export function writeDeny(res: ServerResponse, answer: DenyAnswer, options: WriteDenyOptions = {}): void {
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: OutgoingHttpHeaders = {
    ...answer.headers,
    'content-length': String(Buffer.byteLength(answer.body)),
  };
  if (options.requestId !== undefined) headers['x-request-id'] = options.requestId;
  if (options.close === true) headers.connection = 'close';
  try {
    res.writeHead(answer.status, headers);
    res.end(answer.body);
  } catch {
    res.destroy();
  }
}
