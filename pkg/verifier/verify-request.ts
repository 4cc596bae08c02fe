import { TrustplaneError } from '../authcore/errors.js';
import type { IssuerRegistry } from '../authcore/issuer-registry.js';
import type { ReplayStore } from '../authcore/replay-store.js';
import { DEFAULT_SKEW_SECONDS, verifyPassport, type VerifiedPassport } from '../authcore/verify-passport.js';
import type { KeyBinding } from '../authcore/signer-taxonomy.js';
import { timingSafeEqualString } from '../internal/bytes.js';
import { sha256HexSync } from '../internal/sha256.js';
import { parseCoveredHeadersHeader, requiredCoveredHeaders } from '../proof/covered-headers.js';
import { normalizeQuery } from '../proof/normalize-query.js';
import { assertSafeHeaders } from '../proof/header-safety.js';
import { assertSafePath, pathSafetyProblem } from '../proof/path-safety.js';
import { parseRequestTarget } from '../proof/request-target.js';
import { verifyProof } from '../proof/request-proof.js';
import { buildTranscriptSync } from '../proof/transcript.js';
import { MAX_NONCE_LENGTH, WIRE_HEADERS } from '../proof/wire.js';
import {
  denyFrom,
  type AllowDecision,
  type Decision,
  type DenyAbout,
  type VerificationStage,
} from './decision.js';
import { evaluateRoutePolicy } from './route-policy.js';
import type { RouteMatch } from '../bundle/route-table.js';
import type { LoadedPolicy } from '../bundle/load-policy-bundle.js';
import { getHeader, normalizeWebRequest, type NormalizedRequest } from './normalized-request.js';
import { bindingDetails, originSource } from './binding-explanation.js';

/** Everything a decision is made from. */
export interface VerifierContext {
  /** Loaded trust material (issuers and keys). */
  readonly trust: IssuerRegistry;
  /** Loaded policy bundle. */
  readonly policy: LoadedPolicy;
  /** One-time jti store. */
  readonly replayStore: ReplayStore;
  /** Injected clock, epoch seconds (default: system clock). */
  readonly clock?: () => number;
  /** Clock skew tolerance, seconds (default 30). */
  readonly skewSeconds?: number;
  /** Maximum passport lifetime, seconds (default 600). */
  readonly maxLifetimeSeconds?: number;
  /**
   * Pin every request to this route: method and path must still resolve to it (anything else is
   * `bundle_route_missing`), so the pin never admits another method or path.
   */
  readonly routeId?: string;
  /**
   * Public origin the callers address (`https://orders.example`), used for the transcript's scheme
   * and authority. Default: the matched API's `base_url`, else the request's own.
   */
  readonly publicOrigin?: string;
  /**
   * Require the request's own authority (`Host`) to be the origin the transcript covers, else
   * `request_binding_mismatch`. For enforcement points that cannot hand the upstream the verified
   * authority (forward-auth: the gateway forwards the caller's Host); the others replace it.
   */
  readonly bindHost?: boolean;
  /** Largest body read from a Web Request, bytes (default 1 MiB). */
  readonly maxBodyBytes?: number;
}

const BEARER = /^Bearer +([A-Za-z0-9\-_.]+)$/i;
const PROOF_FORMAT = /^[A-Za-z0-9\-_]{86}$/;
const NONCE_FORMAT = /^[\x21-\x7e]+$/;
const HEX64 = /^[0-9a-f]{64}$/;

class StageError {
  constructor(
    readonly stage: VerificationStage,
    readonly error: TrustplaneError,
  ) {}
}

/**
 * The origin callers address: the configured `publicOrigin`, else the API's `base_url`, else the
 * request's own. A configured origin that does not parse is a misconfiguration: it throws (and the
 * request is denied `internal_error`) rather than silently falling back to the request's host.
 */
function resolveOrigin(
  publicOrigin: string | undefined,
  baseUrl: string | undefined,
  req: NormalizedRequest,
): { scheme: string; authority: string } {
  const configured = publicOrigin ?? baseUrl;
  if (configured === undefined) return { scheme: req.scheme, authority: req.authority };
  const { scheme, authority } = parseRequestTarget(configured);
  return { scheme, authority };
}

/** Deny path only: what the transcript was rebuilt from, for the operator (never a secret). */
function explainBinding(
  origin: { scheme: string; authority: string },
  publicOrigin: string | undefined,
  baseUrl: string | undefined,
  req: NormalizedRequest,
  normalizedQuery: string,
  coveredHeaders: readonly string[],
  bodySha256: string,
): Record<string, string> {
  return bindingDetails({
    scheme: origin.scheme,
    authority: origin.authority,
    publicOrigin,
    baseUrl,
    method: req.method,
    path: req.path,
    normalizedQuery,
    coveredHeaders,
    bodySha256,
  });
}

/** The passport, proof and nonce headers, checked for shape. */
function credentialsOf(req: NormalizedRequest): { token: string; proof: string; nonce: string } {
  const auth = getHeader(req.headers, WIRE_HEADERS.authorization);
  if (auth === undefined || auth.trim() === '')
    throw new TrustplaneError('missing_passport', 'missing passport');
  const m = BEARER.exec(auth.trim());
  if (!m) throw new TrustplaneError('malformed_passport', 'authorization is not a Bearer passport');
  const proofValue = getHeader(req.headers, WIRE_HEADERS.proof)?.trim();
  const nonceValue = getHeader(req.headers, WIRE_HEADERS.nonce)?.trim();
  if (proofValue === undefined || !PROOF_FORMAT.test(proofValue)) {
    throw new TrustplaneError('missing_proof', 'missing or malformed request proof');
  }
  if (nonceValue === undefined || nonceValue.length > MAX_NONCE_LENGTH || !NONCE_FORMAT.test(nonceValue)) {
    throw new TrustplaneError('missing_proof', 'missing or malformed nonce');
  }
  return { token: m[1]!, proof: proofValue, nonce: nonceValue };
}

/** A TrustplaneError thrown at `stage` as the StageError it is reported as; anything else as is. */
function atStage(stage: VerificationStage, e: unknown): unknown {
  if (!(e instanceof TrustplaneError)) return e;
  // The route policy ends with freshness: a stale bundle is reported at its own stage.
  const at = stage === 'policy' && e.reason === 'stale_bundle_fail_closed' ? 'freshness' : stage;
  return new StageError(at, e);
}

/** Run an asynchronous stage. */
async function run<T>(stage: VerificationStage, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw atStage(stage, e);
  }
}

/** Run a synchronous stage (no promise, no microtask: most stages are plain computation). */
function runSync<T>(stage: VerificationStage, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw atStage(stage, e);
  }
}

/**
 * Verify one request: the single pipeline every enforcement point calls. Stages, in order (a
 * security property): parse → path safety → route → passport signature and claims → source,
 * key-binding, context and provenance policy → freshness → transcript rebuild and proof → atomic
 * jti consume → allow. Nothing that fails before the proof check consumes the jti.
 *
 * Never throws for untrusted input: every failure is a deny decision with a reason code and HTTP
 * status. Unexpected internal errors deny with `internal_error` (fail closed).
 *
 * @param request a Web Request (its body is read from a clone) or a {@link NormalizedRequest}
 * @param context trust material, policy, replay store and clock
 * @example
 * const decision = await verifyRequest(request, { trust, policy, replayStore })
 * if (!decision.allowed) return denyResponse(decision)
 */
export async function verifyRequest(
  request: Request | NormalizedRequest,
  context: VerifierContext,
): Promise<Decision> {
  const partial: Partial<Record<keyof DenyAbout, string>> = {};
  try {
    return await pipeline(request, context, partial);
  } catch (e) {
    const stageError =
      e instanceof StageError
        ? e
        : new StageError('parse', new TrustplaneError('internal_error', 'unexpected verifier failure'));
    return denyFrom(stageError.error, stageError.stage, partial);
  }
}

/**
 * The route of a request whose credentials failed to parse, for the audit event and the route's
 * enforcement mode (a `dry-run` route observes callers that send no passport yet). The deny
 * reason stays the parse failure; an unsafe or unknown path simply has no route.
 */
function routeOfRefused(req: NormalizedRequest, context: VerifierContext): string | undefined {
  if (pathSafetyProblem(req.path) !== undefined) return undefined;
  try {
    return resolveRoute(req, context).route.route_id;
  } catch {
    return undefined;
  }
}

/**
 * The route of a request: method and raw path through the route table, refusing a path an
 * upstream could route elsewhere. A fixed `routeId` pins the route: the request must still resolve
 * to it (it never admits another method or path).
 * @throws TrustplaneError `bundle_route_missing`, `ambiguous_request_path`
 */
function resolveRoute(req: NormalizedRequest, context: VerifierContext): RouteMatch {
  const r = context.policy.routeTable.resolveRequest(req.method, req.path);
  if (!r) throw new TrustplaneError('bundle_route_missing', 'no route for request');
  if (context.routeId !== undefined && r.route.route_id !== context.routeId) {
    throw new TrustplaneError('bundle_route_missing', 'the request is not on the fixed route', {
      route_id: r.route.route_id,
    });
  }
  return r;
}

async function pipeline(
  request: Request | NormalizedRequest,
  context: VerifierContext,
  partial: Partial<Record<keyof DenyAbout, string>>,
): Promise<AllowDecision> {
  const now = Math.floor(context.clock ? context.clock() : Date.now() / 1000);

  // 1. parse
  const req =
    request instanceof Request
      ? await run('parse', () =>
          normalizeWebRequest(
            request,
            context.maxBodyBytes !== undefined ? { maxBodyBytes: context.maxBodyBytes } : {},
          ),
        )
      : request;
  // Headers and query are the request layer: an unsafe header or a malformed query is refused
  // before any credential is looked at (so that a dry-run route never lets it through); the query
  // is normalized only once.
  const normalizedQuery = runSync('parse', () => {
    assertSafeHeaders(req.headers);
    return normalizeQuery(req.query);
  });
  const { token, proof, nonce } = runSync('parse', () => {
    try {
      return credentialsOf(req);
    } catch (e) {
      const routeId = routeOfRefused(req, context);
      if (routeId !== undefined) partial.routeId = routeId;
      throw e;
    }
  });

  // 2. path safety: the raw path as sent, before routing.
  runSync('path', () => assertSafePath(req.path));

  // 3. route
  const resolved = runSync('route', () => resolveRoute(req, context));
  const { route, api } = resolved;
  partial.routeId = route.route_id;

  // 4. passport signature and claims
  const passport: VerifiedPassport = await run('passport', () =>
    verifyPassport(token, {
      issuers: context.trust,
      audience: api.audience,
      now,
      ...(context.skewSeconds !== undefined ? { skewSeconds: context.skewSeconds } : {}),
      ...(context.maxLifetimeSeconds !== undefined ? { maxLifetimeSeconds: context.maxLifetimeSeconds } : {}),
    }),
  );
  const { claims } = passport;
  partial.issuer = claims.iss;
  partial.subject = claims.sub;
  partial.jti = claims.jti;

  // 5-6. route policy: revocations (jti, subject, header kid, cnf.kid), sources, key binding,
  // context, provenance, then freshness of the trust material and policy bundle.
  const { source } = runSync('policy', () =>
    evaluateRoutePolicy(
      route,
      context.policy,
      {
        claims: passport.claims,
        issuer: passport.issuer,
        effectiveKeyBinding: passport.effectiveKeyBinding,
        kid: passport.header.kid,
      },
      { now, trust: context.trust, ...(req.bodyUnverified === true ? { bodyUnverified: true } : {}) },
    ),
  );

  // The body: read and digested only now, once the credentials, route and policy allow it.
  const body = await run('parse', async () => {
    const read =
      req.readBody !== undefined ? await req.readBody() : { sha256: req.bodySha256, length: req.bodyLength };
    if (!HEX64.test(read.sha256)) throw new TrustplaneError('malformed_request', 'invalid body digest');
    return read;
  });

  // 7. transcript rebuild and proof
  const origin = runSync('proof', () => {
    const o = resolveOrigin(context.publicOrigin, api.base_url, req);
    if (context.bindHost === true && req.authority !== o.authority) {
      throw new TrustplaneError(
        'request_binding_mismatch',
        'the request Host is not the origin the caller signed',
        {
          origin: `${o.scheme}://${o.authority}`,
          origin_from: originSource(context.publicOrigin, api.base_url),
          request_authority: req.authority,
        },
      );
    }
    return o;
  });
  const transcriptSha256 = await run('proof', async () => {
    const required = requiredCoveredHeaders(route.covered_headers, body.length > 0);
    const declaredHeader = getHeader(req.headers, WIRE_HEADERS.coveredHeaders);
    const covered = declaredHeader === undefined ? required : parseCoveredHeadersHeader(declaredHeader);
    for (const name of required) {
      if (!covered.includes(name)) {
        throw new TrustplaneError('insufficient_covered_headers', 'covered headers omit a required header', {
          header: name,
        });
      }
    }
    const contentEncoding = getHeader(req.headers, 'content-encoding')?.trim().toLowerCase() || 'identity';
    const claimedBody = getHeader(req.headers, WIRE_HEADERS.bodySha256)?.trim().toLowerCase();
    if (claimedBody !== undefined && !timingSafeEqualString(claimedBody, body.sha256)) {
      throw new TrustplaneError(
        'request_binding_mismatch',
        'body digest mismatch',
        explainBinding(
          origin,
          context.publicOrigin,
          api.base_url,
          req,
          normalizedQuery,
          covered,
          body.sha256,
        ),
      );
    }
    const transcript = buildTranscriptSync({
      method: req.method,
      scheme: origin.scheme,
      authority: origin.authority,
      path: req.path,
      query: req.query,
      normalizedQuery,
      audience: api.audience,
      routeId: route.route_id,
      contentEncoding,
      coveredHeaders: covered,
      headers: req.headers,
      bodySha256: body.sha256,
      passportJti: claims.jti,
      nonce,
      issuedAt: claims.iat,
      keyBinding: claims.cnf.key_binding,
    });
    const claimedTranscript = getHeader(req.headers, WIRE_HEADERS.transcriptSha256)?.trim().toLowerCase();
    if (claimedTranscript !== undefined && !timingSafeEqualString(claimedTranscript, transcript.sha256)) {
      throw new TrustplaneError(
        'request_binding_mismatch',
        'request differs from the signed transcript',
        explainBinding(
          origin,
          context.publicOrigin,
          api.base_url,
          req,
          normalizedQuery,
          covered,
          body.sha256,
        ),
      );
    }
    if (!(await verifyProof(transcript.digest, proof, passport.cnfKey))) {
      throw new TrustplaneError(
        'invalid_request_proof',
        'request proof verification failed',
        explainBinding(
          origin,
          context.publicOrigin,
          api.base_url,
          req,
          normalizedQuery,
          covered,
          body.sha256,
        ),
      );
    }
    return transcript.sha256;
  });

  // 8. atomic one-time jti consume: only now, after every other check passed.
  await run('replay', async () => {
    const key = sha256HexSync(`${claims.iss}\n${claims.jti}`);
    const skew = context.skewSeconds ?? DEFAULT_SKEW_SECONDS;
    let first: boolean;
    try {
      first = await context.replayStore.consume(
        key,
        claims.exp + skew,
        now,
        sha256HexSync(`${claims.iss}\n${claims.sub}`),
      );
    } catch (e) {
      if (e instanceof TrustplaneError) throw e;
      throw new TrustplaneError('replay_store_unavailable', 'replay store unavailable');
    }
    if (!first) throw new TrustplaneError('jti_replay', 'passport jti already used');
  });

  const keyBinding: KeyBinding = passport.effectiveKeyBinding;
  return {
    allowed: true,
    status: 200,
    routeId: route.route_id,
    apiId: api.api_id,
    audience: api.audience,
    subject: claims.sub,
    issuer: claims.iss,
    trustDomain: claims.trust_domain,
    jti: claims.jti,
    keyBinding,
    sourceType: source.source_type,
    issuedAt: claims.iat,
    expiresAt: claims.exp,
    transcriptSha256,
    scheme: origin.scheme,
    authority: origin.authority,
    query: normalizedQuery,
    ...(claims.ctx ? { ctx: claims.ctx } : {}),
    ...(claims.provenance ? { provenance: claims.provenance } : {}),
  };
}
