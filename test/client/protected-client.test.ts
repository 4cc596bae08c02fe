import { beforeAll, describe, expect, it } from 'vitest';
import {
  decodePassportUnverified,
  generateSigningKey,
  parsePublicKey,
  type SigningKey,
  TrustplaneError,
} from '../../pkg/authcore/index.js';
import {
  ProtectedClient,
  isReservedHeader,
  selfIssuedPassports,
  type OutgoingRequest,
  type PassportSource,
  type ProtectedClientOptions,
} from '../../pkg/client/index.js';
import { bodySha256, buildTranscript, verifyProof } from '../../pkg/proof/index.js';
import { NOW } from '../helpers/fixture.js';

const ISSUER = 'https://issuer.example/software-jwks';

let issuerKey: SigningKey;
beforeAll(async () => {
  issuerKey = await generateSigningKey();
});

interface Call {
  url: string;
  init: RequestInit;
}

/** A fetch that records every call and answers 204 without any network. */
function countingFetch() {
  const calls: Call[] = [];
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(input), init: init ?? {} });
    return new Response(null, { status: 204 });
  }) as typeof globalThis.fetch;
  return { calls, fetch };
}

function passports(overrides: Partial<Parameters<typeof selfIssuedPassports>[0]> = {}) {
  return selfIssuedPassports({
    issuer: ISSUER,
    subject: 'service:orders-client',
    trustDomain: 'example.local',
    signingKey: issuerKey,
    kid: 'caller-1',
    clock: () => NOW,
    ...overrides,
  });
}

function client(options: Partial<ProtectedClientOptions> = {}) {
  const f = countingFetch();
  const c = new ProtectedClient({
    baseUrl: 'https://orders.example/v1',
    audience: 'orders-api',
    passports: passports(),
    fetch: f.fetch,
    ...options,
  });
  return { client: c, calls: f.calls };
}

function headersOf(call: Call): Headers {
  return call.init.headers as Headers;
}

describe('ProtectedClient: unsafe paths are refused before any network call', () => {
  const unsafe = [
    '/orders/%2e%2e/admin',
    '/orders/%41',
    '/orders//search',
    '/orders\\search',
    '/orders/./search',
    '/orders/../admin',
    '/orders/search/',
    '/',
    '/orders/search?q=1',
    '/orders/search#x',
    '/orders\r\nx-evil: 1',
    '/orders\u0000',
    '/orders/{id}',
    '/orders/..;/admin',
    // Sibling-prefix mistakes: the base path is /v1, these would become /v10/x and /v1evil.
    '0/x',
    'evil',
    '-admin/x',
  ];
  for (const path of unsafe) {
    it(`attack: path confusion ${JSON.stringify(path)} (zero fetch calls)`, async () => {
      let authorized = 0;
      const source: PassportSource = {
        authorize: async () => {
          authorized += 1;
          throw new Error('must not be reached');
        },
      };
      const { client: c, calls } = client({ passports: source });
      await expect(c.request({ method: 'GET', path, routeId: 'orders.search' })).rejects.toMatchObject({
        name: 'TrustplaneError',
        reason: 'unsafe_request_path',
      });
      await expect(c.fetch(path, { routeId: 'orders.search' })).rejects.toBeInstanceOf(TrustplaneError);
      expect(calls).toHaveLength(0);
      expect(authorized).toBe(0);
    });
  }

  it('a base URL without a path prefix refuses a relative path too', async () => {
    const { client: c, calls } = client({ baseUrl: 'https://orders.example' });
    await expect(c.fetch('v1/orders', { routeId: 'orders.search' })).rejects.toMatchObject({
      reason: 'unsafe_request_path',
    });
    expect(calls).toHaveLength(0);
  });

  it('the prefix itself is a valid target (path "")', async () => {
    const { client: c, calls } = client();
    await c.fetch('', { routeId: 'root' });
    expect(calls.map((x) => x.url)).toEqual(['https://orders.example/v1']);
  });
});

describe('ProtectedClient: reserved headers are refused before any network call', () => {
  const reserved = [
    'Authorization',
    'authorization',
    'Proxy-Authorization',
    'Host',
    'Content-Length',
    'Transfer-Encoding',
    'Connection',
    'X-TrustPlane-Proof',
    'X-TrustPlane-Nonce',
    'X-TrustPlane-Transcript-SHA256',
    'X-TrustPlane-Body-SHA256',
    'X-TrustPlane-Covered-Headers',
    'X-TrustPlane-Subject',
    'x-trustplane-anything',
    'Upgrade',
  ];
  for (const name of reserved) {
    it(`${name} (zero fetch calls)`, async () => {
      expect(isReservedHeader(name)).toBe(true);
      const { client: c, calls } = client();
      await expect(
        c.request({
          method: 'GET',
          path: '/orders/search',
          routeId: 'orders.search',
          headers: { [name]: 'x' },
        }),
      ).rejects.toThrow(TypeError);
      await expect(
        c.fetch('/orders/search', { routeId: 'orders.search', headers: new Headers({ [name]: 'x' }) }),
      ).rejects.toThrow(TypeError);
      expect(calls).toHaveLength(0);
      // As a default header, the constructor refuses it eagerly.
      expect(() => client({ defaultHeaders: { [name]: 'x' } })).toThrow(TypeError);
    });
  }

  it('covering a reserved header is refused at construction', () => {
    expect(() => client({ coveredHeaders: ['authorization'] })).toThrow(TypeError);
    expect(() => client({ coveredHeaders: ['x-trustplane-proof'] })).toThrow(TypeError);
    expect(() => client({ coveredHeaders: ['bad name'] })).toThrow(TypeError);
  });

  it('header names and values that could split the request are refused', async () => {
    const { client: c, calls } = client();
    for (const headers of [
      { 'x-a': 'v\r\nx-evil: 1' },
      { 'x-a': 'v\n' },
      { 'bad name': 'v' },
      { 'x-a\r': 'v' },
    ]) {
      await expect(
        c.request({ method: 'GET', path: '/orders/search', routeId: 'orders.search', headers }),
      ).rejects.toThrow(TypeError);
    }
    expect(calls).toHaveLength(0);
  });

  it('the same header twice with different case is refused', async () => {
    const { client: c, calls } = client();
    await expect(
      c.request({
        method: 'GET',
        path: '/orders/search',
        routeId: 'orders.search',
        headers: { 'X-Tenant': 'a', 'x-tenant': 'b' },
      }),
    ).rejects.toThrow(TypeError);
    expect(calls).toHaveLength(0);
  });
});

describe('ProtectedClient: other misuse is refused before any network call', () => {
  it('a malformed query (bad percent-encoding, fragment, spaces, control characters)', async () => {
    const { client: c, calls } = client();
    for (const query of ['a=%zz', 'a=%', 'a=1#frag', 'a=b c', 'a=\r\n', 'a=caf\u00e9', 'x'.repeat(9000)]) {
      await expect(
        c.request({ method: 'GET', path: '/orders/search', routeId: 'orders.search', query }),
      ).rejects.toMatchObject({ reason: 'malformed_request' });
    }
    expect(calls).toHaveLength(0);
  });

  it('a body on GET or HEAD, a bad method, a bad route id or body type', async () => {
    const { client: c, calls } = client();
    const base = { path: '/orders/search', routeId: 'orders.search' };
    await expect(c.request({ ...base, method: 'GET', body: 'x' })).rejects.toThrow(TypeError);
    await expect(c.request({ ...base, method: 'HEAD', body: new Uint8Array([1]) })).rejects.toThrow(
      TypeError,
    );
    await expect(c.request({ ...base, method: 'GE T' })).rejects.toThrow(TypeError);
    await expect(c.request({ ...base, method: 'G\r\nET' })).rejects.toThrow(TypeError);
    for (const method of ['CONNECT', 'trace', 'TRACK']) {
      await expect(c.request({ ...base, method })).rejects.toThrow(TypeError);
    }
    await expect(c.request({ ...base, method: 'GET', routeId: '' })).rejects.toThrow(TypeError);
    await expect(c.request({ ...base, method: 'GET', routeId: 'a\nb' })).rejects.toThrow(TypeError);
    await expect(
      c.request({ ...base, method: 'POST', body: { no: 'objects' } as unknown as string }),
    ).rejects.toThrow(TypeError);
    expect(calls).toHaveLength(0);
  });

  it('an already aborted signal', async () => {
    const { client: c, calls } = client();
    const ac = new AbortController();
    ac.abort();
    await expect(
      c.request({ method: 'GET', path: '/orders/search', routeId: 'orders.search', signal: ac.signal }),
    ).rejects.toThrow();
    expect(calls).toHaveLength(0);
  });

  it('a passport source failure sends nothing', async () => {
    const { client: c, calls } = client({
      passports: {
        authorize: async () => {
          throw new Error('no passport');
        },
      },
    });
    await expect(c.fetch('/orders/search', { routeId: 'orders.search' })).rejects.toThrow('no passport');
    expect(calls).toHaveLength(0);
  });

  it('malformed credentials from a custom source send nothing', async () => {
    const { client: c, calls } = client({
      passports: {
        authorize: async () => ({
          passport: 'a.b.c\r\nx: y',
          proof: 'A'.repeat(86),
          transcriptSha256: '0'.repeat(64),
        }),
      },
    });
    await expect(c.fetch('/orders/search', { routeId: 'orders.search' })).rejects.toThrow(TypeError);
    expect(calls).toHaveLength(0);
  });
});

describe('ProtectedClient: construction', () => {
  it('refuses bad base URLs', () => {
    for (const baseUrl of [
      'ftp://orders.example',
      'orders.example/v1',
      'https://user:pw@orders.example',
      'https://user@orders.example/v1',
      'https://orders.example/v1?x=1',
      'https://orders.example/v1?',
      'https://orders.example/v1#f',
      'https://orders.example/v1/../admin',
      'https://orders.example/v1/%2e',
      'https://orders.example//v1',
      'https://orders.example/v1\\x',
      'https://orders example',
      'https://orders.example:99999999/',
      '',
    ]) {
      expect(() => client({ baseUrl }), baseUrl).toThrow(TypeError);
    }
  });

  it('keeps the base path, drops one trailing slash, lowercases scheme and host', () => {
    expect(client({ baseUrl: 'HTTPS://Orders.Example:8443/v1/' }).client).toMatchObject({
      origin: 'https://orders.example:8443',
      basePath: '/v1',
    });
    expect(client({ baseUrl: 'http://127.0.0.1:8080' }).client).toMatchObject({
      origin: 'http://127.0.0.1:8080',
      basePath: '',
    });
  });

  it('refuses a passport source fixed to another audience, and bad audiences', () => {
    expect(() => client({ passports: passports({ audience: 'billing-api' }) })).toThrow(TypeError);
    expect(() => client({ audience: '' })).toThrow(TypeError);
    expect(() => client({ passports: {} as PassportSource })).toThrow(TypeError);
  });

  it('selfIssuedPassports refuses bad options eagerly', () => {
    expect(() => passports({ ttlSeconds: 0 })).toThrow(RangeError);
    expect(() => passports({ ttlSeconds: 601 })).toThrow(RangeError);
    expect(() => passports({ ttlSeconds: 1.5 })).toThrow(RangeError);
    expect(() => passports({ keyBinding: 'hardware_local' as 'software' })).toThrow(RangeError);
    expect(() => passports({ issuer: '' })).toThrow(TypeError);
    expect(() => passports({ kid: '' })).toThrow(TypeError);
    expect(() => passports({ ctx: { nope: 'x' } as never })).toThrow(TypeError);
    expect(() => passports({ signingKey: {} as SigningKey })).toThrow(TypeError);
  });
});

describe('ProtectedClient: what is sent', () => {
  it('concatenates base URL, path and the raw query (never URL-normalized), with redirect manual', async () => {
    const { client: c, calls } = client();
    await c.request({
      method: 'get',
      path: '/orders/search',
      routeId: 'orders.search',
      query: 'z=1&a=b+c&a=%7E',
    });
    await c.fetch('/orders/ord_1', { routeId: 'orders.get', query: new URLSearchParams({ q: 'a b' }) });
    await c.fetch('/orders/search', { routeId: 'orders.search', query: '?x=1' });
    expect(calls.map((x) => x.url)).toEqual([
      'https://orders.example/v1/orders/search?z=1&a=b+c&a=%7E',
      'https://orders.example/v1/orders/ord_1?q=a+b',
      'https://orders.example/v1/orders/search?x=1',
    ]);
    for (const call of calls) {
      expect(call.init.redirect).toBe('manual');
      expect(call.init.method).toBe('GET');
      expect(call.init.body).toBeUndefined();
    }
  });

  it('sends the proof headers, and a proof that verifies over the rebuilt transcript', async () => {
    const { client: c, calls } = client({
      defaultHeaders: { 'x-tenant-id': 't1' },
      coveredHeaders: ['X-Tenant-Id'],
    });
    const body = '{"order_id":"ord_123","note":"caf\u00e9"}';
    await c.request({
      method: 'POST',
      path: '/orders',
      routeId: 'orders.create',
      query: 'b=2&a=1',
      headers: { 'Content-Type': 'application/json' },
      body,
    });
    const [call] = calls;
    const h = headersOf(call!);
    const passport = h.get('authorization')!.replace(/^Bearer /, '');
    const claims = decodePassportUnverified(passport).payload as {
      jti: string;
      iat: number;
      exp: number;
      aud: string;
      iss: string;
      cnf: { key_binding: string; public_key_b64url: string; kid: string };
    };
    expect(claims).toMatchObject({ iss: ISSUER, aud: 'orders-api', iat: NOW, exp: NOW + 60 });
    expect(claims.cnf.key_binding).toBe('software');
    // The request key is not the issuer key: a fresh key per request.
    expect(claims.cnf.public_key_b64url).not.toBe(issuerKey.publicKey.x);
    expect(h.get('x-trustplane-covered-headers')).toBe('content-type,x-tenant-id,x-trustplane-nonce');
    expect(h.get('x-trustplane-body-sha256')).toBe(await bodySha256(body));
    // The bytes sent are the bytes hashed.
    const sent = call!.init.body as Uint8Array;
    expect(sent).toBeInstanceOf(Uint8Array);
    expect(await bodySha256(sent)).toBe(h.get('x-trustplane-body-sha256'));
    const transcript = await buildTranscript({
      method: 'POST',
      scheme: 'https',
      authority: 'orders.example',
      path: '/v1/orders',
      query: 'b=2&a=1',
      audience: 'orders-api',
      routeId: 'orders.create',
      coveredHeaders: h.get('x-trustplane-covered-headers')!.split(','),
      headers: h,
      bodySha256: await bodySha256(sent),
      passportJti: claims.jti,
      nonce: h.get('x-trustplane-nonce')!,
      issuedAt: claims.iat,
      keyBinding: 'software',
    });
    expect(h.get('x-trustplane-transcript-sha256')).toBe(transcript.sha256);
    const cnfKey = await parsePublicKey(claims.cnf.public_key_b64url);
    expect(await verifyProof(transcript.digest, h.get('x-trustplane-proof')!, cnfKey)).toBe(true);
  });

  it('a body without a content type is sent as application/octet-stream (covered)', async () => {
    const { client: c, calls } = client();
    await c.request({
      method: 'PUT',
      path: '/blobs/b1',
      routeId: 'blobs.put',
      body: new Uint8Array([0, 1, 2, 255]),
    });
    const h = headersOf(calls[0]!);
    expect(h.get('content-type')).toBe('application/octet-stream');
    expect(h.get('x-trustplane-covered-headers')).toBe('content-type,x-trustplane-nonce');
  });

  it('a body changed by the caller after the call started is not what is sent', async () => {
    const seen: OutgoingRequest[] = [];
    const inner = passports();
    const { client: c, calls } = client({
      passports: {
        authorize: async (r) => {
          seen.push(r);
          return inner.authorize(r);
        },
      },
    });
    const body = new Uint8Array([1, 2, 3]);
    const pending = c.request({ method: 'POST', path: '/orders', routeId: 'orders.create', body });
    body[0] = 9;
    await pending;
    expect([...(calls[0]!.init.body as Uint8Array)]).toEqual([1, 2, 3]);
    expect(seen[0]!.bodySha256).toBe(await bodySha256(new Uint8Array([1, 2, 3])));
  });

  it('every request gets a fresh passport jti, request key and nonce', async () => {
    const { client: c, calls } = client();
    await c.fetch('/orders/search', { routeId: 'orders.search' });
    await c.fetch('/orders/search', { routeId: 'orders.search' });
    const [a, b] = calls.map((call) => {
      const h = headersOf(call);
      const p = decodePassportUnverified(h.get('authorization')!.slice(7)).payload as {
        jti: string;
        cnf: { public_key_b64url: string };
      };
      return { jti: p.jti, key: p.cnf.public_key_b64url, nonce: h.get('x-trustplane-nonce') };
    });
    expect(a!.jti).not.toBe(b!.jti);
    expect(a!.key).not.toBe(b!.key);
    expect(a!.nonce).not.toBe(b!.nonce);
    expect(a!.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('the client never follows redirects (fetch is always told redirect: manual)', async () => {
    const { client: c, calls } = client();
    await c.fetch('/orders/search', { routeId: 'orders.search', method: 'DELETE' });
    expect(calls[0]!.init.redirect).toBe('manual');
  });
});
