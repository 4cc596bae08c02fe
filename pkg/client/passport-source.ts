import type { OutgoingRequest } from './outgoing-request.js';

/** What a {@link PassportSource} hands back for one request. */
export interface RequestCredentials {
  /** The passport (compact JWS), sent as `Authorization: Bearer <passport>`. */
  readonly passport: string;
  /** The transcript-v1 proof, sent as `X-TrustPlane-Proof`. */
  readonly proof: string;
  /** Lowercase hex SHA-256 of the transcript, sent as `X-TrustPlane-Transcript-SHA256`. */
  readonly transcriptSha256: string;
}

/**
 * Where a {@link ProtectedClient} gets the credentials for each request (strategy): a fresh,
 * request-bound passport and the proof over the exact request.
 */
export interface PassportSource {
  /** The audience this source mints for, when fixed; the client refuses a different one. */
  readonly audience?: string;
  /**
   * Credentials for exactly this request. Called once per request, before anything is sent.
   * @throws whatever the source's failures are; the client sends nothing when this throws
   */
  authorize(request: OutgoingRequest): Promise<RequestCredentials>;
}
