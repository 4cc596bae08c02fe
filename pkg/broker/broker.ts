import { passportContextSchema, type PassportClaims, type PassportContext } from '../authcore/claims.js';
import { TrustplaneError } from '../authcore/errors.js';
import { issuePassport } from '../authcore/issue-passport.js';
import { generateSigningKey, type SigningKey } from '../authcore/signing-key.js';
import { jwkThumbprint } from '../authcore/public-jwk.js';
import { isRetryableReason, statusForReason, type ReasonCode } from '../authcore/reason-codes.js';
import { keyBindingRank } from '../authcore/signer-taxonomy.js';
import { AUDIT_EVENT_SCHEMA, type AuditEvent } from '../audit/event.js';
import { type AuditSink } from '../audit/audit-sink.js';
import type { LoadedPolicy } from '../bundle/load-policy-bundle.js';
import type { LoadedTrustMaterial } from '../bundle/load-trust-material.js';
import { encodeBase64Url } from '../internal/base64url.js';
import { sha256HexSync } from '../internal/sha256.js';
import { normalizeCoveredHeaders } from '../proof/covered-headers.js';
import { normalizeQuery } from '../proof/normalize-query.js';
import { signProof } from '../proof/request-proof.js';
import { transcriptFromDigests } from '../proof/transcript.js';
import { clientPathProblem } from '../proof/sdk-path-safety.js';
import type { IdentitySource, WorkloadIdentity } from './identity.js';
import { DEFAULT_MAX_TTL_SECONDS, findGrant, type IssuancePolicy } from './issuance-policy.js';
import { evaluateRoutePolicy } from '../verifier/route-policy.js';
import {
  brokerIpcRequestSchema,
  type BrokerIpcRequest,
  type BrokerIpcResponse,
} from '../proof/broker-ipc-v1.js';

/** `reason_code` of a successful issuance (broker-ipc-v1). */
export const BROKER_PASSPORT_ISSUED = 'broker_passport_issued';
/** `artifacts.passport.format` of minted passports. */
export const PASSPORT_ARTIFACT_FORMAT = 'passport-v1-compact-jws';
/** `artifacts.stamp.format` of minted request proofs. */
export const STAMP_ARTIFACT_FORMAT = 'transcript-v1-ed25519-proof';

/** The trust material and policy bundle in force. */
export interface BrokerMaterial {
  readonly trust: LoadedTrustMaterial;
  readonly policy: LoadedPolicy;
}

/** Options for {@link Broker}. */
export interface BrokerOptions {
  /** Passport `iss`: the broker's issuer name in the trust material. */
  readonly issuer: string;
  /** The broker's passport-signing key (Ed25519). Secret. */
  readonly issuerKey: SigningKey;
  /** Header `kid` of the issuer key (it must be listed under the issuer in the trust material). */
  readonly issuerKid: string;
  /** Whose passports this broker mints (local SVID or software subject). */
  readonly identity: IdentitySource;
  /** The trust material and policy in force (hot-reloadable). */
  readonly material: () => BrokerMaterial;
  /** Optional narrowing of the policy bundle (grants, TTL). */
  readonly issuance?: IssuancePolicy;
  /** Epoch seconds (default system clock). */
  readonly clock?: () => number;
  /** Where issue and deny events go (one per request). */
  readonly audit?: AuditSink;
  /** Instance name in audit events. */
  readonly instance?: string;
  /** Passport jti generator (default 128 random bits, base64url). */
  readonly newJti?: () => string;
}

/** Who is asking, beyond the local workload (network mode: the mTLS peer). */
export interface IssueContext {
  /** The verified identity of an mTLS peer; passports are minted for it instead of the local one. */
  readonly peer?: WorkloadIdentity;
}

interface Outcome {
  readonly response: BrokerIpcResponse;
  readonly event: Partial<AuditEvent>;
}

/**
 * A broker-ipc-v1 deny answer (internal: the broker and its listeners build every deny with it).
 * @param requestId the request's `request_id`, or `unknown`
 * @param reason the registry code (`error.retryable` is the registry's)
 * @param message operator-facing, never request contents (cut at 1,024 characters)
 * @param details structured fields, as strings
 */
export function denyResponse(
  requestId: string,
  reason: ReasonCode,
  message: string,
  details?: Readonly<Record<string, string | number | boolean>>,
): BrokerIpcResponse {
  const error: {
    code: string;
    message: string;
    retryable: boolean;
    details?: Record<string, string>;
  } = { code: reason, message: message.slice(0, 1024), retryable: isRetryableReason(reason) };
  if (details && Object.keys(details).length > 0) {
    error.details = Object.fromEntries(Object.entries(details).map(([k, v]) => [k, String(v)]));
  }
  return {
    request_id: requestId,
    accepted: false,
    status: 'deny',
    reason_code: reason,
    issued_at: 0,
    expires_at: 0,
    artifacts: null,
    error,
  };
}

function requestIdOf(raw: unknown): string {
  if (typeof raw === 'object' && raw !== null) {
    const id = (raw as Record<string, unknown>).request_id;
    if (typeof id === 'string' && id.length > 0 && id.length <= 256) return id;
  }
  return 'unknown';
}

function randomJti(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Check the `http` description is internally consistent: the normalized query is the normalization
 * of the raw query with that digest, the allow list is normalized and covers the nonce, the
 * selected headers follow it, and the nonce header digest is the nonce's.
 */
function checkHttp(http: BrokerIpcRequest['http']): void {
  const pathProblem = clientPathProblem(http.path);
  if (pathProblem !== undefined)
    throw new TrustplaneError('unsafe_request_path', `unsafe request path: ${pathProblem}`);
  if (normalizeQuery(http.query.raw) !== http.query.normalized) {
    throw new TrustplaneError('malformed_request', 'query.normalized is not the normalization of query.raw');
  }
  if (sha256HexSync(http.query.normalized) !== http.query.sha256) {
    throw new TrustplaneError('malformed_request', 'query.sha256 does not match query.normalized');
  }
  const allow = normalizeCoveredHeaders(http.headers.allow_list);
  if (allow.join(',') !== http.headers.allow_list.join(',')) {
    throw new TrustplaneError('malformed_request', 'headers.allow_list must be lowercase, sorted and unique');
  }
  if (!allow.includes('x-trustplane-nonce')) {
    throw new TrustplaneError('malformed_request', 'headers.allow_list must cover x-trustplane-nonce');
  }
  const nonce = http.headers.selected.find((h) => h.name === 'x-trustplane-nonce');
  if (nonce?.value_sha256 !== sha256HexSync(http.nonce)) {
    throw new TrustplaneError(
      'malformed_request',
      'the x-trustplane-nonce header digest is not the nonce digest',
    );
  }
}

function contextClaim(ctx: BrokerIpcRequest['ctx']): PassportContext | undefined {
  if (ctx === undefined) return undefined;
  const selected = new Set<string>(ctx.selected_fields);
  for (const key of Object.keys(ctx.values)) {
    if (!selected.has(key))
      throw new TrustplaneError('malformed_request', `ctx value ${key} is not a selected field`);
  }
  const claim: Record<string, string> = {};
  for (const field of ctx.selected_fields) {
    const value = ctx.values[field];
    if (value !== undefined) claim[field] = value;
  }
  const parsed = passportContextSchema.safeParse(claim);
  if (!parsed.success) throw new TrustplaneError('malformed_request', 'ctx values are out of bounds');
  return Object.keys(claim).length > 0 ? parsed.data : undefined;
}

/**
 * The passport broker: decides whether the workload may get a passport for one exact HTTP request
 * (broker-ipc-v1) and mints it with a stamp (the transcript-v1 proof) signed by a fresh request key
 * that never leaves the broker. Transport-free: the IPC and TLS servers call {@link Broker.issue}.
 *
 * Decision order: request shape → path safety → workload identity → key binding → route (method +
 * path resolve to `route_id` in the policy bundle, audience of its API) → an allowed source of the
 * route names this broker and the subject → route minimum class → issuance grant → mint → audit.
 *
 * @example
 * const broker = new Broker({ issuer, issuerKey, issuerKid, identity, material: () => bundles })
 * const response = await broker.issue(JSON.parse(line))
 */
export class Broker {
  readonly #o: BrokerOptions;
  readonly #clock: () => number;

  constructor(options: BrokerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? (() => Math.floor(Date.now() / 1000));
  }

  /** The identity source (for readiness checks). */
  get identity(): IdentitySource {
    return this.#o.identity;
  }

  /**
   * Answer one broker-ipc-v1 request. Never throws for bad input: every refusal is a structured
   * deny response, and every answer is written to the audit sink.
   */
  async issue(raw: unknown, context: IssueContext = {}): Promise<BrokerIpcResponse> {
    const started = performance.now();
    let outcome: Outcome;
    try {
      outcome = await this.#decide(raw, context);
    } catch (error) {
      const requestId = requestIdOf(raw);
      if (error instanceof TrustplaneError) {
        outcome = {
          response: denyResponse(requestId, error.reason, error.message, error.details),
          event: { reason: error.reason, detail: error.message.slice(0, 512) },
        };
      } else {
        outcome = {
          response: denyResponse(requestId, 'internal_error', 'the broker failed to mint'),
          event: { reason: 'internal_error', detail: 'unexpected broker failure' },
        };
      }
    }
    return this.#record(outcome, raw, performance.now() - started);
  }

  async #record(outcome: Outcome, raw: unknown, latencyMs: number): Promise<BrokerIpcResponse> {
    const audit = this.#o.audit;
    if (audit === undefined) return outcome.response;
    const event = this.#event(outcome, raw, latencyMs);
    try {
      await audit.write(event);
    } catch {
      // Every issuance must be on record: a minted passport whose event was lost is withheld.
      const requestId = outcome.response.request_id;
      const failed = denyResponse(requestId, 'audit_unavailable', 'the audit event could not be written');
      return failed;
    }
    return outcome.response;
  }

  /**
   * Refuse a message that could not be read as a request at all (not JSON, over 1 MiB, not
   * UTF-8): a `malformed_request` deny with `request_id` "unknown", audited like any other.
   */
  async refuse(message: string): Promise<BrokerIpcResponse> {
    const outcome: Outcome = {
      response: denyResponse('unknown', 'malformed_request', message),
      event: { reason: 'malformed_request', detail: message.slice(0, 512) },
    };
    return this.#record(outcome, undefined, 0);
  }

  async #decide(raw: unknown, context: IssueContext): Promise<Outcome> {
    const parsed = brokerIpcRequestSchema.safeParse(raw);
    if (!parsed.success) {
      const where = parsed.error.issues[0]?.path.join('.') ?? '';
      throw new TrustplaneError(
        'malformed_request',
        `request does not match broker-ipc-v1${where ? ` at ${where}` : ''}`,
      );
    }
    const req = parsed.data;
    const http = req.http;
    checkHttp(http);
    const ctx = contextClaim(req.ctx);
    const kb = req.key_binding;
    if (!kb.acceptable_key_bindings.includes(kb.requested_key_binding)) {
      throw new TrustplaneError(
        'malformed_request',
        'requested_key_binding is not among acceptable_key_bindings',
      );
    }

    const now = this.#clock();
    const identity = context.peer ?? this.#o.identity.current();
    if (identity.notAfter !== undefined && identity.notAfter <= now) {
      throw new TrustplaneError('workload_attestation_failed', 'the workload identity has expired');
    }
    const available = identity.keyBinding;
    const acceptable =
      kb.acceptable_key_bindings.includes(available) ||
      (kb.allow_software_fallback && available === 'software');
    if (!acceptable) {
      throw new TrustplaneError(
        'insufficient_key_binding',
        'requested key binding cannot be satisfied by the local broker',
        { requested_key_binding: kb.requested_key_binding, available_key_binding: available },
      );
    }

    let material: BrokerMaterial;
    try {
      material = this.#o.material();
    } catch {
      throw new TrustplaneError('policy_unavailable', 'no valid trust material or policy bundle is loaded');
    }
    const issuer = material.trust.getIssuer(this.#o.issuer);
    if (issuer === undefined || !issuer.keys.has(this.#o.issuerKid)) {
      throw new TrustplaneError(
        'policy_unavailable',
        'the trust material does not list this broker issuer key',
      );
    }
    if (keyBindingRank(available) > keyBindingRank(issuer.maxKeyBinding)) {
      throw new TrustplaneError(
        'insufficient_key_binding',
        'the trust material caps this broker below the workload class',
        {
          available_key_binding: available,
          issuer_max_key_binding: issuer.maxKeyBinding,
        },
      );
    }

    const match = material.policy.routeTable.resolveRequest(http.method, http.path);
    if (match === undefined || match.route.route_id !== http.route_id) {
      throw new TrustplaneError(
        'bundle_route_missing',
        'no route of the policy bundle matches this method, path and route_id',
        {
          route_id: http.route_id,
        },
      );
    }
    if (match.api.audience !== http.audience) {
      throw new TrustplaneError('audience_mismatch', 'the audience is not that of the route API', {
        route_id: http.route_id,
      });
    }
    const grant = findGrant(this.#o.issuance, identity.subject, http.audience, http.route_id, ctx);
    const ttl = Math.min(
      this.#o.issuance?.ttl_seconds ?? DEFAULT_MAX_TTL_SECONDS,
      grant?.max_ttl_seconds ?? DEFAULT_MAX_TTL_SECONDS,
      DEFAULT_MAX_TTL_SECONDS,
    );
    const exp = Math.min(now + ttl, identity.notAfter ?? Number.MAX_SAFE_INTEGER);
    const jti = (this.#o.newJti ?? randomJti)();
    const requestKey = await generateSigningKey();
    const claims: PassportClaims = {
      iss: this.#o.issuer,
      sub: identity.subject,
      aud: http.audience,
      iat: now,
      exp,
      jti,
      trust_domain: identity.trustDomain,
      cnf: {
        kid: await jwkThumbprint(requestKey.publicKey),
        key_binding: available,
        public_key_b64url: requestKey.publicKey.x,
      },
      ...(ctx ? { ctx } : {}),
      ...(identity.provenance ? { provenance: identity.provenance } : {}),
    };
    // The verifier's own route policy (revocations, sources, route minimum class, context and
    // provenance rules, freshness of the trust material and policy bundle), run on the exact
    // claims about to be minted: the broker never mints a passport the verifier would refuse on
    // policy, and refuses with the verifier's code.
    evaluateRoutePolicy(
      match.route,
      material.policy,
      { claims, kid: this.#o.issuerKid, issuer, effectiveKeyBinding: available },
      { now, trust: material.trust },
    );
    if (grant === undefined) {
      throw new TrustplaneError(
        'issuance_policy_denied',
        'no issuance grant covers this subject, audience, route and ctx',
        {
          route_id: http.route_id,
          subject: identity.subject,
        },
      );
    }
    const passport = await issuePassport(claims, this.#o.issuerKey, { kid: this.#o.issuerKid });
    const transcript = transcriptFromDigests({
      method: http.method,
      scheme: http.scheme,
      authority: http.authority,
      path: http.path,
      audience: http.audience,
      routeId: http.route_id,
      contentEncoding: http.content_encoding,
      normalizedQuery: http.query.normalized,
      querySha256: http.query.sha256,
      allowList: http.headers.allow_list,
      selected: http.headers.selected.map((h) => ({ name: h.name, valueSha256: h.value_sha256 })),
      bodySha256: http.body_sha256,
      passportJti: jti,
      nonce: http.nonce,
      issuedAt: now,
      keyBinding: available,
    });
    const stamp = await signProof(transcript.digest, requestKey);
    return {
      response: {
        request_id: req.request_id,
        accepted: true,
        status: 'allow',
        reason_code: BROKER_PASSPORT_ISSUED,
        issued_at: now,
        expires_at: exp,
        artifacts: {
          passport: { format: PASSPORT_ARTIFACT_FORMAT, value: passport, jti },
          stamp: { format: STAMP_ARTIFACT_FORMAT, value: stamp, transcript_sha256: transcript.sha256 },
        },
        error: null,
      },
      event: {
        iss: this.#o.issuer,
        sub: identity.subject,
        trust_domain: identity.trustDomain,
        jti,
        key_binding: available,
        api_id: match.api.api_id,
        source_type: issuer.sourceType,
        transcript_sha256: transcript.sha256,
        ...(material.policy.policyVersion ? { policy_version: material.policy.policyVersion } : {}),
      },
    };
  }

  #event(outcome: Outcome, raw: unknown, latencyMs: number): AuditEvent {
    const r = outcome.response;
    const event: Record<string, unknown> = {
      schema: AUDIT_EVENT_SCHEMA,
      event_id: crypto.randomUUID(),
      time: new Date(this.#clock() * 1000).toISOString(),
      event_type: r.accepted ? 'passport_issued' : 'passport_denied',
      component: 'broker',
      ...(this.#o.instance ? { instance: this.#o.instance } : {}),
      decision: r.accepted ? 'allow' : 'deny',
      status: r.accepted ? 200 : statusForReason(r.reason_code as ReasonCode),
      request_id: r.request_id.slice(0, 128),
    };
    const http = (raw as { http?: Record<string, unknown> } | null)?.http;
    if (typeof http === 'object' && http !== null) {
      const text = (key: string, max: number) => {
        const v = http[key];
        return typeof v === 'string' && v.length > 0 ? v.slice(0, max) : undefined;
      };
      const put = (name: string, value: string | undefined) => {
        if (value !== undefined) event[name] = value;
      };
      put('method', text('method', 32));
      put('authority', text('authority', 512));
      put('path', text('path', 4096));
      put('route_id', text('route_id', 256));
      put('audience', text('audience', 2048));
      const q = (http.query as Record<string, unknown> | undefined)?.sha256;
      if (typeof q === 'string' && /^[0-9a-f]{64}$/.test(q)) event.query_sha256 = q;
    }
    Object.assign(event, outcome.event);
    event.latency_us = Math.max(0, Math.round(latencyMs * 1000));
    return event as AuditEvent;
  }
}
