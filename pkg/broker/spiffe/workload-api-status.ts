import { MAX_SERVER_MESSAGE_CHARS, WorkloadApiError, printable } from './workload-api-error.js';

/**
 * gRPC status codes (a wire contract, fixed by the gRPC specification): named here so that mapping
 * a status does not load `@grpc/grpc-js`, an optional peer dependency.
 */
const GRPC_STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;
const status = Object.fromEntries(GRPC_STATUS_NAMES.map((name, code) => [name, code])) as Record<
  (typeof GRPC_STATUS_NAMES)[number],
  number
>;

/** The {@link WorkloadApiError} for a failed gRPC call: its status decides the reason. */
export function errorFromStatus(code: number, serverMessage: string): WorkloadApiError {
  const name = GRPC_STATUS_NAMES[code] ?? `UNKNOWN_${code}`;
  const details = { grpcStatus: name, serverMessage: printable(serverMessage, MAX_SERVER_MESSAGE_CHARS) };
  switch (code) {
    case status.PERMISSION_DENIED:
    case status.UNAUTHENTICATED:
      return new WorkloadApiError(
        'workload_api_no_identity',
        `Workload API has no identity for this workload (${name})`,
        details,
      );
    case status.INVALID_ARGUMENT:
    case status.UNIMPLEMENTED:
    case status.FAILED_PRECONDITION:
      return new WorkloadApiError(
        'workload_api_rejected',
        `Workload API rejected the call (${name})`,
        details,
      );
    default:
      return new WorkloadApiError('workload_api_unavailable', `Workload API call failed (${name})`, details);
  }
}
