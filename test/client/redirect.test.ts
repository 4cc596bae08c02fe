import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../pkg/authcore/index.js';
import { ProtectedClient, selfIssuedPassports } from '../../pkg/client/index.js';

interface Site {
  server: Server;
  url: string;
  hits: { url: string; headers: IncomingHttpHeaders }[];
}

async function listen(handler: (site: Site, res: ServerResponse, url: string) => void) {
  const site = { hits: [] } as unknown as Site;
  site.server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      site.hits.push({ url: req.url ?? '', headers: req.headers });
      handler(site, res, req.url ?? '');
    });
  });
  await new Promise<void>((r) => site.server.listen(0, '127.0.0.1', r));
  site.url = `http://127.0.0.1:${(site.server.address() as AddressInfo).port}`;
  return site;
}

function close(site: Site) {
  return new Promise<void>((r) => {
    site.server.close(() => r());
    site.server.closeAllConnections();
  });
}

let target: Site;
let redirector: Site;

beforeAll(async () => {
  // The other origin a redirect points at: it must never be reached.
  target = await listen((_site, res) => res.end('stolen'));
  redirector = await listen((_site, res, url) => {
    const status = url.endsWith('/307') ? 307 : url.endsWith('/308') ? 308 : 302;
    res.writeHead(status, { location: `${target.url}/collect` });
    res.end();
  });
});

afterAll(async () => {
  await close(redirector);
  await close(target);
});

describe('attack: credential forwarding through redirects', () => {
  for (const hop of ['302', '307', '308']) {
    it(`a ${hop} is returned to the caller and never followed (real fetch, real servers)`, async () => {
      const client = new ProtectedClient({
        baseUrl: `${redirector.url}/v1`,
        audience: 'orders-api',
        passports: selfIssuedPassports({
          issuer: 'https://issuer.example/software-jwks',
          subject: 'service:orders-client',
          trustDomain: 'example.local',
          signingKey: await generateSigningKey(),
          kid: 'caller-1',
        }),
      });
      const before = redirector.hits.length;
      const res = await client.request({
        method: 'POST',
        path: `/orders/${hop}`,
        routeId: 'orders.create',
        headers: { 'content-type': 'application/json' },
        body: '{"a":1}',
      });
      expect(res.status).toBe(Number(hop));
      expect(res.headers.get('location')).toBe(`${target.url}/collect`);
      expect(redirector.hits).toHaveLength(before + 1);
      expect(redirector.hits.at(-1)!.headers.authorization).toMatch(/^Bearer /);
      expect(target.hits).toHaveLength(0);
    });
  }
});
