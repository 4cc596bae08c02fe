import { WorkloadApiError } from './workload-api-error.js';
import { WORKLOAD_API_MAX_BUNDLE_CERTS } from './workload-api-limits.js';

/** Options of {@link splitConcatenatedDer}. */
export interface SplitDerOptions {
  /** Most items accepted (default {@link WORKLOAD_API_MAX_BUNDLE_CERTS}). */
  readonly maxItems?: number;
  /** Field name used in error details (default `der`). */
  readonly field?: string;
}

/**
 * Split concatenated DER values (the Workload API's encoding of certificate chains and bundles)
 * into one copy per value. Only the outer framing is checked: every item must be a SEQUENCE with a
 * definite, minimally encoded length of at most 4 length octets, the items must cover the input
 * exactly (no trailing bytes), and there must be at least one. The content of each item is not
 * parsed: X.509 validation is the verifier's job.
 *
 * @param bytes - Concatenated DER.
 * @param options - {@link SplitDerOptions}.
 * @returns Fresh `Uint8Array` copies, in order.
 * @throws {WorkloadApiError} `workload_api_bad_response` (empty, truncated, trailing garbage,
 *   indefinite or non-minimal length, not a SEQUENCE, too many items).
 * @example
 * const [leaf, ...intermediates] = splitConcatenatedDer(svid.x509_svid, { maxItems: 16 });
 */
export function splitConcatenatedDer(bytes: Uint8Array, options: SplitDerOptions = {}): Uint8Array[] {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('splitConcatenatedDer: bytes must be a Uint8Array');
  const maxItems = options.maxItems ?? WORKLOAD_API_MAX_BUNDLE_CERTS;
  if (!Number.isSafeInteger(maxItems) || maxItems < 1)
    throw new RangeError('splitConcatenatedDer: maxItems must be a positive integer');
  const field = options.field ?? 'der';
  const bad = (why: string, offset: number): WorkloadApiError =>
    new WorkloadApiError(
      'workload_api_bad_response',
      `Workload API response: ${field} is not valid concatenated DER (${why})`,
      {
        field,
        offset,
      },
    );
  const items: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (items.length === maxItems) throw bad(`more than ${maxItems} items`, at);
    if (bytes[at] !== 0x30) throw bad('item is not a SEQUENCE', at);
    const first = bytes[at + 1];
    if (first === undefined) throw bad('truncated length', at);
    let length: number;
    let header: number;
    if (first < 0x80) {
      length = first;
      header = 2;
    } else if (first === 0x80) {
      throw bad('indefinite length', at);
    } else {
      const octets = first & 0x7f;
      if (octets > 4) throw bad('length too large', at);
      if (at + 2 + octets > bytes.length) throw bad('truncated length', at);
      if (bytes[at + 2] === 0) throw bad('non-minimal length', at);
      length = 0;
      for (let k = 0; k < octets; k++) length = length * 256 + (bytes[at + 2 + k] ?? 0);
      if (length < 0x80) throw bad('non-minimal length', at);
      header = 2 + octets;
    }
    const end = at + header + length;
    if (end > bytes.length) throw bad('truncated item', at);
    items.push(new Uint8Array(bytes.subarray(at, end)));
    at = end;
  }
  if (items.length === 0) throw bad('empty', 0);
  return items;
}
