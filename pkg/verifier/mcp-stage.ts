import { TrustplaneError } from '../authcore/errors.js';
import { statusForReason } from '../authcore/reason-codes.js';
import type { PassportClaims } from '../authcore/claims.js';
import type { McpPolicy, PolicyRoute } from '../bundle/policy-bundle-schema.js';
import {
  decideMcp,
  decideMcpStream,
  JSONRPC_INVALID_REQUEST,
  MAX_MCP_SESSION_ID_LENGTH,
  type McpSessionBindings,
  JSONRPC_PARSE_ERROR,
  mcpDenyBody,
  mcpRequestEncodingProblem,
  type McpCallerCheck,
  type McpVerdict,
} from '../mcp/index.js';
import { denyFrom, type AllowDecision, type Decision } from './decision.js';
import type { DenyAnswer } from './deny-answer.js';
import { getHeader, type NormalizedRequest, webBodyBytes } from './normalized-request.js';
import { evaluateSourcePolicy, type SourcePolicySubject } from './source-policy.js';

/** What the MCP stage concluded for one request on an MCP route. */
export interface McpStageResult {
  /** The allow as it was, or the MCP deny (stage `mcp`). */
  readonly decision: Decision;
  /** The verdict (calls for the audit, list filter, receipt); absent when the body was unavailable. */
  readonly verdict?: McpVerdict;
}

/** The verified body's bytes, from what the point handed the kernel. */
async function bodyBytes(request: Request | NormalizedRequest, max: number): Promise<Uint8Array> {
  if (request instanceof Request) return webBodyBytes(request, max);
  if (request.bodyUnverified === true) {
    throw new TrustplaneError('unverifiable_body', 'an MCP route needs the request body; the point has none');
  }
  if (request.readBody !== undefined) {
    // The point's reader is read once: this is the body the pipeline digested and bound.
    const read = await request.readBody();
    if (read.bytes !== undefined) return read.bytes;
  } else if (request.body !== undefined) {
    return request.body;
  }
  throw new TrustplaneError(
    'internal_error',
    'the enforcement point did not pass the body bytes of an MCP route',
  );
}

/** The caller-check of MCP rules: the verifier's source policy over the verified identity. */
function callerCheck(route: PolicyRoute, allow: AllowDecision): McpCallerCheck {
  const subject = {
    claims: {
      iss: allow.issuer,
      sub: allow.subject,
      trust_domain: allow.trustDomain,
      ...(allow.ctx !== undefined ? { ctx: allow.ctx } : {}),
      ...(allow.provenance !== undefined ? { provenance: allow.provenance } : {}),
    } as unknown as PassportClaims,
    issuer: { sourceType: allow.sourceType },
    effectiveKeyBinding: allow.keyBinding,
  } as unknown as SourcePolicySubject;
  return (rules) => {
    try {
      evaluateSourcePolicy(
        {
          route_id: route.route_id,
          required_key_binding: rules.required_key_binding,
          allowed_sources: (rules.allowed_sources ?? route.allowed_sources) as PolicyRoute['allowed_sources'],
        },
        rules.context_policy !== undefined ? { context_policy: rules.context_policy } : {},
        subject,
      );
      return undefined;
    } catch (e) {
      return e instanceof TrustplaneError ? e.reason : 'internal_error';
    }
  };
}

/**
 * The MCP stage of the kernel, for routes with an `mcp` option only: runs after the pipeline
 * allowed the request (passport, route policy, transcript and body binding, one-time jti), on the
 * exact body bytes the proof covers, and decides each JSON-RPC call by the route's rules.
 * @param route the allowed request's route (with `mcp`)
 * @param allow the pipeline's allow
 * @param request what the point handed the kernel
 * @param maxBodyBytes the point's body limit
 * @param sessions the kernel's MCP session bindings (`Mcp-Session-Id` → first caller)
 * @returns the decision that stands and the verdict
 */
export async function runMcpStage(
  route: PolicyRoute & { readonly mcp: McpPolicy },
  allow: AllowDecision,
  request: Request | NormalizedRequest,
  maxBodyBytes: number,
  sessions?: McpSessionBindings,
): Promise<McpStageResult> {
  const header = (name: string) =>
    request instanceof Request ? (request.headers.get(name) ?? undefined) : getHeader(request.headers, name);
  // A session belongs to the caller that used it first (its event stream replays earlier answers):
  // another caller is refused with the normal deny, as any identity failure.
  const sessionId = header('mcp-session-id');
  if (sessionId !== undefined && sessions !== undefined) {
    const refusal =
      sessionId.length > MAX_MCP_SESSION_ID_LENGTH
        ? new TrustplaneError('mcp_invalid_jsonrpc', 'the Mcp-Session-Id is too long')
        : !sessions.bind(sessionId, `${allow.issuer}\n${allow.subject}`)
          ? new TrustplaneError('mcp_session_mismatch', 'the MCP session was first used by another caller')
          : undefined;
    if (refusal !== undefined) return { decision: denyFrom(refusal, 'mcp', allow) };
  }
  if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'DELETE') {
    // No JSON-RPC body: the server's event stream (filtered as list answers) or the session's end.
    return {
      decision: allow,
      verdict: decideMcpStream(route.mcp, request.method, callerCheck(route, allow)),
    };
  }
  // The body is decided as UTF-8 JSON: a request the upstream would decode otherwise is refused
  // before its bytes are read (a charset such as utf-7 makes the same bytes another call).
  const problem = mcpRequestEncodingProblem(header('content-type'), header('content-encoding'));
  if (problem !== undefined) {
    const deny = new TrustplaneError('mcp_invalid_jsonrpc', problem);
    return { decision: denyFrom(deny, 'mcp', allow), verdict: { calls: [], ids: [], deny, receipt: false } };
  }
  let bytes: Uint8Array;
  try {
    bytes = await bodyBytes(request, maxBodyBytes);
  } catch (e) {
    const err = e instanceof TrustplaneError ? e : new TrustplaneError('internal_error', 'body read failed');
    return { decision: denyFrom(err, 'mcp', allow) };
  }
  const verdict = decideMcp(route.mcp, bytes, callerCheck(route, allow));
  if (verdict.deny === undefined) return { decision: allow, verdict };
  return { decision: denyFrom(verdict.deny, 'mcp', allow), verdict };
}

/**
 * The deny answer of an MCP-stage deny at a point that answers the agent (proxy, middlewares,
 * library): a JSON-RPC error (see `mcpDenyBody`), with the one deny's headers.
 */
export function mcpDenyAnswer(
  decision: Extract<Decision, { allowed: false }>,
  verdict: McpVerdict | undefined,
): DenyAnswer {
  const reason = decision.reason;
  const code =
    reason !== 'mcp_invalid_jsonrpc'
      ? undefined
      : decision.details.jsonrpc_code === JSONRPC_PARSE_ERROR
        ? JSONRPC_PARSE_ERROR
        : JSONRPC_INVALID_REQUEST;
  const { status, body } = mcpDenyBody(reason, statusForReason(reason), verdict?.ids ?? [], code);
  return Object.freeze({
    status,
    headers: Object.freeze({
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'x-trustplane-reason': reason,
    }),
    body,
  });
}
