/** Base class of every error thrown by @nest-rollout/config; `code` is stable. */
export class ConfigError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Thrown at boot when the environment does not match its schema; names every bad variable at once. */
export class EnvValidationError extends ConfigError {
  constructor(readonly problems: readonly string[]) {
    super('CONFIG_INVALID_ENV', `Invalid environment (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Thrown at boot when DynamicConfigModule's options are invalid; lists every problem at once. */
export class DynamicConfigOptionsError extends ConfigError {
  constructor(readonly problems: readonly string[]) {
    super(
      'CONFIG_INVALID_OPTIONS',
      `Invalid DynamicConfigModule options (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
}

/**
 * A dynamic configuration that cannot be applied: at boot it stops the start-up (there is no last
 * good version yet); later it is logged and counted, and the last good version stays in force.
 */
export class InvalidConfigError extends ConfigError {
  constructor(
    readonly problems: readonly string[],
    readonly source: string,
  ) {
    super('CONFIG_INVALID', `Invalid dynamic configuration from ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * The dynamic configuration was read before it was loaded. DynamicConfigModule loads it when the
 * application initialises (its `onModuleInit`, which Nest runs before that of the modules using it).
 */
export class DynamicConfigNotLoadedError extends ConfigError {
  constructor() {
    super(
      'CONFIG_NOT_LOADED',
      'The dynamic configuration was read before it was loaded: read DynamicConfigService in onModuleInit or later (e.g. in a request), not in a constructor or a provider factory.',
    );
  }
}

/** Why a source has no document right now. */
export type ConfigSourceFailure = 'parse' | 'missing' | 'unavailable';

/** A source could not read or parse its document; `failure` says which. */
export class ConfigSourceError extends ConfigError {
  constructor(
    readonly failure: ConfigSourceFailure,
    readonly source: string,
    message: string,
  ) {
    super(`CONFIG_SOURCE_${failure.toUpperCase()}`, message);
  }
}
