import * as grpc from '@grpc/grpc-js';
import { MAX_SERVER_MESSAGE_CHARS, WorkloadApiError, printable } from './workload-api-error.js';

/** The {@link WorkloadApiError} for a failed gRPC call: its status decides the reason. */
export function errorFromStatus(code: number, serverMessage: string): WorkloadApiError {
  const name = grpc.status[code] ?? `UNKNOWN_${code}`;
  const details = { grpcStatus: name, serverMessage: printable(serverMessage, MAX_SERVER_MESSAGE_CHARS) };
  switch (code) {
    case grpc.status.PERMISSION_DENIED:
    case grpc.status.UNAUTHENTICATED:
      return new WorkloadApiError(
        'workload_api_no_identity',
        `Workload API has no identity for this workload (${name})`,
        details,
      );
    case grpc.status.INVALID_ARGUMENT:
    case grpc.status.UNIMPLEMENTED:
    case grpc.status.FAILED_PRECONDITION:
      return new WorkloadApiError(
        'workload_api_rejected',
        `Workload API rejected the call (${name})`,
        details,
      );
    default:
      return new WorkloadApiError('workload_api_unavailable', `Workload API call failed (${name})`, details);
  }
}
