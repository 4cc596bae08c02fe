import { describe, expect, it } from 'vitest';
import { TrustplaneError } from '../../pkg/authcore/index.js';
import { assertClientPath, clientPathProblem } from '../../pkg/client/index.js';
import { pathSafetyProblem } from '../../pkg/proof/index.js';

/** Paths the SDK refuses, with the rule each one breaks. */
const UNSAFE_PATHS: readonly (readonly [string, string])[] = [
  ['', 'path must start with /'],
  ['v1/orders', 'path must start with /'],
  ['/v1/orders/%41', 'path has percent-encoding'],
  ['/v1/orders/%2e%2e/admin', 'path has percent-encoding'],
  ['/v1/orders%2Fsearch', 'path has percent-encoding'],
  ['/v1/orders/%', 'path has percent-encoding'],
  ['/v1//orders', 'path has an empty segment (//)'],
  ['//evil.example/v1', 'path has an empty segment (//)'],
  ['/v1\\orders', 'path has a backslash'],
  ['/v1/./orders', 'path has a dot segment'],
  ['/v1/../admin', 'path has a dot segment'],
  ['/v1/orders/..', 'path has a dot segment'],
  ['/v1/orders/.', 'path has a dot segment'],
  ['/v1/..;x/admin', 'path has a ; path parameter'],
  ['/v1/orders/', 'path has a trailing slash'],
  ['/v1/orders/search?q=1', 'path has a query or fragment character'],
  ['/v1/orders#frag', 'path has a query or fragment character'],
  ['/v1/orders\r\nX-Evil: 1', 'path has a control character'],
  ['/v1/orders\u0000', 'path has a control character'],
  ['/v1/orders\t', 'path has a control character'],
  ['/v1/orders\u007f', 'path has a control character'],
  ['/v1/orders/{order_id}', 'path has a template brace'],
  ['/v1/or ders', 'path has characters outside RFC 3986 pchar'],
  ['/v1/caf\u00e9', 'path has characters outside RFC 3986 pchar'],
  ['/v1/;/orders', 'path has a ; path parameter'],
  ['/v1/admin;x', 'path has a ; path parameter'],
];

describe('clientPathProblem: the official SDK rules', () => {
  for (const [path, problem] of UNSAFE_PATHS) {
    it(`refuses ${JSON.stringify(path)}: ${problem}`, () => {
      expect(clientPathProblem(path)).toBe(problem);
      expect(() => assertClientPath(path)).toThrow(TrustplaneError);
    });
  }

  it('accepts ordinary paths and the root', () => {
    for (const path of ['/', '/v1', '/v1/orders/search', '/v1/orders/ord_1', "/a-b.c_d~e!$&'()*+,=:@"]) {
      expect(clientPathProblem(path)).toBeUndefined();
    }
  });

  it('is never weaker than the verifier: everything the verifier refuses is refused', () => {
    const verifierRefuses = [
      '/v1/orders/%2F',
      '/v1/%2e/x',
      '/v1/%5c',
      '/v1/%00',
      '/v1/%25',
      '/a/..;/b',
      '/a/.;x/b',
      '/' + 'a'.repeat(5000),
    ];
    for (const path of verifierRefuses) {
      expect(pathSafetyProblem(path)).toBeDefined();
      expect(clientPathProblem(path)).toBeDefined();
    }
  });

  it('throws TrustplaneError unsafe_request_path whose message never echoes the path', () => {
    const secretish = '/v1/orders/../tok_live_abcdef';
    try {
      assertClientPath(secretish);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TrustplaneError);
      expect((e as TrustplaneError).reason).toBe('unsafe_request_path');
      expect((e as TrustplaneError).status).toBe(400);
      expect((e as Error).message).not.toContain('tok_live');
    }
  });
});

describe('attack: sibling prefix', () => {
  const basePath = '/v1';
  it('accepts the prefix itself and paths under it', () => {
    expect(clientPathProblem('/v1', { basePath })).toBeUndefined();
    expect(clientPathProblem('/v1/orders', { basePath })).toBeUndefined();
  });
  it('refuses siblings that a plain startsWith would accept', () => {
    for (const path of ['/v10/x', '/v1evil', '/v1-admin/x', '/v2/orders', '/']) {
      expect(clientPathProblem(path, { basePath })).toBe('path is outside the base URL path');
      expect(() => assertClientPath(path, { basePath })).toThrow(
        expect.objectContaining({ reason: 'unsafe_request_path' }),
      );
    }
  });
  it('refuses a trailing slash on the prefix itself', () => {
    expect(clientPathProblem('/v1/', { basePath })).toBe('path has a trailing slash');
  });
});
