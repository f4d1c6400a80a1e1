/** Base class of every error thrown by @nest-rollout/metrics; `code` is stable. */
export class MetricsError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Thrown at boot when MetricsModule options are invalid; lists every problem at once. */
export class MetricsOptionsError extends MetricsError {
  constructor(readonly problems: readonly string[]) {
    super(
      'METRICS_INVALID_OPTIONS',
      `Invalid MetricsModule options (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
}

/**
 * Thrown at boot when the registry already holds a metric of one of our names that this module
 * cannot share: one registered by someone else, or by another MetricsModule with other buckets.
 */
export class MetricsConflictError extends MetricsError {
  constructor(
    readonly metric: string,
    reason: string,
  ) {
    super(
      'METRICS_NAME_CONFLICT',
      `The metrics registry already holds a metric named "${metric}" (${reason}). Rename that metric, or give ` +
        'MetricsModule a registry of its own: MetricsModule.forRoot({ registry: new Registry() }).',
    );
  }
}

/** Thrown when a module publishes a metric that the catalogue does not define. */
export class UnknownMetricError extends MetricsError {
  constructor(metric: string, expected: string) {
    super('METRICS_UNKNOWN_METRIC', `"${metric}" is not a ${expected} of the nest-rollout metric catalogue (see MetricName)`);
  }
}
