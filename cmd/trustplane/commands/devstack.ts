import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { formatSteps, runDemo } from '../devstack/demo.js';
import { DEV, findRunningStack, startDevStack, type StackInfo } from '../devstack/stack.js';
import { CliError } from '../io.js';

/** Default working directory of `trustplane up`: outside any repository, per user. */
export function defaultDevDir(): string {
  return path.join(tmpdir(), `trustplane-dev-${userInfo().username}`);
}

function summary(info: StackInfo): string {
  const cli = 'trustplane';
  return [
    'TrustPlane dev stack is running (embedded defaults: no Redis, no PostgreSQL, no SPIRE).',
    '',
    `  adapter (enforcement)   ${info.adapter}        → demo API ${info.upstream}`,
    `  adapter admin           ${info.admin}/healthz  /readyz  /metrics`,
    `  broker (broker-ipc-v1)  ${info.brokerSocket}`,
    `  workload identity       ${DEV.workload} (dev SPIFFE CA, spiffe-helper files)`,
    `  audit events            ${info.audit.adapter}`,
    `                          ${info.audit.broker}`,
    `  logs                    ${info.logs}`,
    `  bundle server           ${info.bundleServer}  (re-signs every third of the freshness limit;`,
    `                          edit ${info.dir}/config/policy.config.json: served at once)`,
    `  keys and bundles        ${info.dir}`,
    '',
    'Next, in another terminal:',
    `  ${cli} demo --dir ${info.dir}`,
    `  ${cli} sign --private-key @${info.callerKeyFile} --issuer ${DEV.softwareIssuer} \\`,
    `    --subject ${DEV.softwareSubject} --audience ${DEV.audience} --trust-domain ${DEV.trustDomain} --kid ${DEV.softwareKid} \\`,
    `    --method GET --url ${info.adapter}/v1/orders --route-id orders.list --curl | sh`,
    `  ${cli} broker issue --socket ${info.brokerSocket} --audience ${DEV.audience} \\`,
    `    --method GET --url ${info.adapter}/v1/orders --route-id orders.list --curl | sh`,
    `  curl -s ${info.admin}/metrics | grep trustplane_decisions_total`,
    '',
    'Ctrl-C stops everything.',
  ].join('\n');
}

/** Register `trustplane up` and `trustplane demo`. */
export function registerDevStack(program: Command): void {
  program
    .command('up')
    .description(
      'Run the whole stack locally on embedded defaults: dev keys and signed bundles, a demo API, the adapter, the broker.',
    )
    .option(
      '--dir <dir>',
      'working directory for keys, bundles, state, audit and logs (default: $TMPDIR/trustplane-dev-<user>)',
    )
    .option('--listen <host:port>', 'adapter address', '127.0.0.1:8080')
    .option('--admin-listen <host:port>', 'adapter admin address', '127.0.0.1:9090')
    .option('--upstream-listen <host:port>', 'demo API address', '127.0.0.1:3000')
    .addHelpText(
      'after',
      `
Every start generates a fresh dev world (keys, dev SPIFFE CA and SVID, bundles) in --dir; nothing
is written to the repository. The stack description goes to <dir>/stack.json, which
\`trustplane demo\` uses.

Example:
  trustplane up
  trustplane up --dir /tmp/tp --listen 127.0.0.1:18080 --admin-listen 127.0.0.1:19090 --upstream-listen 127.0.0.1:13000`,
    )
    .action(async (opts: { dir?: string; listen: string; adminListen: string; upstreamListen: string }) => {
      const dir = opts.dir ?? defaultDevDir();
      if (await findRunningStack(dir)) {
        throw new CliError(
          `a dev stack is already running for ${dir} (see ${path.join(dir, 'stack.json')})`,
          'usage',
          1,
        );
      }
      const stack = await startDevStack({
        dir,
        listen: opts.listen,
        adminListen: opts.adminListen,
        upstreamListen: opts.upstreamListen,
      });
      process.stdout.write(`${summary(stack.info)}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.stdout.write('\nstopping…\n');
          void stack.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });

  program
    .command('demo')
    .description(
      'A scripted end-to-end tour against the dev stack (started and stopped here when none is running).',
    )
    .option(
      '--dir <dir>',
      'the `trustplane up` working directory to use (default: $TMPDIR/trustplane-dev-<user>)',
    )
    .addHelpText(
      'after',
      `
Prints a table: an allowed call, a replay denied (jti_replay), a tampered body denied
(request_binding_mismatch), a route outside policy denied (bundle_route_missing), an insufficient
signer class denied (insufficient_key_binding), a broker-issued attested_workload call allowed,
and where the audit events went. Exits 1 if any step does not behave as documented.

Example:
  trustplane demo
  trustplane up --dir /tmp/tp &  trustplane demo --dir /tmp/tp`,
    )
    .action(async (opts: { dir?: string }) => {
      const dir = opts.dir ?? defaultDevDir();
      let info = await findRunningStack(dir);
      let started: Awaited<ReturnType<typeof startDevStack>> | undefined;
      if (info === undefined) {
        // The stack this demo starts lives in the same directory `up` uses, and stays there after
        // the demo (keys, bundles, audit events, logs), so what the table points at can be read.
        process.stdout.write(
          `No dev stack running for ${dir}: starting one for this demo (stopped at the end).\n`,
        );
        started = await startDevStack({ dir });
        info = started.info;
      } else {
        process.stdout.write(`Using the dev stack running for ${dir} (adapter ${info.adapter}).\n`);
      }
      try {
        const { steps } = await runDemo(info);
        process.stdout.write(`\n${formatSteps(steps)}\n\n`);
        process.stdout.write(
          [
            'Audit events (trustplane-auth-audit-event-v0.1, one JSON line per decision):',
            `  adapter: ${info.audit.adapter}`,
            `  broker:  ${info.audit.broker}`,
            `Logs: ${info.logs}`,
            '',
          ].join('\n'),
        );
        const failed = steps.filter((s) => !s.ok).length;
        if (failed > 0) {
          process.stdout.write(`${failed} of ${steps.length} steps did NOT behave as documented.\n`);
          throw new CliError(
            `${failed} of ${steps.length} demo steps did not behave as documented`,
            'demo_failed',
            1,
          );
        } else {
          process.stdout.write(`${steps.length}/${steps.length} steps behaved as documented.\n`);
        }
      } finally {
        await started?.close();
      }
    });
}
