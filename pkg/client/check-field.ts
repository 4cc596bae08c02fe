// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Check a value that goes into a transcript line (audience, route id). */
export function checkField(name: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max || CONTROL.test(value)) {
    throw new TypeError(`${name} must be a non-empty string without control characters`);
  }
  return value;
}
