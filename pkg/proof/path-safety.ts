import { TrustplaneError } from '../authcore/errors.js';
import { pathSafetyProblem } from '../internal/path-safety.js';

export { pathSafetyProblem, MAX_PATH_LENGTH } from '../internal/path-safety.js';

/**
 * Throw unless the raw path is safe (see {@link pathSafetyProblem}).
 * @throws TrustplaneError `unsafe_request_path`
 */
export function assertSafePath(path: string): void {
  const problem = pathSafetyProblem(path);
  if (problem !== undefined)
    throw new TrustplaneError('unsafe_request_path', `unsafe request path: ${problem}`);
}
