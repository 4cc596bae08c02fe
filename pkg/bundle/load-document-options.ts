import { TrustplaneError } from '../authcore/errors.js';
import type { DocumentSigner } from './verify-document.js';

/** Options for {@link loadPolicyBundle} and {@link loadTrustMaterial}. */
export interface LoadDocumentOptions {
  /** Keys allowed to sign the document. Empty only together with `allowUnsigned`. */
  readonly signers: readonly DocumentSigner[];
  /**
   * Development only: accept an unsigned document. The result has `signed: false`; the caller
   * must log that loudly. A document that carries a signature must still verify.
   */
  readonly allowUnsigned?: boolean;
  /** Current time, epoch seconds: when given, a document whose `expires_at` has passed is refused. */
  readonly now?: number;
}

/** Refuse a document whose `expires_at` has passed, when {@link LoadDocumentOptions.now} is given. */
export function checkNotExpired(expiresAt: number | undefined, now: number | undefined, label: string): void {
  if (now === undefined) return;
  if (!Number.isFinite(now)) throw new TypeError('now must be epoch seconds');
  if (expiresAt !== undefined && now >= expiresAt) {
    throw new TrustplaneError('stale_bundle_fail_closed', `${label} has expired`);
  }
}
