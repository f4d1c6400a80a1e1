/** Base class of every error thrown by @nest-rollout/logging; `code` is stable. */
export class LoggingError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Thrown at boot when the options are invalid; lists every problem at once. */
export class LoggingOptionsError extends LoggingError {
  constructor(readonly problems: readonly string[]) {
    super(
      'LOGGING_INVALID_OPTIONS',
      `Invalid LoggingModule options (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
}
