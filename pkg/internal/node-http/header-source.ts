import type { IncomingMessage } from 'node:http';
import type { HeaderSource } from '../../proof/header-source.js';

/**
 * The one header view every Node enforcement point verifies with: every field line as received
 * (`headersDistinct`), repeated fields joined in order with ", " (RFC 9110 §5.3) and `Cookie` with
 * "; " (RFC 6265 §5.4). Unlike `req.headers`, no repeated line is dropped, so the transcript covers
 * exactly the lines the upstream receives.
 * @param req the incoming request
 * @returns a lookup by lowercase name
 */
export function nodeHeaderSource(req: IncomingMessage): HeaderSource {
  const distinct = req.headersDistinct;
  return (name) => {
    const values = distinct[name];
    if (values === undefined || values.length === 0) return undefined;
    if (values.length === 1) return values[0];
    return values.join(name === 'cookie' ? '; ' : ', ');
  };
}

/** One header of a request as a single string (the same joining as {@link nodeHeaderSource}). */
export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const values = req.headersDistinct[name];
  if (values === undefined || values.length === 0) return undefined;
  return values.length === 1 ? values[0] : values.join(name === 'cookie' ? '; ' : ', ');
}

/** The first line of a possibly repeated header. */
export function firstHeaderValue(req: IncomingMessage, name: string): string | undefined {
  return req.headersDistinct[name]?.[0];
}
