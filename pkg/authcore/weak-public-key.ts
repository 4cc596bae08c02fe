/*
 * Ed25519 public keys refused at import, whatever the verify backend. Internal to pkg/authcore.
 *
 * A small-order key A ([8]A = identity) lets anyone forge: [k]A takes at most 8 values, so a
 * signature (R = -[k]A, S = 0) verifies under a cofactorless verifier that does not refuse such keys
 * (OpenSSL, hence WebCrypto and node:crypto), for every message when A is the identity. libsodium
 * refuses these keys itself; checking here makes every backend behave like it.
 *
 * Why a fixed list and not curve arithmetic: it is exactly libsodium's check (`ge25519_is_canonical`
 * and the blocklist of `ge25519_has_small_order`, crypto_core/ed25519/ref10/ed25519_ref10.c), it
 * costs well under a microsecond where decoding the point (a field square root) costs about 100 µs
 * per distinct key, and the cnf key of a broker passport is new for every passport. The list is
 * complete, and test/authcore/weak-public-key.test.ts proves it against @noble/curves:
 * - the group has 8 points of small order, and their y coordinates are the 5 values below (y = 0
 *   and the two order-8 values each carry two points, told apart by the sign bit of x);
 * - RFC 8032 §5.1.3 decoding refuses y >= p (step 1) and x = 0 with the sign bit set (step 4), but
 *   lenient decoders (OpenSSL among them) reduce y mod p and ignore the sign of x = 0. Refusing
 *   every y >= p, and comparing y with the sign bit cleared, covers each such encoding: y = p and
 *   p + 1 (0 and 1 again), and the identity and (0, -1) with the sign bit set.
 */

/** y coordinates (little-endian, sign bit clear) of the 8 small-order points. */
const SMALL_ORDER_Y: readonly Uint8Array[] = [
  // (±sqrt(-1), 0), order 4
  new Uint8Array(32),
  // (0, 1), the identity
  Uint8Array.from([0x01, ...new Array<number>(31).fill(0)]),
  // (0, -1), order 2: y = p - 1
  Uint8Array.from([0xec, ...new Array<number>(30).fill(0xff), 0x7f]),
  // order 8 (two points each, x and -x)
  Uint8Array.from([
    0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5,
    0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
  ]),
  Uint8Array.from([
    0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a,
    0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
  ]),
];

/** y (sign bit cleared) >= p = 2^255 - 19: bytes 1..30 are 0xff, byte 31 is 0x7f, byte 0 >= 0xed. */
function isNonCanonicalY(raw: Uint8Array): boolean {
  if ((raw[31]! & 0x7f) !== 0x7f || raw[0]! < 0xed) return false;
  for (let i = 1; i < 31; i++) if (raw[i] !== 0xff) return false;
  return true;
}

function hasSmallOrderY(raw: Uint8Array): boolean {
  return SMALL_ORDER_Y.some((y) => {
    for (let i = 0; i < 31; i++) if (raw[i] !== y[i]) return false;
    return (raw[31]! & 0x7f) === y[31];
  });
}

/**
 * True when a 32-byte Ed25519 public key must be refused: its encoding is non-canonical (y >= p)
 * or it decodes, under any decoder, to a point of small order. Anything not 32 bytes is refused too.
 * The check is on public bytes, so it need not be constant-time.
 */
export function isWeakPublicKey(raw: Uint8Array): boolean {
  return raw.length !== 32 || isNonCanonicalY(raw) || hasSmallOrderY(raw);
}
