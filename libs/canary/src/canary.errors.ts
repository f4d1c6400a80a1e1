/** Base class of every error thrown by @nest-rollout/canary; `code` is stable. */
export class CanaryError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Thrown at boot when CanaryModule options are invalid; lists every problem at once. */
export class CanaryOptionsError extends CanaryError {
  constructor(readonly problems: readonly string[]) {
    super('CANARY_INVALID_OPTIONS', `Invalid CanaryModule options (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * A rule set that cannot be used (a bad regex, a flagd definition flagd-core refuses). At boot it
 * stops the start; on a live update it is logged and the last good rules stay in force.
 */
export class CanaryRulesError extends CanaryError {
  constructor(readonly problems: readonly string[]) {
    super(
      'CANARY_INVALID_RULES',
      `Invalid canary rules (the last good rules stay in force):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
}
