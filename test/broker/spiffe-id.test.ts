import { describe, expect, it } from 'vitest';
import {
  MAX_SPIFFE_ID_BYTES,
  SpiffeIdError,
  formatSpiffeId,
  isValidTrustDomain,
  parseSpiffeId,
  parseTrustDomain,
  validateSpiffePath,
} from '../../pkg/broker/spiffe/index.js';
import { readVectorJson } from '../helpers/vectors.js';

interface Vectors {
  rules: { trustDomainChars: string; pathSegmentChars: string };
  errorMessages: Record<string, string>;
  valid: { id: string; trustDomain: string; path: string }[];
  invalid: { id: string; reason: string; goSpiffeError: string }[];
  characterLoop: { trustDomainTemplate: string; pathTemplate: string };
  trustDomainFromString: {
    valid: { input: string; trustDomain: string }[];
    invalid: { input: string; error: string }[];
  };
  pathHelpers: {
    fromSegments: { segments: string[]; path?: string; error?: string }[];
    fromPath: { path: string; ok?: boolean; error?: string }[];
  };
  lengthCases: { accept2048: string; over2048: string; trustDomain255: string; trustDomain256: string };
}

const v = readVectorJson<Vectors>('external/spiffe-ids.json');

function thrown(fn: () => unknown): SpiffeIdError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SpiffeIdError);
    return err as SpiffeIdError;
  }
  throw new Error('expected a SpiffeIdError');
}

describe('parseSpiffeId: valid vectors', () => {
  it.each(v.valid.map((c) => [c.id, c] as const))('%s', (_id, c) => {
    expect(parseSpiffeId(c.id)).toEqual({ id: c.id, trustDomain: c.trustDomain, path: c.path });
  });
});

describe('parseSpiffeId: invalid vectors (go-spiffe messages)', () => {
  it.each(v.invalid.map((c) => [JSON.stringify(c.id), c] as const))('%s', (_label, c) => {
    const err = thrown(() => parseSpiffeId(c.id));
    expect(err.message).toBe(c.goSpiffeError);
    // The message never echoes the input.
    if (c.id.length > 8) expect(err.message).not.toContain(c.id);
  });

  it('maps every go-spiffe message to a stable code', () => {
    const codes = new Map<string, string>();
    for (const c of v.invalid) codes.set(c.goSpiffeError, thrown(() => parseSpiffeId(c.id)).reason);
    expect(Object.fromEntries(codes)).toEqual({
      [v.errorMessages['empty']!]: 'spiffe_id_empty',
      [v.errorMessages['scheme']!]: 'spiffe_id_bad_scheme',
      [v.errorMessages['td']!]: 'spiffe_id_missing_trust_domain',
      [v.errorMessages['tdc']!]: 'spiffe_id_bad_trust_domain_char',
      [v.errorMessages['pc']!]: 'spiffe_id_bad_path_segment_char',
      [v.errorMessages['dot']!]: 'spiffe_id_dot_segment',
      [v.errorMessages['emptyseg']!]: 'spiffe_id_empty_segment',
      [v.errorMessages['trail']!]: 'spiffe_id_trailing_slash',
    });
  });
});

describe('parseSpiffeId: character loop U+0000..U+00FF', () => {
  const chars = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).filter((c) => c !== '/');

  it('trust-domain template is valid iff the character is a trust-domain character', () => {
    for (const c of chars) {
      const id = v.characterLoop.trustDomainTemplate.replace('{c}', c);
      if (v.rules.trustDomainChars.includes(c)) {
        expect(parseSpiffeId(id).trustDomain).toBe(`trustdomain${c}`);
      } else {
        expect(thrown(() => parseSpiffeId(id)).message, `code point ${c.charCodeAt(0)}`).toBe(
          v.errorMessages['tdc'],
        );
      }
    }
  });

  it('path template is valid iff the character is a path-segment character', () => {
    for (const c of chars) {
      const id = v.characterLoop.pathTemplate.replace('{c}', c);
      if (v.rules.pathSegmentChars.includes(c)) {
        expect(parseSpiffeId(id).path).toBe(`/path${c}`);
      } else {
        expect(thrown(() => parseSpiffeId(id)).message, `code point ${c.charCodeAt(0)}`).toBe(
          v.errorMessages['pc'],
        );
      }
    }
  });
});

describe('parseSpiffeId: lengths', () => {
  it('accepts an ID of exactly 2048 bytes', () => {
    expect(v.lengthCases.accept2048).toHaveLength(MAX_SPIFFE_ID_BYTES);
    expect(parseSpiffeId(v.lengthCases.accept2048).trustDomain).toBe('example.org');
  });

  it('refuses an ID over 2048 bytes (too_long)', () => {
    expect(thrown(() => parseSpiffeId(v.lengthCases.over2048)).reason).toBe('spiffe_id_too_long');
  });

  it('accepts a 255-byte trust domain and refuses 256 (trust_domain_too_long)', () => {
    expect(isValidTrustDomain(v.lengthCases.trustDomain255)).toBe(true);
    expect(parseSpiffeId(`spiffe://${v.lengthCases.trustDomain255}/x`).trustDomain).toBe(
      v.lengthCases.trustDomain255,
    );
    expect(isValidTrustDomain(v.lengthCases.trustDomain256)).toBe(false);
    const err = thrown(() => parseSpiffeId(`spiffe://${v.lengthCases.trustDomain256}/x`));
    expect(err.reason).toBe('spiffe_id_trust_domain_too_long');
  });
});

describe('parseTrustDomain (TrustDomainFromString vectors)', () => {
  it.each(v.trustDomainFromString.valid.map((c) => [c.input, c] as const))('valid %s', (_i, c) => {
    expect(parseTrustDomain(c.input)).toBe(c.trustDomain);
  });

  it.each(v.trustDomainFromString.invalid.map((c) => [JSON.stringify(c.input), c] as const))(
    'invalid %s',
    (_i, c) => {
      expect(thrown(() => parseTrustDomain(c.input)).message).toBe(c.error);
    },
  );
});

describe('isValidTrustDomain', () => {
  it.each([
    ['example.org', true],
    ['127.0.0.1', true],
    ['trust_domain_name.example.com', true],
    ['', false],
    ['Example.org', false],
    ['example.org:443', false],
    ['user@example.org', false],
    ['spiffe://example.org', false],
    ['example.org/path', false],
  ])('%s -> %s', (td, ok) => {
    expect(isValidTrustDomain(td)).toBe(ok);
  });
});

describe('path helpers', () => {
  it.each(v.pathHelpers.fromPath.map((c) => [JSON.stringify(c.path), c] as const))(
    'validateSpiffePath %s',
    (_p, c) => {
      if (c.error === undefined) expect(() => validateSpiffePath(c.path)).not.toThrow();
      else expect(thrown(() => validateSpiffePath(c.path)).message).toBe(c.error);
    },
  );

  it('validateSpiffePath: missing leading slash has its own code', () => {
    expect(thrown(() => validateSpiffePath('foo')).reason).toBe('spiffe_id_missing_leading_slash');
  });

  it.each(v.pathHelpers.fromSegments.map((c) => [JSON.stringify(c.segments), c] as const))(
    'formatSpiffeId %s',
    (_s, c) => {
      if (c.error === undefined) {
        expect(formatSpiffeId('trustdomain', c.segments)).toEqual({
          id: `spiffe://trustdomain${c.path ?? ''}`,
          trustDomain: 'trustdomain',
          path: c.path,
        });
      } else {
        expect(thrown(() => formatSpiffeId('trustdomain', c.segments)).message).toBe(c.error);
      }
    },
  );

  it('formatSpiffeId refuses a bad trust domain', () => {
    expect(thrown(() => formatSpiffeId('Bad', ['x'])).reason).toBe('spiffe_id_bad_trust_domain_char');
    expect(thrown(() => formatSpiffeId('', ['x'])).reason).toBe('spiffe_id_missing_trust_domain');
  });
});

describe('caller misuse', () => {
  it('parseSpiffeId throws TypeError on a non-string', () => {
    expect(() => parseSpiffeId(42 as unknown as string)).toThrow(TypeError);
  });
});
