/** Base class of every error thrown by @nest-rollout/lifecycle; `code` is stable. */
export class LifecycleError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Thrown at boot when the options are invalid; lists every problem at once. */
export class LifecycleOptionsError extends LifecycleError {
  constructor(readonly problems: readonly string[]) {
    super(
      'LIFECYCLE_INVALID_OPTIONS',
      `Invalid LifecycleModule options (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
}

/** Thrown by `attachLifecycle` when Nest's own shutdown hooks are also enabled. */
export class ShutdownHooksConflictError extends LifecycleError {
  constructor() {
    super(
      'LIFECYCLE_SHUTDOWN_HOOKS_CONFLICT',
      'app.enableShutdownHooks() and attachLifecycle(app) are both in use. attachLifecycle replaces ' +
        "enableShutdownHooks: Nest's own signal handler closes the server without draining and re-kills " +
        'the process before logs are flushed. Remove the enableShutdownHooks() call.',
    );
  }
}

/** Thrown when a warm-up or drain task is registered after its phase has begun. */
export class LifecyclePhaseError extends LifecycleError {
  constructor(message: string) {
    super('LIFECYCLE_PHASE_PASSED', message);
  }
}
