/**
 * signer-taxonomy-v1: the key-binding classes in ascending order of assurance. A route's
 * requirement is a minimum. This is the one registry of signer classes.
 */

/** Ordered signer classes with their ranks (signer-taxonomy-v1). */
export const SIGNER_CLASSES = Object.freeze([
  Object.freeze({ class: 'software', rank: 10 }),
  Object.freeze({ class: 'remote_kms', rank: 20 }),
  Object.freeze({ class: 'hardware_local', rank: 30 }),
  Object.freeze({ class: 'attested_workload', rank: 40 }),
] as const);

/** A key-binding class name. */
export type KeyBinding = (typeof SIGNER_CLASSES)[number]['class'];

/** Class names in ascending order. */
export const KEY_BINDINGS: readonly KeyBinding[] = Object.freeze(SIGNER_CLASSES.map((c) => c.class));

const RANKS: Readonly<Record<string, number>> = Object.freeze(
  Object.assign(
    Object.create(null) as Record<string, number>,
    Object.fromEntries(SIGNER_CLASSES.map((c) => [c.class, c.rank])),
  ),
);

/** True when `value` is a known key-binding class. */
export function isKeyBinding(value: unknown): value is KeyBinding {
  return typeof value === 'string' && Object.hasOwn(RANKS, value);
}

/** Rank of a class (10, 20, 30, 40). */
export function keyBindingRank(binding: KeyBinding): number {
  return RANKS[binding]!;
}

/** True when `actual` meets or exceeds `required`. */
export function meetsKeyBinding(actual: KeyBinding, required: KeyBinding): boolean {
  return keyBindingRank(actual) >= keyBindingRank(required);
}

/** The lower of two classes (used to cap a claimed binding by what an issuer may vouch for). */
export function minKeyBinding(a: KeyBinding, b: KeyBinding): KeyBinding {
  return keyBindingRank(a) <= keyBindingRank(b) ? a : b;
}

/** The higher of two classes (used to combine route and source minimums). */
export function maxKeyBinding(a: KeyBinding, b: KeyBinding): KeyBinding {
  return keyBindingRank(a) >= keyBindingRank(b) ? a : b;
}
