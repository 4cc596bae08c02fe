import { createRequire } from 'node:module';

const requireHere = createRequire(import.meta.url);

/**
 * An optional peer dependency is not installed. `reason` is the registered reason code
 * `dependency_missing`; the message names the package to install and what needs it, in one line.
 */
export class DependencyMissingError extends Error {
  /** Stable reason code (public API, pkg/authcore/reason-codes.ts). */
  readonly reason = 'dependency_missing' as const;
  /** HTTP status for this reason. */
  readonly status = 500;
  /** Non-secret details: the package to install. */
  readonly details: Readonly<Record<string, string>>;

  constructor(packageName: string, feature: string) {
    super(`install "${packageName}" to use ${feature}`);
    this.name = 'DependencyMissingError';
    this.details = { package: packageName };
  }
}

/**
 * Load an optional peer dependency on first use (synchronously: they are CommonJS packages, and
 * their callers construct clients synchronously). Heavy integrations (PostgreSQL, Redis, gRPC) are
 * optional peers, so a Hono app that installs trustplane does not install them.
 * @param packageName the package, e.g. `pg`
 * @param feature what needs it, for the message, e.g. `the PostgreSQL audit ledger`
 * @returns the package's exports (typed by the caller through a type-only import)
 * @throws DependencyMissingError (`dependency_missing`) when the package is not installed; any
 *   other load failure as it is
 * @example
 * const pg = requireOptional<typeof import('pg')>('pg', 'the PostgreSQL audit ledger');
 */
export function requireOptional<T>(packageName: string, feature: string): T {
  try {
    return requireHere(packageName) as T;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const message = e instanceof Error ? e.message : '';
    if (code === 'MODULE_NOT_FOUND' && message.includes(`'${packageName}'`)) {
      throw new DependencyMissingError(packageName, feature);
    }
    throw e;
  }
}
