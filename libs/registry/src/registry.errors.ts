/** Base class of every error thrown by @nest-rollout/registry; `code` is stable. */
export class RegistryError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Thrown at boot when RegistryModule options are invalid; lists every problem at once. */
export class RegistryOptionsError extends RegistryError {
  constructor(readonly problems: readonly string[]) {
    super(
      'REGISTRY_INVALID_OPTIONS',
      `Invalid RegistryModule options (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
}

/** Thrown at boot when the chosen driver's npm package is not installed. */
export class RegistryDriverMissingError extends RegistryError {
  constructor(driver: string, packageName: string, range: string) {
    super(
      'REGISTRY_DRIVER_MISSING',
      `RegistryModule driver "${driver}" needs the npm package "${packageName}", which is not installed: run npm install ${packageName}@"${range}"`,
    );
  }
}

/** A registry call that did not finish within its bound; the call is aborted. */
export class RegistryTimeoutError extends RegistryError {
  constructor(operation: string, timeoutMs: number) {
    super('REGISTRY_TIMEOUT', `registry ${operation} did not finish within ${timeoutMs} ms`);
  }
}

/** How a registry call bounded in time (lifecycle's `bounded`) fails: a timeout, or its caller giving up first. */
export function registryTimeouts(operation: string, timeoutMs: number): { timedOut: () => Error; aborted: () => Error } {
  return {
    timedOut: () => new RegistryTimeoutError(operation, timeoutMs),
    aborted: () => new RegistryTimeoutError(`${operation} (aborted)`, timeoutMs),
  };
}

/** The registry answered, and the answer is an error (a status code, a refused write). */
export class RegistryRequestError extends RegistryError {
  constructor(
    message: string,
    readonly statusCode?: number,
  ) {
    super('REGISTRY_REQUEST_FAILED', message);
  }
}

/**
 * The registry refused a call for lack of a permission (Consul: the ACL token has no rule for it,
 * or the agent does not know the token). Retrying at the normal pace cannot fix it: the message
 * names the permission to grant.
 */
export class RegistryPermissionError extends RegistryError {
  constructor(
    message: string,
    readonly statusCode?: number,
  ) {
    super('REGISTRY_PERMISSION_DENIED', message);
  }
}
