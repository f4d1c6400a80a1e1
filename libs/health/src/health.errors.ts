import type { HealthFailureKind } from './health.constants';

/** Base class of every error thrown by @nest-rollout/health; `code` is stable. */
export class HealthError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Thrown at boot when HealthModule options are invalid; lists every problem at once. */
export class HealthOptionsError extends HealthError {
  constructor(readonly problems: readonly string[]) {
    super('HEALTH_INVALID_OPTIONS', `Invalid HealthModule options (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * What a check throws to say its dependency is down, with the kind of failure. Indicators throw it
 * with a message that is safe to show; any other error is classified from its code and message.
 */
export class HealthCheckError extends HealthError {
  constructor(
    readonly kind: HealthFailureKind,
    message: string,
  ) {
    super('HEALTH_CHECK_FAILED', message);
  }
}

/** Thrown at start-up when the management server cannot listen (port taken, bad host). */
export class ManagementServerError extends HealthError {
  constructor(message: string) {
    super('HEALTH_MANAGEMENT_LISTEN_FAILED', message);
  }
}
