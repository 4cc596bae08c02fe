import type { ServiceDefinition } from '@grpc/grpc-js';
import type { fromJSON as FromJson, MethodDefinition } from '@grpc/proto-loader';
import type protobufjs from 'protobufjs';
import { requireOptional } from '../../internal/node/require-optional.js';

/**
 * The SPIFFE Workload API protobuf (X.509-SVID and JWT-SVID profiles), as the SPIFFE
 * Workload API specification publishes it. It declares no `package`, so the gRPC method paths
 * are `/SpiffeWorkloadAPI/<Method>`: exactly what SPIRE and go-spiffe speak. Field numbers and
 * names are wire contract; the comments are ours. The experimental WIT-SVID profile is left out.
 *
 * The text is embedded (not read from a `.proto` file) because `dist/` ships compiled JS only.
 */
export const WORKLOAD_API_PROTO = `
syntax = "proto3";

import "google/protobuf/struct.proto";

service SpiffeWorkloadAPI {
  // X.509-SVID profile: a server stream; a new message every time the SVIDs, bundles or CRLs change.
  rpc FetchX509SVID(X509SVIDRequest) returns (stream X509SVIDResponse);
  // X.509 bundles only (for workloads that validate but hold no SVID).
  rpc FetchX509Bundles(X509BundlesRequest) returns (stream X509BundlesResponse);

  // JWT-SVID profile.
  rpc FetchJWTSVID(JWTSVIDRequest) returns (JWTSVIDResponse);
  rpc FetchJWTBundles(JWTBundlesRequest) returns (stream JWTBundlesResponse);
  rpc ValidateJWTSVID(ValidateJWTSVIDRequest) returns (ValidateJWTSVIDResponse);
}

// No parameters.
message X509SVIDRequest {}

message X509SVIDResponse {
  // Every X.509-SVID the workload is entitled to; the first one is the default.
  repeated X509SVID svids = 1;
  // DER certificate revocation lists.
  repeated bytes crl = 2;
  // Foreign trust domain (its SPIFFE ID) -> concatenated DER CA certificates.
  map<string, bytes> federated_bundles = 3;
}

message X509SVID {
  string spiffe_id = 1;
  // Concatenated DER certificates, leaf first, then intermediates.
  bytes x509_svid = 2;
  // DER PKCS#8 private key of the leaf, unencrypted.
  bytes x509_svid_key = 3;
  // Concatenated DER CA certificates of the SVID's own trust domain.
  bytes bundle = 4;
  // Operator guidance for choosing among several SVIDs (e.g. "internal").
  string hint = 5;
}

message X509BundlesRequest {}

message X509BundlesResponse {
  repeated bytes crl = 1;
  // Trust domain (its SPIFFE ID) -> concatenated DER CA certificates.
  map<string, bytes> bundles = 2;
}

message JWTSVIDRequest {
  repeated string audience = 1;
  // Empty: every JWT-SVID the workload is entitled to.
  string spiffe_id = 2;
}

message JWTSVIDResponse {
  repeated JWTSVID svids = 1;
}

message JWTSVID {
  string spiffe_id = 1;
  // JWS compact serialization.
  string svid = 2;
  string hint = 3;
}

message JWTBundlesRequest {}

message JWTBundlesResponse {
  // Trust domain (its SPIFFE ID) -> JWKS document bytes.
  map<string, bytes> bundles = 1;
}

message ValidateJWTSVIDRequest {
  string audience = 1;
  string svid = 2;
}

message ValidateJWTSVIDResponse {
  string spiffe_id = 1;
  google.protobuf.Struct claims = 2;
}
`;

/** Metadata key every Workload API call must carry (value `true`); servers reject calls without it. */
export const WORKLOAD_API_SECURITY_HEADER = 'workload.spiffe.io';

/** One X.509-SVID as decoded off the wire (proto field names; bytes are Node `Buffer`s). */
export interface X509SvidMessage {
  readonly spiffe_id: string;
  readonly x509_svid: Uint8Array;
  readonly x509_svid_key: Uint8Array;
  readonly bundle: Uint8Array;
  readonly hint: string;
}

/** `X509SVIDResponse` as decoded off the wire (every field present, defaults filled in). */
export interface X509SvidResponseMessage {
  readonly svids: readonly X509SvidMessage[];
  readonly crl: readonly Uint8Array[];
  readonly federated_bundles: Readonly<Record<string, Uint8Array>>;
}

/** `X509SVIDResponse` as a server writes it (missing fields are encoded as their defaults). */
export interface X509SvidResponseInput {
  readonly svids?: readonly Partial<X509SvidMessage>[];
  readonly crl?: readonly Uint8Array[];
  readonly federated_bundles?: Readonly<Record<string, Uint8Array>>;
}

/** `X509SVIDRequest` (no fields). */
export type X509SvidRequestMessage = Readonly<Record<string, never>>;

/** The loaded Workload API: the gRPC service definition and the FetchX509SVID method. */
export interface WorkloadApiDefinition {
  /** For `Server.addService`. */
  readonly service: ServiceDefinition;
  /** `/SpiffeWorkloadAPI/FetchX509SVID` with its serializers. */
  readonly fetchX509Svid: MethodDefinition<
    X509SvidRequestMessage,
    X509SvidResponseInput,
    X509SvidRequestMessage,
    unknown
  >;
}

let cached: WorkloadApiDefinition | undefined;

/**
 * Load the Workload API definition from {@link WORKLOAD_API_PROTO} (parsed once, then cached).
 * Decoding keeps proto field names, turns 64-bit integers into strings, bytes into `Buffer`s and
 * fills in defaults, so a decoded `X509SVIDResponse` always has all three fields. The decoded
 * value is still untrusted input: callers validate it (hence `unknown` on the response side).
 *
 * @returns The service definition and the `FetchX509SVID` method.
 * @example
 * const { service } = loadWorkloadApiDefinition();
 * server.addService(service, { FetchX509SVID: handler });
 */
export function loadWorkloadApiDefinition(): WorkloadApiDefinition {
  if (cached !== undefined) return cached;
  // Optional peer dependencies, loaded on first use (dependency_missing without them).
  const protobuf = requireOptional<typeof protobufjs>('protobufjs', 'the SPIFFE Workload API');
  const { fromJSON } = requireOptional<{ fromJSON: typeof FromJson }>(
    '@grpc/proto-loader',
    'the SPIFFE Workload API',
  );
  const struct = protobuf.common.get('google/protobuf/struct.proto');
  if (struct === null) throw new Error('protobufjs is missing google/protobuf/struct.proto');
  const root = protobuf.Root.fromJSON(struct);
  protobuf.parse(WORKLOAD_API_PROTO, root, { keepCase: true });
  const definition = fromJSON(root.toJSON(), {
    keepCase: true,
    longs: String,
    enums: String,
    bytes: Buffer,
    defaults: true,
  });
  const service = definition['SpiffeWorkloadAPI'];
  if (service === undefined || !isServiceDefinition(service)) {
    throw new Error('workload API proto: service SpiffeWorkloadAPI not found');
  }
  const fetchX509Svid = service['FetchX509SVID'];
  if (fetchX509Svid === undefined) throw new Error('workload API proto: FetchX509SVID not found');
  cached = Object.freeze({
    service: service as ServiceDefinition,
    fetchX509Svid: fetchX509Svid as unknown as WorkloadApiDefinition['fetchX509Svid'],
  });
  return cached;
}

function isServiceDefinition(value: object): value is Record<string, MethodDefinition<object, object>> {
  return (
    !('format' in value) &&
    Object.values(value).every((m: unknown) => typeof m === 'object' && m !== null && 'path' in m)
  );
}
