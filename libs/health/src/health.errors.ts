/** Thrown at boot when HealthModule options are invalid; lists every problem at once. */
export class HealthOptionsError extends Error {
  readonly code = 'HEALTH_INVALID_OPTIONS';
  constructor(readonly problems: readonly string[]) {
    super(`Invalid HealthModule options (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'HealthOptionsError';
  }
}
