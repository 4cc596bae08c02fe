import { readFileSync } from 'node:fs';
import { parsePrivateKey } from '../../../pkg/authcore/index.js';
import { BrokerIpcClient } from '../../../pkg/broker/index.js';
import { ProtectedClient, brokerPassports, selfIssuedPassports } from '../../../pkg/client/index.js';
import { DEV, type StackInfo } from './stack.js';

/** One step of the demo: what it does, what must happen, what happened. */
export interface DemoStep {
  readonly name: string;
  readonly expected: string;
  readonly got: string;
  readonly ok: boolean;
}

interface Sent {
  url: string;
  init: RequestInit;
}

async function answer(
  res: Response,
): Promise<{ status: number; reason?: string; caller?: Record<string, string> }> {
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: reported by status only
  }
  return {
    status: res.status,
    ...(typeof json.reason === 'string' ? { reason: json.reason } : {}),
    ...(typeof json.caller === 'object' && json.caller !== null
      ? { caller: json.caller as Record<string, string> }
      : {}),
  };
}

function describe(a: { status: number; reason?: string; caller?: Record<string, string> }): string {
  if (a.reason !== undefined) return `${a.status} ${a.reason}`;
  if (a.caller?.subject !== undefined) return `${a.status} as ${a.caller.subject} (${a.caller.key_binding})`;
  return String(a.status);
}

/**
 * Run the scripted tour against a running stack. Every step checks its documented outcome;
 * the caller decides the exit status from `ok`.
 */
export async function runDemo(
  stack: StackInfo,
): Promise<{ steps: DemoStep[]; auditCounts: Record<string, number> }> {
  const steps: DemoStep[] = [];
  const step = (name: string, expected: string, got: string, ok: boolean) =>
    steps.push({ name, expected, got, ok });
  const signingKey = await parsePrivateKey(readFileSync(stack.callerKeyFile, 'utf8').trim());
  const sent: Sent[] = [];
  let tamper: ((body: BodyInit | null | undefined) => BodyInit) | undefined;
  const recordingFetch = ((input: RequestInfo | URL, init: RequestInit = {}) => {
    const final = tamper ? { ...init, body: tamper(init.body) } : init;
    sent.push({ url: String(input), init: final });
    return fetch(input, final);
  }) as typeof fetch;
  const software = new ProtectedClient({
    baseUrl: stack.adapter,
    audience: DEV.audience,
    passports: selfIssuedPassports({
      issuer: DEV.softwareIssuer,
      subject: DEV.softwareSubject,
      trustDomain: DEV.trustDomain,
      signingKey,
      kid: DEV.softwareKid,
    }),
    fetch: recordingFetch,
  });
  const order = JSON.stringify({ sku: 'demo-1', qty: 2 });
  const json = { 'content-type': 'application/json' };

  /** What a step must get: a status, and a deny reason or the identity the upstream saw. */
  interface Want {
    readonly status: number;
    readonly reason?: string;
    readonly subject?: string;
    readonly keyBinding?: string;
  }
  const check = async (name: string, expected: string, response: Promise<Response>, want: Want) => {
    const got = await answer(await response);
    const ok =
      got.status === want.status &&
      (want.reason === undefined || got.reason === want.reason) &&
      (want.subject === undefined ||
        (got.caller?.subject === want.subject && got.caller.key_binding === want.keyBinding));
    step(name, expected, describe(got), ok);
  };
  const createOrder = () =>
    software.request({
      method: 'POST',
      path: '/v1/orders',
      routeId: 'orders.create',
      headers: json,
      body: order,
    });
  const payment = (client: ProtectedClient) =>
    client.request({
      method: 'POST',
      path: '/v1/payments',
      routeId: 'payments.create',
      headers: json,
      body: '{"amount":"10.00"}',
    });

  // 1. An allowed call.
  await check(
    'allowed call (software passport, self-issued)',
    `200, upstream sees ${DEV.softwareSubject}`,
    createOrder(),
    {
      status: 200,
      subject: DEV.softwareSubject,
      keyBinding: 'software',
    },
  );

  // 2. The exact same request again: the passport jti was consumed.
  const captured = sent.at(-1)!;
  await check(
    'replay of that exact request',
    '401 jti_replay',
    fetch(captured.url, { ...captured.init, redirect: 'manual' }),
    { status: 401, reason: 'jti_replay' },
  );

  // 3. A body changed in flight after signing.
  tamper = () => JSON.stringify({ sku: 'demo-1', qty: 2000 });
  await check('tampered body (qty 2 signed, 2000 sent)', '401 request_binding_mismatch', createOrder(), {
    status: 401,
    reason: 'request_binding_mismatch',
  });
  tamper = undefined;

  // 4. A route the policy bundle does not have.
  await check(
    'route outside policy (GET /v1/admin)',
    '403 bundle_route_missing',
    software.request({ method: 'GET', path: '/v1/admin', routeId: 'admin' }),
    { status: 403, reason: 'bundle_route_missing' },
  );

  // 5. A route that needs attested_workload, with a software passport.
  await check(
    'insufficient signer class (software → payments)',
    '403 insufficient_key_binding',
    payment(software),
    {
      status: 403,
      reason: 'insufficient_key_binding',
    },
  );

  // 6. The same route through the broker: attested_workload from the workload's SVID.
  const attested = new ProtectedClient({
    baseUrl: stack.adapter,
    audience: DEV.audience,
    passports: brokerPassports({
      broker: new BrokerIpcClient({ socketPath: stack.brokerSocket }),
      keyBinding: { requested: 'attested_workload', acceptable: ['attested_workload'] },
      ctx: { purpose: 'demo' },
    }),
  });
  await check(
    'broker-issued call (SPIFFE SVID → payments)',
    '200, upstream sees the SPIFFE ID',
    payment(attested),
    {
      status: 200,
      subject: DEV.workload,
      keyBinding: 'attested_workload',
    },
  );

  // 7-8. An MCP tool call through the same adapter: a per-tool policy on the verified body. A
  // denied call is a JSON-RPC error (HTTP 200, `data.reason`), and never reaches the tool server.
  const mcp = async (amount: number) => {
    const res = await software.request({
      method: 'POST',
      path: '/mcp',
      routeId: 'tools.mcp',
      headers: { ...json, accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: amount,
        method: 'tools/call',
        params: { name: 'transfer_funds', arguments: { amount, to: 'acct-7' } },
      }),
    });
    const text = await res.text();
    try {
      const rpc = JSON.parse(text) as {
        result?: { content?: { text?: string }[] };
        error?: { data?: { reason?: string } };
      };
      if (rpc.error !== undefined)
        return `${res.status} JSON-RPC error ${rpc.error.data?.reason ?? ''}`.trim();
      return `${res.status} ${rpc.result?.content?.[0]?.text ?? ''}`.trim();
    } catch {
      return String(res.status);
    }
  };
  const allowedTool = await mcp(50);
  step(
    'MCP tool call allowed (transfer_funds 50)',
    '200, the tool answers',
    allowedTool,
    allowedTool === '200 transferred 50 to acct-7',
  );
  const overLimit = await mcp(5000);
  step(
    'MCP argument over its limit (5000 > 100)',
    '200 JSON-RPC error mcp_argument_denied',
    overLimit,
    overLimit === '200 JSON-RPC error mcp_argument_denied',
  );

  // 9. Where the decisions went.
  const count = (file: string) => {
    try {
      return readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '').length;
    } catch {
      return 0;
    }
  };
  // Audit files are written through buffered streams: give them a moment (bounded).
  const deadline = Date.now() + 3000;
  while (count(stack.audit.adapter) < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const auditCounts = { adapter: count(stack.audit.adapter), broker: count(stack.audit.broker) };
  step(
    'audit events written (one per decision)',
    'adapter 8, broker 1 (a fresh stack)',
    `adapter ${auditCounts.adapter}, broker ${auditCounts.broker}`,
    // A stack started by `up` may have served other requests before this demo.
    auditCounts.adapter >= 8 && auditCounts.broker >= 1,
  );
  return { steps, auditCounts };
}

/** Render steps as a fixed-width table. */
export function formatSteps(steps: readonly DemoStep[]): string {
  const rows = steps.map((s, i) => [String(i + 1), s.name, s.expected, s.got, s.ok ? 'ok' : 'UNEXPECTED']);
  const head = ['#', 'step', 'expected', 'got', ''];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
