import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { firstHeaderValue } from './header-source.js';

/**
 * The scheme the caller used: the first `X-Forwarded-Proto` value when the proxy in front is
 * trusted, else whether this socket is TLS.
 */
export function requestScheme(req: IncomingMessage, trustForwarded: boolean): 'http' | 'https' {
  if (trustForwarded) {
    const forwarded = firstHeaderValue(req, 'x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
    if (forwarded === 'https' || forwarded === 'http') return forwarded;
  }
  return (req.socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http';
}
