import { passportContextSchema, type PassportContext } from '../authcore/claims.js';
import { issuePassport } from '../authcore/issue-passport.js';
import { generateSigningKey, type SigningKey } from '../authcore/signing-key.js';
import { jwkThumbprint } from '../authcore/public-jwk.js';
import { encodeBase64Url } from '../internal/base64url.js';
import { signRequest } from '../proof/sign-request.js';
import { WIRE_HEADERS } from '../proof/wire.js';
import { checkField } from './check-field.js';
import type { OutgoingRequest } from './outgoing-request.js';
import type { PassportSource, RequestCredentials } from './passport-source.js';

/** Options for {@link selfIssuedPassports}. */
export interface SelfIssuedPassportsOptions {
  /** Passport `iss`: an issuer whose key the verifier's trust material lists. */
  readonly issuer: string;
  /** Passport `sub`. */
  readonly subject: string;
  /** Passport `trust_domain`. */
  readonly trustDomain: string;
  /** The issuer's signing key (software class). Secret: it never leaves the source. */
  readonly signingKey: SigningKey;
  /** Header `kid` of `signingKey`, as listed under the issuer in the trust material. */
  readonly kid: string;
  /** Passport `aud`. Default: the client's audience (a different one is refused by the client). */
  readonly audience?: string;
  /** Passport lifetime, seconds (default 60, at most 600, the verifiers' default maximum). */
  readonly ttlSeconds?: number;
  /** `cnf.key_binding`: a self-issued software key can only vouch for `software` (the default). */
  readonly keyBinding?: 'software';
  /** Passport `ctx` claim. */
  readonly ctx?: PassportContext;
  /** Epoch seconds (default the system clock). */
  readonly clock?: () => number;
}

/** Default self-issued passport lifetime, seconds. */
export const DEFAULT_SELF_ISSUED_TTL_SECONDS = 60;
/** Longest self-issued passport lifetime, seconds (the verifiers' default maximum). */
export const MAX_SELF_ISSUED_TTL_SECONDS = 600;

const systemClock = () => Math.floor(Date.now() / 1000);

/**
 * A passport source that self-issues one passport per request: a fresh random `jti` (128 bits),
 * `iat` from the clock, `exp = iat + ttlSeconds`, and a `cnf` key generated for that request alone
 * (a fresh Ed25519 key per request: the key that signs the request proof exists for one passport
 * and one transcript, so nothing a leaked request key could sign outlives that single-use
 * passport; `cnf.kid` is its RFC 7638 thumbprint). The passport is signed with the issuer key and
 * the request with `signRequest()` from `trustplane/proof`.
 *
 * @throws TypeError/RangeError at construction for bad options (empty names, a non-software
 *   key binding, a TTL outside 1..600 s, an invalid `ctx`)
 * @example
 * const passports = selfIssuedPassports({
 *   issuer: 'https://issuer.example/software-jwks', subject: 'service:orders-client',
 *   trustDomain: 'example.local', signingKey: await parsePrivateKey(env.TRUSTPLANE_KEY), kid: 'caller-1',
 * })
 * const client = new ProtectedClient({ baseUrl: 'https://orders.example', audience: 'orders-api', passports })
 */
export function selfIssuedPassports(options: SelfIssuedPassportsOptions): PassportSource {
  const issuer = checkField('issuer', options.issuer, 2048);
  const subject = checkField('subject', options.subject, 2048);
  const trustDomain = checkField('trustDomain', options.trustDomain, 255);
  const kid = checkField('kid', options.kid, 256);
  const audience =
    options.audience === undefined ? undefined : checkField('audience', options.audience, 2048);
  const key = options.signingKey;
  if (typeof key?.sign !== 'function' || typeof key.publicKey?.x !== 'string') {
    throw new TypeError('signingKey must be a SigningKey (parsePrivateKey / generateSigningKey)');
  }
  const ttl = options.ttlSeconds ?? DEFAULT_SELF_ISSUED_TTL_SECONDS;
  if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_SELF_ISSUED_TTL_SECONDS) {
    throw new RangeError(`ttlSeconds must be an integer from 1 to ${MAX_SELF_ISSUED_TTL_SECONDS}`);
  }
  if ((options.keyBinding ?? 'software') !== 'software') {
    throw new RangeError('a self-issued passport can only claim the software key binding');
  }
  let ctx: PassportContext | undefined;
  if (options.ctx !== undefined) {
    const parsed = passportContextSchema.safeParse(options.ctx);
    if (!parsed.success) throw new TypeError('ctx must hold only the known context keys with string values');
    ctx = Object.keys(parsed.data).length > 0 ? parsed.data : undefined;
  }
  const clock = options.clock ?? systemClock;

  return Object.freeze({
    ...(audience !== undefined ? { audience } : {}),
    async authorize(request: OutgoingRequest): Promise<RequestCredentials> {
      if (audience !== undefined && audience !== request.audience) {
        throw new TypeError('the passport source audience differs from the client audience');
      }
      const iat = clock();
      const requestKey = await generateSigningKey();
      const passport = await issuePassport(
        {
          iss: issuer,
          sub: subject,
          aud: request.audience,
          iat,
          exp: iat + ttl,
          jti: encodeBase64Url(crypto.getRandomValues(new Uint8Array(16))),
          trust_domain: trustDomain,
          cnf: {
            kid: await jwkThumbprint(requestKey.publicKey),
            key_binding: 'software',
            public_key_b64url: requestKey.publicKey.x,
          },
          ...(ctx ? { ctx } : {}),
        },
        key,
        { kid },
      );
      const headers: Record<string, string> = Object.create(null) as Record<string, string>;
      for (const [name, value] of Object.entries(request.headers)) {
        if (name !== WIRE_HEADERS.nonce) headers[name] = value;
      }
      const signed = await signRequest({
        method: request.method,
        url: request.url,
        routeId: request.routeId,
        passport,
        requestKey,
        headers,
        body: request.body,
        coveredHeaders: request.coveredHeaders,
        nonce: request.nonce,
      });
      // signRequest derives the same facts on its own; any drift would send a request that cannot
      // verify, so it is an internal error here rather than a deny at the verifier.
      if (
        signed.bodySha256 !== request.bodySha256 ||
        signed.headers[WIRE_HEADERS.coveredHeaders] !== request.coveredHeaders.join(',')
      ) {
        throw new Error('signRequest bound a different request than the one prepared');
      }
      return {
        passport,
        proof: signed.headers[WIRE_HEADERS.proof]!,
        transcriptSha256: signed.transcript.sha256,
      };
    },
  });
}
