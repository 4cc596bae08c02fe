import { beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { writeWorld } from '../helpers/adapter.js';
import { bundleArgs, spawnAdapter } from '../helpers/adapter-process.js';
import { ExtAuthzClient, envoyCheckRequest } from '../helpers/ext-authz-grpc.js';
import { createWorld, signed, type World } from '../helpers/fixture.js';
import { freePort } from '../helpers/redis.js';

// The built CLI as a real process: `trustplane adapter --mode ext-authz-grpc` finds the vendored
// protos from dist/ (as an installed package does), serves Check and Health, and exits 0 on SIGTERM.
const now = () => Math.floor(Date.now() / 1000);

let world: World;
let files: ReturnType<typeof writeWorld>;

beforeAll(async () => {
  world = await createWorld({ issuedAt: now() - 60 });
  files = writeWorld(world);
});

describe('adapter process: --mode ext-authz-grpc', () => {
  it('serves Check and Health from the built CLI and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const proc = await spawnAdapter([
      '--mode',
      'ext-authz-grpc',
      '--ext-authz-grpc-listen',
      `127.0.0.1:${port}`,
      ...bundleArgs(files),
      '--replay-journal',
      'off',
      '--log-level',
      'warn',
    ]);
    const client = new ExtAuthzClient(`127.0.0.1:${port}`);
    try {
      expect(await client.health()).toBe('SERVING');
      const s = await signed(world, { claims: { iat: now() } });
      const headers = Object.entries(s.headers) as [string, string][];
      const allowed = await client.check(
        envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers }),
      );
      expect([allowed.http_response, allowed.status?.code]).toEqual(['ok_response', 0]);
      const replay = await client.check(
        envoyCheckRequest({ method: 'GET', target: '/v1/orders/search', headers }),
      );
      expect([replay.denied_response?.status.code, replay.status?.code]).toEqual([
        401,
        grpc.status.UNAUTHENTICATED,
      ]);
      expect(await proc.stop('SIGTERM')).toBe(0);
    } finally {
      client.close();
      await proc.stop('SIGKILL', 1_000);
    }
  });
});
