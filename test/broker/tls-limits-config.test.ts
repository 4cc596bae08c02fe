import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerConfigFromFlags } from '../../cmd/trustplane/commands/broker.js';
import type { RunningBroker } from '../../pkg/broker/index.js';
import { serveBrokerTls } from '../../pkg/broker/tls-server.js';
import { BROKER_ISSUER, createWorld, type World } from '../helpers/fixture.js';
import { mintCa, mintSpiffeChain, type MintedCert } from '../helpers/x509.js';
import {
  BROKER_ID,
  HOME,
  openPeer,
  outcome,
  realClock,
  refundRequest,
  startTlsBroker,
  tlsClient,
  until,
  writeSvidFiles,
  type LogLine,
} from './tls-peers.js';

/** The flags `trustplane broker serve` needs, with the network-mode limits under test. */
function flags(extra: Record<string, string> = {}) {
  return {
    issuer: BROKER_ISSUER,
    kid: 'broker-1',
    privateKey: 'key-text',
    identity: 'software',
    subject: 'orders-worker',
    trustDomain: HOME,
    trustMaterial: 'trust.json',
    policyBundle: 'policy.json',
    bundlePublicKey: ['signer-key'],
    audit: 'stdout',
    logLevel: 'info',
    reloadIntervalMs: '5000',
    ...extra,
  };
}

const problemsOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (error) {
    return (error as Error).message.split('\ntrustplane: config: ');
  }
  return [];
};

describe('broker serve: TLS listener limits from flags and environment', () => {
  it('--tls-max-connections and --tls-max-in-flight, else their environment variables, else the defaults', () => {
    expect(brokerConfigFromFlags(flags(), {})).not.toHaveProperty('tlsMaxConnections');
    expect(brokerConfigFromFlags(flags(), {})).not.toHaveProperty('tlsMaxInFlight');
    expect(
      brokerConfigFromFlags(flags({ tlsMaxConnections: '64', tlsMaxInFlight: '8' }), {
        TRUSTPLANE_BROKER_TLS_MAX_CONNECTIONS: '999',
      }),
    ).toMatchObject({ tlsMaxConnections: 64, tlsMaxInFlight: 8 });
    expect(
      brokerConfigFromFlags(flags(), {
        TRUSTPLANE_BROKER_TLS_MAX_CONNECTIONS: '32',
        TRUSTPLANE_BROKER_TLS_MAX_IN_FLIGHT: '4',
      }),
    ).toMatchObject({ tlsMaxConnections: 32, tlsMaxInFlight: 4 });
  });

  it('refuses a limit that is not an integer from 1 to 1,000,000, one line per problem', () => {
    for (const bad of ['0', '-1', '1.5', 'many', '1000001', '99999999']) {
      expect(problemsOf(() => brokerConfigFromFlags(flags({ tlsMaxConnections: bad }), {}))).toEqual([
        '--tls-max-connections must be an integer from 1 to 1000000',
      ]);
    }
    expect(
      problemsOf(() =>
        brokerConfigFromFlags(flags(), {
          TRUSTPLANE_BROKER_TLS_MAX_CONNECTIONS: '0',
          TRUSTPLANE_BROKER_TLS_MAX_IN_FLIGHT: 'x',
        }),
      ),
    ).toEqual([
      '--tls-max-connections must be an integer from 1 to 1000000',
      '--tls-max-in-flight must be an integer from 1 to 1000000',
    ]);
  });

  it('serveBrokerTls refuses a limit out of range at construction (RangeError)', async () => {
    const credentials = {
      tlsCredentials: () => ({ certChainPem: '', keyPem: '', bundles: new Map() }),
      onRotate: () => undefined,
    };
    const broker = {
      issue: () => Promise.reject(new Error('unused')),
      refuse: () => Promise.reject(new Error('unused')),
    };
    for (const options of [{ maxConnections: 0 }, { maxInFlight: 1.5 }, { maxConnections: 2_000_000 }]) {
      await expect(
        serveBrokerTls(broker, { listen: '127.0.0.1:0', credentials, ...options }),
      ).rejects.toThrow(RangeError);
    }
  });
});

describe('startBroker: the limits reach the TLS listener, refusals become counted log lines', () => {
  let world: World;
  let dir: string;
  let root: MintedCert;
  let running: RunningBroker;
  let lines: LogLine[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tp-broker-limits-config-'));
    world = await createWorld({ issuedAt: realClock() - 60 });
    root = mintCa({ uris: [`spiffe://${HOME}`], subject: '/O=Home SPIRE/CN=Root' });
    const files = writeSvidFiles(
      mkdtempSync(join(dir, 'svid-')),
      mintSpiffeChain({ root, trustDomain: HOME, spiffeId: BROKER_ID }),
    );
    writeFileSync(join(dir, 'trust.json'), JSON.stringify(world.trustDoc));
    writeFileSync(join(dir, 'policy.json'), JSON.stringify(world.policyDoc));
    ({ running, lines } = await startTlsBroker(world, dir, {
      files,
      trustMaterial: join(dir, 'trust.json'),
      policyBundle: join(dir, 'policy.json'),
      tlsMaxConnections: 1,
      tlsMaxInFlight: 8,
    }));
  });

  afterAll(async () => {
    await running?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one connection is served; the others are answered overloaded and logged with their count', async () => {
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'broker TLS listening', max_connections: 1, max_in_flight: 8 }),
    );
    const worker = mintSpiffeChain({
      root,
      trustDomain: HOME,
      spiffeId: `spiffe://${HOME}/ns/orders/sa/worker`,
    });
    const held = await openPeer(running.tls!.address.port, worker, root.pem);
    try {
      held.send(refundRequest());
      await until(
        () => held.answers.length,
        (n) => n === 1,
      );
      expect(held.answers[0]!.reason_code).toBe('broker_passport_issued');
      const refused = await Promise.all(
        Array.from({ length: 5 }, () =>
          outcome(tlsClient(running.tls!.address.port, worker, root.pem), refundRequest()),
        ),
      );
      expect(refused.map((r) => ('reason_code' in r ? r.reason_code : r.transport))).toEqual(
        Array(5).fill('overloaded'),
      );
      // At most one line per second per limit; together they count every refusal.
      const logged = await until(
        () =>
          lines
            .filter((l) => l.msg === 'broker TLS listener overloaded' && l['limit'] === 'connections')
            .reduce((n, l) => n + (l['refused'] as number), 0),
        (n) => n === 5,
        5000,
      );
      expect(logged).toBe(5);
      expect(running.tls!.stats()).toMatchObject({ connections: 1, refusedConnections: 5 });
    } finally {
      held.close();
    }
  });
});
