import { createHash } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { writeDeny } from '../internal/node-http/index.js';
import { denyAnswer, type AllowEnforcement } from '../verifier/index.js';
import type { EnforcementRuntime } from './enforcement-runtime.js';

/**
 * Answer an allowed request on a `receipt: true` route: buffer the upstream answer (bounded by
 * `receiptMaxResponseBytes`), have the kernel sign a `trustplane-receipt-v1` over the request
 * transcript, the identity, the decision and the answer's status and body digest (and record it as
 * a `receipt_issued` event), then send the answer with `X-TrustPlane-Receipt`. An answer too large
 * to buffer, a failed upstream stream or a failed signature is a 502 `upstream_unavailable`.
 */
export function respondWithReceipt(
  rt: EnforcementRuntime,
  res: ServerResponse,
  upRes: IncomingMessage,
  status: number,
  headers: OutgoingHttpHeaders,
  enforcement: AllowEnforcement,
  requestId: string,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  const hash = createHash('sha256');
  const fail = (message: string) => {
    if (failed) return;
    failed = true;
    upRes.destroy();
    rt.metrics.upstreamErrors.inc({ kind: 'reset' });
    rt.log.warn('receipt not issued', {
      route_id: enforcement.decision.routeId,
      request_id: requestId,
      error: message,
    });
    writeDeny(res, denyAnswer({ reason: 'upstream_unavailable' }), { requestId });
  };
  upRes.on('data', (chunk: Buffer) => {
    if (failed) return;
    size += chunk.length;
    if (size > rt.config.receiptMaxResponseBytes) {
      fail('the upstream response exceeds receiptMaxResponseBytes');
      return;
    }
    hash.update(chunk);
    chunks.push(chunk);
  });
  upRes.on('error', () => fail('the upstream response failed'));
  upRes.on('aborted', () => fail('the upstream response was aborted'));
  upRes.on('end', () => {
    if (failed) return;
    rt.kernel.issueReceipt(enforcement, { status, bodySha256: hash.digest('hex') }).then(
      (receipt) => {
        const body = Buffer.concat(chunks);
        try {
          res.writeHead(status, {
            ...headers,
            'content-length': String(body.length),
            'x-trustplane-receipt': receipt,
          });
          res.end(body);
        } catch {
          res.destroy();
        }
      },
      (e: unknown) => fail(`receipt signing failed: ${e instanceof Error ? e.message : String(e)}`),
    );
  });
}
